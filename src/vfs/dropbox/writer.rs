//! The write handle: an [`Upload`] plus the SFTP-visible rules around it.
//!
//! A handle that has been refused once (a resume attempt, an oversized file) is poisoned: its
//! later writes and its CLOSE fail with the same reason and nothing is committed, because a
//! client that ignores one error (paramiko ignores CLOSE errors) must still never see a partial
//! file in Dropbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::{file_info, RESUME_REFUSED};
use crate::dropbox::Metadata;
use crate::log_safe::Untrusted;
use crate::upload::{Upload, WriteError};
use crate::vfs::{Committed, FileInfo, FileKind, FileWriter, VPath, VfsError, VfsResult};

pub struct DropboxWriter {
    upload: Upload,
    path: VPath,
    /// Keeps this upload visible to STAT until the handle is gone.
    _progress: UploadProgress,
    /// Set once the handle has been refused: it can never commit.
    refused: Option<VfsError>,
    /// When the last byte arrived: the commit's wait is measured from here.
    last_write: Instant,
}

impl DropboxWriter {
    pub(super) fn new(upload: Upload, path: VPath, progress: UploadProgress) -> Self {
        DropboxWriter {
            upload,
            path,
            _progress: progress,
            refused: None,
            last_write: Instant::now(),
        }
    }

    fn check_usable(&self) -> VfsResult<()> {
        match &self.refused {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Maps a refused write and poisons the handle.
    fn refuse(&mut self, error: WriteError) -> VfsError {
        let refused = match error {
            WriteError::Gap { .. } => VfsError::Unsupported(RESUME_REFUSED.to_string()),
            other => VfsError::Failure(format!("{}: {other}", self.path)),
        };
        self.refused = Some(refused.clone());
        refused
    }
}

impl FileWriter for DropboxWriter {
    async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        self.check_usable()?;
        let result = self.upload.write(offset, data).await;
        self.last_write = Instant::now();
        result.map_err(|e| self.refuse(e))
    }

    async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        self.check_usable()?;
        let result = self.upload.set_len(size).await;
        result.map_err(|e| self.refuse(e))
    }

    fn set_mtime(&mut self, mtime: i64) {
        self.upload.set_client_modified(mtime);
    }

    fn stat(&self) -> FileInfo {
        FileInfo {
            name: self.path.name().to_string(),
            kind: FileKind::File,
            size: self.upload.len(),
            mtime: self.upload.client_modified(),
        }
    }

    async fn commit(self) -> VfsResult<FileInfo> {
        self.commit_recorded().await.map(|committed| committed.info)
    }

    async fn commit_recorded(self) -> VfsResult<Committed> {
        self.check_usable()?;
        let commit_started = Instant::now();
        let stored = self
            .upload
            .commit()
            .await
            .map_err(|e| VfsError::Failure(e.to_string()))?;
        tracing::info!(
            path = %Untrusted(&self.path),
            size = stored.size,
            rev = %stored.rev,
            commit_ms = commit_started.elapsed().as_millis() as u64,
            after_last_write_ms = self.last_write.elapsed().as_millis() as u64,
            "upload committed"
        );
        Ok(Committed {
            id: Some(stored.id.clone()),
            rev: Some(stored.rev.clone()),
            info: file_info(&Metadata::File(stored)),
        })
    }
}

/// Uploads in progress on one account, by Dropbox path (lower case, as Dropbox compares).
#[derive(Clone, Default)]
pub struct OpenUploads {
    by_path: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
}

impl OpenUploads {
    /// Bytes received so far by an open upload to `dropbox_path`, if there is one.
    pub fn received(&self, dropbox_path: &str) -> Option<u64> {
        let by_path = self.by_path.lock().expect("open uploads lock");
        by_path
            .get(&dropbox_path.to_lowercase())
            .map(|counter| counter.load(Ordering::Relaxed))
    }

    /// How many uploads are open (receiving or committing); graceful shutdown waits for 0.
    pub fn count(&self) -> usize {
        self.by_path.lock().expect("open uploads lock").len()
    }

    pub(super) fn register(&self, dropbox_path: &str) -> UploadProgress {
        let key = dropbox_path.to_lowercase();
        let counter = Arc::new(AtomicU64::new(0));
        self.by_path
            .lock()
            .expect("open uploads lock")
            .insert(key.clone(), counter.clone());
        UploadProgress {
            uploads: self.clone(),
            key,
            counter,
        }
    }
}

/// One upload's entry in [`OpenUploads`]; removed when dropped.
pub struct UploadProgress {
    uploads: OpenUploads,
    key: String,
    counter: Arc<AtomicU64>,
}

impl UploadProgress {
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.counter.clone()
    }
}

impl Drop for UploadProgress {
    fn drop(&mut self) {
        let mut by_path = self.uploads.by_path.lock().expect("open uploads lock");
        // A newer upload of the same path may have replaced this entry; leave that one alone.
        if by_path
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.counter))
        {
            by_path.remove(&self.key);
        }
    }
}
