//! The Dropbox backend: everything that knows Dropbox, in one folder.
//!
//! `fs` is the [`Vfs`](crate::vfs::Vfs) (one user's jailed view of one account), with its
//! handles: `reader` (downloads pinned to one version), `writer` (uploads and the rules of
//! their commit), `listing`; `lookup` serves the writer, `replace` posix-rename and
//! `case_rename` a rename that changes only case.
//! [`upload`] spools an upload and commits it (one request or an upload session); [`api`] is
//! the HTTP client, the only code that speaks to Dropbox. Dropbox answers become vfs terms in
//! one place, here: `file_info` and `map_error`.

pub mod api;
pub mod authorization;
mod case_rename;
#[cfg(test)]
mod contract;
mod fs;
mod listing;
mod lookup;
mod reader;
mod replace;
pub mod token_file;
pub mod upload;
mod writer;

use crate::vfs::{FileInfo, FileKind, VPath, VfsError};
use api::{DropboxError, Metadata};

pub use fs::{DropboxFs, FsSettings, MtimeChange};
pub use listing::DropboxLister;
pub use reader::{DownloadSettings, DropboxReader};
pub use writer::{DropboxWriter, OpenUploads};

/// Listing attributes: a file's mtime is its client_modified (what the uploader said).
pub(crate) fn file_info(meta: &Metadata) -> FileInfo {
    match meta {
        Metadata::File(file) => FileInfo {
            name: file.name.clone(),
            kind: FileKind::File,
            size: file.size,
            mtime: api::parse_timestamp(&file.client_modified)
                .or_else(|| api::parse_timestamp(&file.server_modified)),
        },
        Metadata::Folder(folder) => FileInfo {
            name: folder.name.clone(),
            kind: FileKind::Folder,
            size: 0,
            mtime: None,
        },
        Metadata::Deleted(deleted) => FileInfo {
            name: deleted.name.clone(),
            kind: FileKind::File,
            size: 0,
            mtime: None,
        },
    }
}
fn not_found(path: &VPath) -> VfsError {
    VfsError::NotFound(format!("{path}: no such file or folder"))
}

/// The one place a Dropbox error becomes a filesystem error.
pub(crate) fn map_error(error: DropboxError, path: &VPath) -> VfsError {
    if error.is_not_found() {
        return not_found(path);
    }
    if error.is_conflict() {
        return VfsError::AlreadyExists(format!("{path} already exists"));
    }
    if let Some(refused) = name_refused(&error, path) {
        return refused;
    }
    if error.is_credentials_problem() {
        log_credentials_problem(&error);
        return VfsError::Failure(format!("{path}: {}", error.summary()));
    }
    VfsError::Failure(format!("{path}: {error}"))
}

/// A refused token or refresh: the full text tells the operator what to do (re-run `dropgate
/// auth`, check the app's scopes); the client is only told that it can come back later.
pub(crate) fn log_credentials_problem(error: &DropboxError) {
    tracing::warn!(%error, "Dropbox refused the gateway's credentials");
}

/// A name Dropbox refused, saying which rule where it can be told. The gateway checks the rules
/// it knows before any request (`fs::check_name`); this is for the ones only Dropbox knows, such
/// as characters outside the Basic Multilingual Plane, which some accounts refuse as
/// `malformed_path`, and which an upload learns only at its commit.
pub(crate) fn name_refused(error: &DropboxError, path: &VPath) -> Option<VfsError> {
    if !error.is_disallowed_name() {
        return None;
    }
    let rule = if error.tags().iter().any(|t| t == "disallowed_name") {
        "Dropbox does not store files with this name"
    } else if path.components().any(has_non_bmp) {
        "Dropbox refused this name (malformed_path): it contains characters outside the Basic \
         Multilingual Plane, such as emoji, which this Dropbox account does not accept"
    } else {
        "Dropbox refused this name (malformed_path)"
    };
    Some(VfsError::InvalidPath(format!("{path}: {rule}")))
}

/// True if the name holds a character beyond U+FFFF (emoji, rare CJK): one UTF-16 code unit
/// cannot hold it, and some Dropbox accounts refuse such names.
fn has_non_bmp(name: &str) -> bool {
    name.chars().any(|c| u32::from(c) > 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(error: serde_json::Value, path: &str) -> String {
        let summary = error.to_string();
        let error = DropboxError::Route { summary, error };
        let path = VPath::parse(path).unwrap();
        map_error(error, &path).to_string()
    }

    #[test]
    fn a_refused_name_names_the_rule() {
        let malformed = serde_json::json!({".tag": "path", "path": {".tag": "malformed_path"}});
        let emoji = refused(malformed.clone(), "/party 🎉.txt");
        assert!(
            emoji.contains("outside the Basic Multilingual Plane"),
            "{emoji}"
        );
        let plain = refused(malformed, "/plain.txt");
        assert!(
            plain.contains("malformed_path") && !plain.contains("emoji"),
            "{plain}"
        );
        let disallowed = serde_json::json!({".tag": "path", "path": {".tag": "disallowed_name"}});
        let text = refused(disallowed, "/desktop.ini");
        assert!(
            text.contains("does not store files with this name"),
            "{text}"
        );
    }
}
