//! Uploads the Dropbox way: spool every byte to a temp file, then commit the whole file.
//!
//! Dropbox cannot write into a file at an offset, so an SFTP upload is collected in a
//! [`Spool`] (a temp file, never memory) and committed at CLOSE: one `files/upload` up to the
//! single-upload limit, an upload session above it, appended while the client is still sending,
//! several chunks at once over connections of their own (`pipeline`). The commit carries our content_hash and checks the one Dropbox answers with,
//! so a success means Dropbox holds exactly these bytes. A commit that meets another commit of
//! its account is sent as a closed session and committed with others in one batch (`batch`).
//! An [`Upload`] dropped without commit sends nothing more and leaves nothing behind.

mod batch;
mod commit;
mod pipeline;
mod spool;
pub mod spool_dir;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::dropbox::api::{self, DropboxClient, FileMetadata, WriteMode};

pub use commit::CommitError;
use commit::Target;
use pipeline::{SessionKind, SessionPipeline};
pub use spool::{remove_stale_spools, Spool};

/// How uploads are spooled and committed.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub spool_dir: PathBuf,
    /// Files up to this many bytes go as one files/upload.
    pub single_upload_limit: u64,
    /// Upload-session chunk size (a multiple of 4 MiB).
    pub chunk_size: u64,
    /// Chunk appends of one session in flight at once; 1 makes the session sequential.
    pub connections: usize,
    /// The largest file a client may upload.
    pub max_file_size: u64,
    /// Free space the spool's file system must keep; an upload that would go below is refused.
    pub min_free_space: u64,
}

/// Why a write cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The write starts past what has been received: a resume, which Dropbox cannot do.
    #[error("write at offset {offset} leaves a gap after byte {received}")]
    Gap { offset: u64, received: u64 },
    #[error("the file would be larger than the maximum upload size of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the gateway is low on spool space ({free} bytes free); try again later")]
    SpoolFull { free: u64 },
    #[error("spooling the upload failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One file on its way to Dropbox.
pub struct Upload {
    client: DropboxClient,
    dropbox_path: String,
    settings: Arc<UploadSettings>,
    spool: Spool,
    pipeline: Option<SessionPipeline>,
    client_modified: Option<i64>,
    /// Bytes received, visible to STAT from other sessions while the upload is open.
    progress: Arc<AtomicU64>,
    /// Spool length at which free space is checked next (statvfs is not free).
    next_space_check: u64,
}

/// How often (in bytes) the spool's free space is checked.
const SPACE_CHECK_INTERVAL: u64 = 16 * 1024 * 1024;

impl Upload {
    pub async fn start(
        client: DropboxClient,
        dropbox_path: String,
        settings: Arc<UploadSettings>,
        progress: Arc<AtomicU64>,
    ) -> std::io::Result<Upload> {
        let spool = Spool::create(&settings.spool_dir).await?;
        Ok(Upload {
            client,
            dropbox_path,
            settings,
            spool,
            pipeline: None,
            client_modified: None,
            progress,
            next_space_check: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.spool.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spool.is_empty()
    }

    pub fn set_client_modified(&mut self, mtime: i64) {
        self.client_modified = Some(mtime);
    }

    pub fn client_modified(&self) -> Option<i64> {
        self.client_modified
    }

    pub async fn write(&mut self, offset: u64, data: Bytes) -> Result<(), WriteError> {
        let received = self.spool.len();
        if offset > received {
            return Err(WriteError::Gap { offset, received });
        }
        let end = offset + data.len() as u64;
        if end > self.settings.max_file_size {
            return Err(WriteError::TooLarge {
                limit: self.settings.max_file_size,
            });
        }
        self.check_space(end)?;
        if self
            .pipeline
            .as_ref()
            .is_some_and(|p| offset < p.dispatched())
        {
            // Bytes already appended to the session changed: it can no longer be finished.
            self.pipeline = None;
        }
        self.spool.write_at(offset, data).await?;
        self.progress.store(self.spool.len(), Ordering::Relaxed);
        self.feed_pipeline();
        Ok(())
    }

    /// FSETSTAT SIZE: truncate or zero-extend. The zeros of an extension are bytes like any
    /// written ones: they count against the size limit and the spool's free-space floor, and
    /// they go to Dropbox at the commit, so one small request cannot make a large file.
    pub async fn set_len(&mut self, size: u64) -> Result<(), WriteError> {
        if size > self.settings.max_file_size {
            return Err(WriteError::TooLarge {
                limit: self.settings.max_file_size,
            });
        }
        if size > self.spool.len() {
            self.check_space(size)?;
        }
        if self.pipeline.as_ref().is_some_and(|p| !p.fits_length(size)) {
            self.pipeline = None;
        }
        self.spool.set_len(size).await?;
        self.progress.store(size, Ordering::Relaxed);
        self.feed_pipeline();
        Ok(())
    }

    /// Sends the file and returns Dropbox's metadata once it holds exactly our bytes. `mode` is
    /// `overwrite`, or `add` when an existing file must be left alone (Dropbox then refuses the
    /// commit with a conflict).
    pub async fn commit(mut self, mode: WriteMode) -> Result<FileMetadata, CommitError> {
        let pipeline = self.pipeline.take();
        let target = self.commit_target(mode).await?;
        commit::commit(&target, pipeline).await
    }

    /// What every request of the commit needs to know about this upload.
    async fn commit_target(&self, mode: WriteMode) -> Result<Target<'_>, CommitError> {
        Ok(Target {
            client: &self.client,
            spool: self.spool.reader(),
            len: self.spool.len(),
            path: &self.dropbox_path,
            client_modified: self.client_modified.map(api::timestamp),
            content_hash: self.spool.content_hash().await?,
            mode,
            settings: &self.settings,
        })
    }

    /// Starts or feeds the background session once the file is too big for one request.
    /// Only a spool still written in order is worth pipelining (what was sent must not change).
    fn feed_pipeline(&mut self) {
        let received = self.spool.len();
        if received <= self.settings.single_upload_limit {
            return;
        }
        let kind = SessionKind::for_connections(self.settings.connections);
        let pipeline = self.pipeline.get_or_insert_with(|| {
            SessionPipeline::start(self.client.clone(), self.spool.reader(), kind)
        });
        pipeline.dispatch_full_chunks(received, self.settings.chunk_size);
    }

    fn check_space(&mut self, end: u64) -> Result<(), WriteError> {
        if end < self.next_space_check {
            return Ok(());
        }
        let free = self.spool.reader().free_space()?;
        let incoming = end.saturating_sub(self.spool.len());
        if free.saturating_sub(incoming) < self.settings.min_free_space {
            return Err(WriteError::SpoolFull { free });
        }
        self.next_space_check = end + SPACE_CHECK_INTERVAL;
        Ok(())
    }
}
