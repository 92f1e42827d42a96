//! Committing a spooled file to Dropbox, and checking that Dropbox holds exactly our bytes.
//!
//! A commit that is alone (nothing else of its client on the way to Dropbox) goes as it always
//! has; one that meets others is committed in a batch (`batch`). Alone, up to the
//! single-upload limit the file goes as one `files/upload`. Above it the file goes as an
//! upload session (concurrent, or sequential with one connection): the one the pipeline has
//! been appending while the client sent, or, if that was abandoned (a write changed bytes
//! already sent) or failed, a fresh one.
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

use super::batch;
use super::pipeline::{Appended, SessionKind, SessionPipeline};
use super::spool::SpoolReader;
use super::UploadSettings;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the upload was not stored in Dropbox: {}", .0.summary())]
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

/// Commits `target`, finishing the session `pipeline` has been appending to, if there is one:
/// alone if nothing else of this client is being committed, else in the next batch (`batch`).
pub(super) async fn commit(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
) -> Result<FileMetadata, CommitError> {
    let stored = match target.client.commit_alone() {
        Some(_alone) => commit_alone(target, pipeline).await?,
        None => batch::commit(target, pipeline).await?,
    };
    match stored.content_hash.as_deref() {
        Some(hash) if hash == target.content_hash => Ok(stored),
        other => Err(CommitError::HashMismatch {
            expected: target.content_hash.clone(),
            stored: other.unwrap_or("none").to_string(),
        }),
    }
}

/// One files/upload, or the session and its finish.
async fn commit_alone(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
) -> Result<FileMetadata, CommitError> {
    if target.len <= target.settings.single_upload_limit {
        return upload_whole(target).await;
    }
    let cursor = fill_session(target, pipeline, false).await?;
    finish(target, cursor).await
}

/// The spool read afresh from the start for every try.
pub(super) fn whole_body(target: &Target<'_>) -> Arc<dyn BodyFactory> {
    let spool = target.spool.clone();
    let len = target.len;
    Arc::new(move || {
        let spool = spool.clone();
        async move { spool.body(0, len).await }
    })
}

async fn upload_whole(target: &Target<'_>) -> Result<FileMetadata, CommitError> {
    let arg = UploadArg {
        client_modified: target.client_modified.clone(),
        content_hash: Some(target.content_hash.clone()),
        ..UploadArg::new(target.path, target.mode.clone())
    };
    // Whatever the mode, a try is repeated only once Dropbox has been asked whether the last
    // one landed.
    Ok(target
        .client
        .upload_checked(&arg, whole_body(target), &target.content_hash)
        .await?)
}

/// Every byte of the file in an upload session: the one the pipeline has been appending, or
/// a fresh one if that failed; the tail that did not fill a chunk goes last (a concurrent
/// session's spread over its connections first, all but a closing piece of at most 4 MiB), as
/// the closing append if `close` (always for a concurrent session). Returns where the session
/// stands.
pub(super) async fn fill_session(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
    close: bool,
) -> Result<UploadSessionCursor, CommitError> {
    let finishing = pipeline.map(|mut pipeline| {
        pipeline.dispatch_rest(target.len);
        pipeline.finish()
    });
    let appended = match finishing {
        Some(finishing) => match finishing.await {
            Ok(appended) => Some(appended),
            // The background appends failed; one fresh session from the spool gets a second
            // chance (a transient failure should not cost the client its upload).
            Err(e) => {
                tracing::warn!(path = target.path, error = %e, "session upload failed; starting over");
                None
            }
        },
        None => None,
    };
    let appended = match appended {
        Some(appended) => appended,
        None => {
            let kind = SessionKind::for_connections(target.settings.connections);
            let fresh = SessionPipeline::start(target.client.clone(), target.spool.clone(), kind);
            append_all(fresh, target.len, target.settings.chunk_size).await?
        }
    };
    Ok(appended
        .append_tail(target.client, &target.spool, target.len, close)
        .await?)
}

/// Appends every full chunk of the file through a new pipeline.
async fn append_all(
    mut pipeline: SessionPipeline,
    len: u64,
    chunk_size: u64,
) -> Result<Appended, CommitError> {
    pipeline.dispatch_full_chunks(len, chunk_size);
    pipeline.dispatch_rest(len);
    Ok(pipeline.finish().await?)
}

/// Where and how the file is committed: the write mode and the client's mtime.
pub(super) fn commit_info(target: &Target<'_>) -> CommitInfo {
    CommitInfo {
        client_modified: target.client_modified.clone(),
        ..CommitInfo::new(target.path, target.mode.clone())
    }
}

/// Commits the session alone (finish carries no data, so a failed finish can be retried
/// without resending anything).
async fn finish(
    target: &Target<'_>,
    cursor: UploadSessionCursor,
) -> Result<FileMetadata, CommitError> {
    let arg = UploadSessionFinishArg {
        cursor,
        commit: commit_info(target),
        // Dropbox's content_hash argument covers only this call's data (none here); the whole
        // file's hash is checked against the metadata Dropbox answers with.
        content_hash: None,
    };
    Ok(target
        .client
        .upload_session_finish_checked(&arg, &target.content_hash)
        .await?)
}
