//! A write handle's upload, and the rule that a failed upload never commits.
//!
//! Once a WRITE or a size change fails (a gap Dropbox cannot resume, a full spool disk), what the
//! handle holds is no longer what the client sent. Some clients carry on regardless (paramiko
//! ignores CLOSE errors), so the upload is poisoned: the writer is dropped at once, and every later
//! request on the handle, CLOSE included, fails with the first error. Nothing is committed.

use bytes::Bytes;

use crate::vfs::{FileInfo, FileWriter, VfsError, VfsResult};

pub(super) struct Upload<W> {
    writer: Option<W>,
    /// The error that poisoned the upload, reported again for every later request.
    failure: Option<VfsError>,
}

impl<W: FileWriter> Upload<W> {
    pub fn new(writer: W) -> Self {
        Upload {
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
    pub async fn commit(mut self) -> VfsResult<FileInfo> {
        self.live()?;
        match self.writer.take() {
            Some(writer) => writer.commit().await,
            None => Err(VfsError::Failure("upload already finished".to_string())),
        }
    }

    fn live(&mut self) -> VfsResult<&mut W> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.writer
            .as_mut()
            .ok_or_else(|| VfsError::Failure("upload already finished".to_string()))
    }

    /// Marks the upload failed with `error` (a copy into it broke off part way).
    pub fn poison(&mut self, error: VfsError) {
        if self.failure.is_none() {
            self.failure = Some(error);
            self.writer = None;
        }
    }

    fn poison_on_error(&mut self, result: VfsResult<()>) -> VfsResult<()> {
        if let Err(error) = &result {
            self.failure = Some(error.clone());
            self.writer = None;
        }
        result
    }
}
