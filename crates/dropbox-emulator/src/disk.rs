//! The storage root's layout and the small file-system helpers every part shares.
//!
//! ```text
//! <root>/accounts.json              accounts, apps and tokens (see the emulator module doc)
//! <root>/issued_refresh_tokens.json refresh tokens issued by /oauth2/token (so they survive)
//! <root>/meta/<tree>/<id>.json      one small metadata file per file or folder
//! <root>/blobs/<blob>               file content, one immutable file per stored version
//! <root>/sessions/<session>/        upload sessions: state.json plus data or pieces
//! <root>/tmp/                       uploads in flight (same file system, so commits are renames)
//! ```
//! Metadata is written atomically (temp file + rename) and one entry per file keeps an upload
//! in a folder of 10,000 entries as cheap as in an empty one.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;

/// Paths of the storage root's parts.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    /// Creates the root and its fixed sub-directories.
    pub fn create(root: &Path) -> std::io::Result<Layout> {
        let layout = Layout {
            root: root.to_path_buf(),
        };
        for dir in [
            layout.meta_root(),
            layout.blobs(),
            layout.sessions(),
            layout.tmp(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(layout)
    }

    pub fn meta_root(&self) -> PathBuf {
        self.root.join("meta")
    }

    pub fn meta_dir(&self, tree: &str) -> PathBuf {
        self.meta_root().join(tree)
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub fn blob(&self, blob: &str) -> PathBuf {
        self.blobs().join(blob)
    }

    pub fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn issued_refresh_tokens(&self) -> PathBuf {
        self.root.join("issued_refresh_tokens.json")
    }
}

/// Writes `bytes` to `path` so that readers see either the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// A random URL-safe token of `bytes` random bytes (used for ids, blobs, sessions, tokens).
pub fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A new revision: 16 lowercase hex digits (Dropbox requires ≥ 9, hex).
pub fn new_rev() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A new file or folder id, `id:` plus 22 URL-safe characters like Dropbox's.
pub fn new_id() -> String {
    format!("id:{}", random_token(16))
}
