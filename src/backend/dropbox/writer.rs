//! The write handle: an [`Upload`] plus the SFTP-visible rules around it.
//!
//! A write this handle refuses (a resume attempt, an oversized file, a target it may not
//! replace) is an error and nothing more here: the SFTP layer's write handle poisons itself on
//! it, for every backend alike, so that the handle never commits afterwards.
//!
//! What the handle may do to the file at its path is decided at the commit: it replaces it
//! (`overwrite`, last writer wins), or, for O_EXCL and for a user who may not replace files,
//! commits in `add` mode so that Dropbox refuses a file that is there by then, even one that
//! appeared after OPEN. The [`Lookup`] started at OPEN only brings such a refusal forward.
//!
//! Dropbox cannot change part of a file, so a handle opened without TRUNC replaces the whole
//! file with what it holds. That is right when the client has written every byte of the old
//! file that it did not truncate away (OpenSSH scp writes from 0 and then sets the size); when
//! it has not (`r+` and a short write), the commit would silently drop the rest of the old file,
//! and the CLOSE fails instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::file_info;
use super::lookup::{Found, Lookup};
use crate::backend::dropbox::api::{Metadata, WriteMode};
use crate::backend::dropbox::upload::{CommitError, Upload, WriteError};
use crate::log_safe::Untrusted;
use crate::vfs::{
    case_key, Committed, FileInfo, FileKind, FileWriter, VPath, VfsError, VfsResult, WriteOptions,
};

/// The message every resume attempt gets.
pub(crate) const RESUME_REFUSED: &str =
    "Dropbox does not support resuming uploads; upload the whole file again";

/// The message of a CLOSE that would drop bytes of the file it replaces.
pub(crate) const PARTIAL_REFUSED: &str =
    "Dropbox cannot change part of a file; upload the whole file";

pub struct DropboxWriter {
    upload: Upload,
    path: VPath,
    /// Keeps this upload visible to STAT until the handle is gone.
    _progress: UploadProgress,
    /// When the last byte arrived: the commit's wait is measured from here.
    last_write: Instant,
    /// How the handle was opened, with the permission layer's rules.
    options: WriteOptions,
    /// What is at the path, asked alongside the upload (None: the answer cannot matter).
    lookup: Option<Lookup>,
    /// Bytes `0..written_prefix` have all been written by the client (not zeros of an
    /// extension by SIZE).
    written_prefix: u64,
    /// The smallest size the client has set (FSETSTAT SIZE): bytes of the old file from there on
    /// were truncated away.
    smallest_size_set: Option<u64>,
}

/// The error OPEN gets, or a commit would get, for a file already at `path`; None if it may be
/// replaced.
pub(super) fn refusal_for_existing(path: &VPath, options: &WriteOptions) -> Option<VfsError> {
    if let Some(denied) = &options.if_exists {
        return Some(denied.clone());
    }
    options
        .exclusive
        .then(|| VfsError::AlreadyExists(format!("{path} already exists")))
}

impl DropboxWriter {
    pub(super) fn new(
        upload: Upload,
        path: VPath,
        progress: UploadProgress,
        options: WriteOptions,
        lookup: Option<Lookup>,
    ) -> Self {
        DropboxWriter {
            upload,
            path,
            _progress: progress,
            last_write: Instant::now(),
            options,
            lookup,
            written_prefix: 0,
            smallest_size_set: None,
        }
    }

    /// A write the upload refused, as the client sees it.
    fn refused(&self, error: WriteError) -> VfsError {
        match error {
            WriteError::Gap { .. } => VfsError::Unsupported(RESUME_REFUSED.to_string()),
            other => VfsError::Failure(format!("{}: {other}", self.path)),
        }
    }

    /// Refuses the upload as soon as the look started at OPEN shows that it can never be
    /// committed (the SFTP layer then poisons the handle). A look that failed decides nothing
    /// here.
    fn check_early_answer(&mut self) -> VfsResult<()> {
        let found = self
            .lookup
            .as_mut()
            .and_then(Lookup::ready)
            .and_then(|answer| answer.as_ref().ok())
            .cloned();
        match found.and_then(|found| self.refusal(&found)) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Why nothing may be committed over what the look found, if so.
    fn refusal(&self, found: &Found) -> Option<VfsError> {
        if !found.parent_exists {
            return self.options.if_parent_missing.clone();
        }
        match &found.target {
            Some(target) if target.is_dir() => {
                Some(VfsError::Failure(format!("{} is a folder", self.path)))
            }
            Some(_) => refusal_for_existing(&self.path, &self.options),
            None => None,
        }
    }

    /// Whether the commit depends on the size of the file it replaces: opened without TRUNC,
    /// and not every byte below the smallest size set has been written.
    fn depends_on_old_size(&self) -> bool {
        !self.options.truncate && self.written_prefix < self.smallest_size_set.unwrap_or(u64::MAX)
    }

    /// The checks that decide whether to commit at all. Waits for the look only where its answer
    /// decides (a parent that may not be created, bytes of the old file that may not be
    /// dropped); otherwise the commit itself is the only Dropbox call of the CLOSE.
    async fn check_before_commit(&mut self) -> VfsResult<()> {
        let must_know = self.options.if_parent_missing.is_some() || self.depends_on_old_size();
        let found = match self.lookup.as_mut() {
            Some(lookup) if must_know => match lookup.answer().await {
                Ok(found) => Some(found.clone()),
                Err(e) => {
                    return Err(VfsError::Failure(format!(
                        "{}: cannot check what the upload would replace: {e}",
                        self.path
                    )))
                }
            },
            Some(lookup) => lookup
                .ready()
                .and_then(|answer| answer.as_ref().ok())
                .cloned(),
            None => None,
        };
        let Some(found) = found else {
            return Ok(());
        };
        if let Some(refused) = self.refusal(&found) {
            return Err(refused);
        }
        if self.depends_on_old_size() {
            let old_size = found.target.map_or(0, |target| target.size);
            let kept = old_size.min(self.smallest_size_set.unwrap_or(u64::MAX));
            if self.written_prefix < kept {
                return Err(VfsError::Unsupported(PARTIAL_REFUSED.to_string()));
            }
        }
        Ok(())
    }

    fn commit_mode(&self) -> WriteMode {
        if self.options.keeps_existing() {
            WriteMode::Add
        } else {
            WriteMode::Overwrite
        }
    }
}

impl FileWriter for DropboxWriter {
    async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        self.check_early_answer()?;
        let end = offset + data.len() as u64;
        let result = self.upload.write(offset, data).await;
        self.last_write = Instant::now();
        result.map_err(|e| self.refused(e))?;
        if offset <= self.written_prefix {
            self.written_prefix = self.written_prefix.max(end);
        }
        Ok(())
    }

    async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        self.check_early_answer()?;
        let result = self.upload.set_len(size).await;
        result.map_err(|e| self.refused(e))?;
        self.smallest_size_set = Some(self.smallest_size_set.map_or(size, |s| s.min(size)));
        self.written_prefix = self.written_prefix.min(size);
        Ok(())
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

    async fn commit(mut self) -> VfsResult<Committed> {
        self.check_before_commit().await?;
        let commit_started = Instant::now();
        let mode = self.commit_mode();
        let stored = self
            .upload
            .commit(mode)
            .await
            .map_err(|e| commit_error(&self.path, &self.options, e))?;
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
            content_hash: stored.content_hash.clone(),
            info: file_info(&Metadata::File(stored)),
        })
    }
}

/// A failed commit as the client sees it: a conflict in `add` mode is the rule that kept the
/// other file.
fn commit_error(path: &VPath, options: &WriteOptions, error: CommitError) -> VfsError {
    if let CommitError::Dropbox(dropbox) = &error {
        if dropbox.is_conflict() {
            if dropbox.tags().iter().any(|tag| tag == "folder") {
                return VfsError::Failure(format!("{path} is a folder"));
            }
            if let Some(refused) = refusal_for_existing(path, options) {
                return refused;
            }
        }
        if let Some(refused) = super::name_refused(dropbox, path) {
            return refused;
        }
    }
    if let CommitError::Dropbox(dropbox) = &error {
        if dropbox.is_credentials_problem() {
            super::log_credentials_problem(dropbox);
        }
    }
    VfsError::Failure(error.to_string())
}

/// Uploads in progress on one account, by Dropbox path (case-folded, as Dropbox compares).
#[derive(Clone, Default)]
pub struct OpenUploads {
    by_path: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
}

impl OpenUploads {
    /// Bytes received so far by an open upload to `dropbox_path`, if there is one.
    pub fn received(&self, dropbox_path: &str) -> Option<u64> {
        let by_path = self.by_path.lock().expect("open uploads lock");
        by_path
            .get(&case_key(dropbox_path))
            .map(|counter| counter.load(Ordering::Relaxed))
    }

    /// How many uploads are open (receiving or committing); graceful shutdown waits for 0.
    pub fn count(&self) -> usize {
        self.by_path.lock().expect("open uploads lock").len()
    }

    pub(super) fn register(&self, dropbox_path: &str) -> UploadProgress {
        let key = case_key(dropbox_path);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_upload_is_found_by_any_case_and_either_unicode_form() {
        let uploads = OpenUploads::default();
        let progress = uploads.register("/alice/Caf\u{e9}.TXT");
        progress.counter().store(7, Ordering::Relaxed);
        assert_eq!(uploads.received("/alice/cafe\u{301}.txt"), Some(7));
        assert_eq!(uploads.received("/ALICE/CAF\u{c9}.txt"), Some(7));
        assert_eq!(uploads.received("/alice/other.txt"), None);
        drop(progress);
        assert_eq!(uploads.received("/alice/caf\u{e9}.txt"), None);
    }
}
