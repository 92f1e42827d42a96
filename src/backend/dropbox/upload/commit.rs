//! Committing a spooled file to Dropbox, and checking that Dropbox holds exactly our bytes.
//!
//! Up to the single-upload limit the file goes as one `files/upload`. Above it the file goes
//! as a sequential upload session: the one the pipeline has been appending while the client
//! sent, or, if that was abandoned (a write changed bytes already sent) or failed, a fresh one.
//! Either way the hash Dropbox answers with must equal ours (a single upload also sends it, so
//! Dropbox itself refuses a mismatch).
//!
//! The commit replaces what is at the path (`overwrite`), or, when an existing file must be left
//! alone, commits in `add` mode, so that Dropbox itself refuses a file that appeared while the
//! upload was open: the rule holds at the moment of the commit, with no lookup before it.
//!
//! Requests are retried by the client as its retry policy allows; what this module adds is
//! what only it can give: bodies streamed afresh from the spool for every try, and our
//! content_hash, by which a commit whose answer was lost is recognised as landed.

use std::sync::Arc;

use crate::backend::dropbox::api::{
    BodyFactory, CommitInfo, DropboxClient, DropboxError, FileMetadata, UploadArg,
    UploadSessionCursor, UploadSessionFinishArg, WriteMode,
};

use super::pipeline::{self, Appended, SessionPipeline};
use super::spool::SpoolReader;
use super::UploadSettings;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("Dropbox rejected the upload: {}", .0.summary())]
    Dropbox(#[from] DropboxError),
    #[error("Dropbox stored different bytes (content_hash {stored}, expected {expected})")]
    HashMismatch { expected: String, stored: String },
    #[error("reading the spooled upload failed: {0}")]
    Spool(#[from] std::io::Error),
}

/// What every commit request needs to know; [`super::Upload`] builds it from itself.
pub(super) struct Target<'a> {
    pub client: &'a DropboxClient,
    pub spool: SpoolReader,
    pub len: u64,
    pub path: &'a str,
    pub client_modified: Option<String>,
    pub content_hash: String,
    /// `overwrite`, or `add` when an existing file must be left alone.
    pub mode: WriteMode,
    pub settings: &'a UploadSettings,
}

/// Commits `target`, finishing the session `pipeline` has been appending to, if there is one.
pub(super) async fn commit(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
) -> Result<FileMetadata, CommitError> {
    let settings = target.settings;
    let stored = if target.len <= settings.single_upload_limit {
        upload_whole(target).await?
    } else {
        upload_in_session(target, pipeline, settings.chunk_size).await?
    };
    match stored.content_hash.as_deref() {
        Some(hash) if hash == target.content_hash => Ok(stored),
        other => Err(CommitError::HashMismatch {
            expected: target.content_hash.clone(),
            stored: other.unwrap_or("none").to_string(),
        }),
    }
}

async fn upload_whole(target: &Target<'_>) -> Result<FileMetadata, CommitError> {
    let arg = UploadArg {
        client_modified: target.client_modified.clone(),
        content_hash: Some(target.content_hash.clone()),
        ..UploadArg::new(target.path, target.mode.clone())
    };
    let spool = target.spool.clone();
    let len = target.len;
    // Each try streams the spool from the start.
    let body: Arc<dyn BodyFactory> = Arc::new(move || {
        let spool = spool.clone();
        async move { spool.body(0, len).await }
    });
    // Whatever the mode, a try is repeated only once Dropbox has been asked whether the last
    // one landed.
    Ok(target
        .client
        .upload_checked(&arg, body, &target.content_hash)
        .await?)
}

async fn upload_in_session(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
    chunk_size: u64,
) -> Result<FileMetadata, CommitError> {
    if let Some(pipeline) = pipeline {
        match pipeline.finish().await {
            Ok(appended) => return finish(target, appended).await,
            // The background appends failed; one fresh session from the spool gets a second
            // chance (a transient failure should not cost the client its upload).
            Err(e) => {
                tracing::warn!(path = target.path, error = %e, "session upload failed; starting over")
            }
        }
    }
    let fresh = SessionPipeline::start(target.client.clone(), target.spool.clone());
    finish(target, append_all(fresh, target.len, chunk_size).await?).await
}

/// Appends every full chunk of the file through a new pipeline.
async fn append_all(
    mut pipeline: SessionPipeline,
    len: u64,
    chunk_size: u64,
) -> Result<Appended, CommitError> {
    pipeline.dispatch_full_chunks(len, chunk_size);
    Ok(pipeline.finish().await?)
}

/// Appends the tail that did not fill a chunk, then commits the session (finish carries no
/// data, so a failed finish can be retried without resending anything).
async fn finish(target: &Target<'_>, appended: Appended) -> Result<FileMetadata, CommitError> {
    let Appended {
        session_id,
        mut offset,
    } = appended;
    if target.len > offset {
        offset = pipeline::append(
            target.client,
            &target.spool,
            &session_id,
            offset,
            target.len - offset,
        )
        .await?;
    }
    let arg = UploadSessionFinishArg {
        cursor: UploadSessionCursor { session_id, offset },
        commit: CommitInfo {
            client_modified: target.client_modified.clone(),
            ..CommitInfo::new(target.path, target.mode.clone())
        },
        // Dropbox's content_hash argument covers only this call's data (none here); the whole
        // file's hash is checked against the metadata Dropbox answers with.
        content_hash: None,
    };
    Ok(target
        .client
        .upload_session_finish_checked(&arg, &target.content_hash)
        .await?)
}
