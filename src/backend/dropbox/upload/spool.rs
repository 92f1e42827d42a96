//! The spool: a temp file that collects one upload's bytes, wherever in the file they land.
//!
//! Pipelining clients keep many WRITEs in flight, so a write may land anywhere inside what has
//! been received; positional writes (`pwrite`) put each where it belongs. File I/O runs on the
//! blocking pool so a slow disk never stalls the async workers. While the writes come in order
//! (the normal case) the content_hash is computed as they land, so the commit does not read the
//! whole file again.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tempfile::TempPath;

use crate::backend::dropbox::api::ContentHasher;

/// Bytes read from the spool per piece of a request body. Every upload in flight holds a piece
/// or two while hyper sends them, so this is paid once per concurrent upload: 256 KiB keeps 50
/// parallel uploads small, and larger pieces measured no faster.
const BODY_PIECE: u64 = 256 * 1024;

/// Every spool file's name starts with this, so that files left by a crash can be found.
pub(super) const SPOOL_PREFIX: &str = "dropgate-spool-";

pub struct Spool {
    file: Arc<std::fs::File>,
    /// Deletes the file when the spool is dropped. Readers hold the open file, which stays
    /// readable after its name is gone, so a retry still in flight is not cut short.
    #[cfg_attr(not(test), allow(dead_code))]
    path: TempPath,
    /// Bytes received so far: the file's logical size.
    len: u64,
    /// The hash of bytes `0..len`, while every write has been an append.
    hasher: Option<ContentHasher>,
}

/// Read access to a spool's bytes for request bodies, usable from another task.
#[derive(Clone)]
pub struct SpoolReader {
    file: Arc<std::fs::File>,
}

impl Spool {
    /// A new spool file in `dir`. A failure is logged with the folder, so an operator knows
    /// which setting (`upload.spool_dir`) to fix; the error itself, which reaches the client,
    /// does not name it.
    pub async fn create(dir: &Path) -> io::Result<Spool> {
        let dir = dir.to_path_buf();
        // The blocking thread does not inherit the span that names the connection and user.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _in_span = span.enter();
            let logged = |e: io::Error| {
                let folder = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
                tracing::error!(folder = %folder.display(), error = %e, "cannot create a spool file");
                e
            };
            std::fs::create_dir_all(&dir).map_err(logged)?;
            let (file, path) = tempfile::Builder::new()
                .prefix(SPOOL_PREFIX)
                .tempfile_in(&dir)
                .map_err(logged)?
                .into_parts();
            Ok(Spool {
                file: Arc::new(file),
                path,
                len: 0,
                hasher: Some(ContentHasher::new()),
            })
        })
        .await?
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn reader(&self) -> SpoolReader {
        SpoolReader {
            file: self.file.clone(),
        }
    }

    /// Writes `data` at `offset`; the caller has checked that this leaves no gap.
    pub async fn write_at(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        let end = offset + data.len() as u64;
        // Only an append keeps the running hash valid; anything else is hashed at commit.
        let mut hasher = self.hasher.take().filter(|_| offset == self.len);
        let file = self.file.clone();
        let hasher = tokio::task::spawn_blocking(move || {
            file.write_all_at(&data, offset)?;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&data);
            }
            Ok::<_, io::Error>(hasher)
        })
        .await??;
        self.hasher = hasher;
        self.len = self.len.max(end);
        Ok(())
    }

    /// Truncates (or zero-extends) to `size` bytes.
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        if size == self.len {
            return Ok(());
        }
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.set_len(size)).await??;
        self.hasher = None;
        self.len = size;
        Ok(())
    }

    /// Dropbox's content_hash of the spooled bytes.
    pub async fn content_hash(&self) -> io::Result<String> {
        if let Some(hasher) = &self.hasher {
            return Ok(hasher.clone().finish());
        }
        let file = self.file.clone();
        let len = self.len;
        tokio::task::spawn_blocking(move || {
            let mut hasher = ContentHasher::new();
            let mut buf = vec![0u8; 1024 * 1024];
            let mut offset = 0u64;
            while offset < len {
                let want = buf.len().min((len - offset) as usize);
                file.read_exact_at(&mut buf[..want], offset)?;
                hasher.update(&buf[..want]);
                offset += want as u64;
            }
            Ok(hasher.finish())
        })
        .await?
    }
}

impl SpoolReader {
    /// A request body streaming `len` bytes of the spool from `offset`.
    ///
    /// Each piece is read by a positional read straight into the buffer that becomes the body
    /// chunk (no intermediate buffer to copy from), off the async workers.
    pub async fn body(&self, offset: u64, len: u64) -> io::Result<reqwest::Body> {
        let file = self.file.clone();
        let end = offset + len;
        let pieces = futures::stream::try_unfold(offset, move |at| {
            let file = file.clone();
            async move {
                if at >= end {
                    return Ok::<_, io::Error>(None);
                }
                let want = BODY_PIECE.min(end - at) as usize;
                let piece =
                    tokio::task::spawn_blocking(move || read_piece(&file, at, want)).await??;
                Ok(Some((piece, at + want as u64)))
            }
        });
        Ok(reqwest::Body::wrap_stream(pieces))
    }

    /// Free bytes on the spool's file system.
    pub fn free_space(&self) -> io::Result<u64> {
        let stat = rustix::fs::fstatvfs(self.file.as_ref())?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

/// Reads exactly `len` bytes at `offset` into a fresh buffer (not zeroed first).
fn read_piece(file: &std::fs::File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut piece = Vec::with_capacity(len);
    while piece.len() < len {
        let at = offset + piece.len() as u64;
        // Appends what it reads to `piece`, within the capacity reserved above.
        let read = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut piece), at)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spool is shorter than the upload",
            ));
        }
    }
    Ok(Bytes::from(piece))
}

/// Removes spool files left behind by a crash (nothing else writes files with our prefix).
pub fn remove_stale_spools(dir: &Path) -> io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(SPOOL_PREFIX)
        {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dropbox::api::content_hash;

    #[tokio::test]
    async fn out_of_order_writes_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path()).await.unwrap();
        spool
            .write_at(0, Bytes::from_static(b"hello "))
            .await
            .unwrap();
        spool.write_at(11, Bytes::from_static(b"!")).await.unwrap();
        spool
            .write_at(6, Bytes::from_static(b"world"))
            .await
            .unwrap();
        assert_eq!(spool.len(), 12);
        let contents = std::fs::read(&spool.path).unwrap();
        assert_eq!(contents, b"hello world!");
        assert_eq!(
            spool.content_hash().await.unwrap(),
            content_hash(b"hello world!")
        );
    }

    #[tokio::test]
    async fn the_running_hash_matches_and_survives_only_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path()).await.unwrap();
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(65536) {
            spool
                .write_at(spool.len(), Bytes::copy_from_slice(piece))
                .await
                .unwrap();
        }
        assert!(spool.hasher.is_some());
        assert_eq!(spool.content_hash().await.unwrap(), content_hash(&data));

        // Overwriting the start invalidates the running hash; the commit hash re-reads.
        spool.write_at(0, Bytes::from(vec![0u8; 10])).await.unwrap();
        assert!(spool.hasher.is_none());
        let mut changed = data.clone();
        changed[..10].fill(0);
        assert_eq!(spool.content_hash().await.unwrap(), content_hash(&changed));

        spool.set_len(100).await.unwrap();
        assert_eq!(
            spool.content_hash().await.unwrap(),
            content_hash(&changed[..100])
        );
    }

    #[tokio::test]
    async fn the_spool_file_is_removed_on_drop_and_stale_ones_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::create(dir.path()).await.unwrap();
        let path = spool.path.to_path_buf();
        assert!(path.exists());
        drop(spool);
        assert!(!path.exists());

        std::fs::write(dir.path().join("dropgate-spool-old"), b"x").unwrap();
        std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
        assert_eq!(remove_stale_spools(dir.path()).unwrap(), 1);
        assert!(dir.path().join("unrelated").exists());
    }
}
