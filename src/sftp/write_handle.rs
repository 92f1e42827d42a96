//! A write handle, and the one rule that a failed upload never commits.
//!
//! Once a WRITE or a size change fails (a gap Dropbox cannot resume, a full spool disk, a target
//! the backend already knows it may not replace), or a copy into the handle breaks off part way,
//! what the handle holds is no longer what the client sent. Some clients carry on regardless
//! (paramiko ignores CLOSE errors), so the handle is poisoned: the writer is dropped at once
//! (an upload dropped uncommitted sends nothing), and every later request on the handle, CLOSE
//! included, fails with the first error. Nothing is committed.
//!
//! This is a protocol rule, the same for every backend, so it lives here on the SFTP side of the
//! seam and nowhere else: a backend's writer just reports its errors.

use bytes::Bytes;

use crate::vfs::{Committed, FileInfo, FileWriter, VfsError, VfsResult};

pub(super) struct WriteHandle<W> {
    writer: Option<W>,
    /// The error that poisoned the handle, reported again for every later request.
    failure: Option<VfsError>,
}

impl<W: FileWriter> WriteHandle<W> {
    pub fn new(writer: W) -> Self {
        WriteHandle {
            writer: Some(writer),
            failure: None,
        }
    }

    pub async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        let result = self.live()?.write(offset, data).await;
        self.poison_on_error(result)
    }

    pub async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        let result = self.live()?.set_size(size).await;
        self.poison_on_error(result)
    }

    pub fn set_mtime(&mut self, mtime: i64) -> VfsResult<()> {
        self.live()?.set_mtime(mtime);
        Ok(())
    }

    pub fn stat(&mut self) -> VfsResult<FileInfo> {
        Ok(self.live()?.stat())
    }

    /// CLOSE: commits unless poisoned.
    pub async fn commit(mut self) -> VfsResult<Committed> {
        self.live()?;
        match self.writer.take() {
            Some(writer) => writer.commit().await,
            None => Err(finished()),
        }
    }

    fn live(&mut self) -> VfsResult<&mut W> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.writer.as_mut().ok_or_else(finished)
    }

    /// Marks the handle failed with `error` (a copy into it broke off part way). A handle that
    /// is poisoned already keeps its first error.
    pub fn poison(&mut self, error: VfsError) {
        if self.failure.is_none() {
            self.failure = Some(error);
            self.writer = None;
        }
    }

    fn poison_on_error(&mut self, result: VfsResult<()>) -> VfsResult<()> {
        if let Err(error) = &result {
            self.poison(error.clone());
        }
        result
    }
}

fn finished() -> VfsError {
    VfsError::Failure("upload already finished".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::memory::MemFs;
    use crate::vfs::{VPath, Vfs, WriteOptions};

    async fn handle_on(fs: &MemFs, path: &str) -> WriteHandle<<MemFs as Vfs>::Writer> {
        let path = VPath::parse(path).unwrap();
        WriteHandle::new(fs.open_write(&path, WriteOptions::default()).await.unwrap())
    }

    /// After a failed WRITE, every later request fails with that first error, even ones the
    /// writer itself would accept, and the writer's commit is never called.
    #[tokio::test]
    async fn a_failed_write_poisons_every_later_request_and_commits_nothing() {
        let fs = MemFs::new();
        fs.max_file_size(4);
        let mut handle = handle_on(&fs, "/f").await;
        handle.write(0, Bytes::from_static(b"ok")).await.unwrap();
        let first = handle
            .write(2, Bytes::from_static(b"too long"))
            .await
            .unwrap_err();
        assert!(first.to_string().contains("maximum upload size"), "{first}");

        // A gap would be a different error; the first one is what the client hears.
        assert_eq!(
            handle.write(100, Bytes::from_static(b"x")).await,
            Err(first.clone())
        );
        assert_eq!(handle.set_size(1).await, Err(first.clone()));
        assert_eq!(handle.set_mtime(5), Err(first.clone()));
        assert_eq!(handle.stat(), Err(first.clone()));
        assert_eq!(handle.commit().await, Err(first));
        assert_eq!(fs.commits(), 0);
        assert!(!fs.exists("/f"));
    }

    #[tokio::test]
    async fn a_failed_size_change_poisons_the_handle() {
        let fs = MemFs::new();
        fs.max_file_size(4);
        let mut handle = handle_on(&fs, "/f").await;
        let first = handle.set_size(1 << 40).await.unwrap_err();
        assert_eq!(
            handle.write(0, Bytes::from_static(b"a")).await,
            Err(first.clone())
        );
        assert_eq!(handle.commit().await, Err(first));
        assert_eq!(fs.commits(), 0);
    }

    /// A copy that broke off poisons the handle from outside; a later poison does not replace
    /// the first error.
    #[tokio::test]
    async fn poison_keeps_the_first_error_and_drops_the_writer() {
        let fs = MemFs::new();
        let mut handle = handle_on(&fs, "/f").await;
        handle.write(0, Bytes::from_static(b"part")).await.unwrap();
        let broke_off = VfsError::Failure("the source ended early".into());
        handle.poison(broke_off.clone());
        handle.poison(VfsError::NotFound("later".into()));
        assert_eq!(handle.stat(), Err(broke_off.clone()));
        assert_eq!(handle.commit().await, Err(broke_off));
        assert_eq!(fs.commits(), 0);
    }

    #[tokio::test]
    async fn a_healthy_handle_commits_once() {
        let fs = MemFs::new();
        let mut handle = handle_on(&fs, "/f").await;
        handle.write(0, Bytes::from_static(b"abc")).await.unwrap();
        handle.set_mtime(7).unwrap();
        let committed = handle.commit().await.unwrap();
        assert_eq!((committed.info.size, committed.info.mtime), (3, Some(7)));
        assert_eq!(fs.file("/f"), Some((b"abc".to_vec(), 7)));
        assert_eq!(fs.commits(), 1);
    }
}
