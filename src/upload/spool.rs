//! The spool: a temp file that collects one upload's bytes, wherever in the file they land.
//!
//! Pipelining clients keep many WRITEs in flight, so bytes may arrive out of order; positional
//! writes (`pwrite`) let each land where it belongs. File I/O runs on the blocking pool so a
//! slow disk never stalls the async workers.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tempfile::TempPath;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::dropbox::ContentHasher;

/// Every spool file's name starts with this, so that files left by a crash can be found.
const SPOOL_PREFIX: &str = "dropgate-spool-";

pub struct Spool {
    file: Arc<std::fs::File>,
    /// Deletes the file when the spool is dropped, committed or not.
    path: TempPath,
    /// Bytes received so far: the file's logical size.
    len: u64,
}

impl Spool {
    pub async fn create(dir: &Path) -> io::Result<Spool> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let (file, path) = tempfile::Builder::new()
                .prefix(SPOOL_PREFIX)
                .tempfile_in(&dir)?
                .into_parts();
            Ok(Spool {
                file: Arc::new(file),
                path,
                len: 0,
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

    /// Writes `data` at `offset`; the caller has checked that this leaves no gap.
    pub async fn write_at(&mut self, offset: u64, data: Vec<u8>) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.write_all_at(&data, offset)).await??;
        self.len = self.len.max(end);
        Ok(())
    }

    /// Truncates (or zero-extends) to `size` bytes.
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.set_len(size)).await??;
        self.len = size;
        Ok(())
    }

    /// Dropbox's content_hash of the spooled bytes.
    pub async fn content_hash(&self) -> io::Result<String> {
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

    /// A request body streaming `len` bytes of the spool from `offset`.
    pub async fn body(&self, offset: u64, len: u64) -> io::Result<reqwest::Body> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024);
        Ok(reqwest::Body::wrap_stream(stream))
    }
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

    #[tokio::test]
    async fn out_of_order_writes_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path()).await.unwrap();
        spool.write_at(0, b"hello ".to_vec()).await.unwrap();
        spool.write_at(11, b"!".to_vec()).await.unwrap();
        spool.write_at(6, b"world".to_vec()).await.unwrap();
        assert_eq!(spool.len(), 12);
        let contents = std::fs::read(&spool.path).unwrap();
        assert_eq!(contents, b"hello world!");
        assert_eq!(
            spool.content_hash().await.unwrap(),
            crate::dropbox::content_hash(b"hello world!")
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
