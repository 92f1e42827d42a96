//! A commit that meets others: the file's bytes go into a closed upload session, and the
//! session is committed with the next batch.
//!
//! Dropbox commits one change at a time per namespace and refuses overlapping ones, so
//! parallel CLOSEs committed one by one mostly wait and back off. Uploading bytes takes no
//! lock, so each CLOSE sends its data at once, in parallel with the others, and only the
//! commits are gathered (`files/upload_session/finish_batch_v2`, see the client's `batch`).
//! A batch takes only closed sessions: a small file is sent whole by `upload_session/start`
//! with `close: true` (and our content_hash, which Dropbox checks against the bytes); a large
//! one finishes the session its pipeline has been appending, its last append closing it.
//! The entry commits in the write mode and with the mtime the commit would have had alone.

use crate::backend::dropbox::api::{
    FileMetadata, UploadBody, UploadSessionCursor, UploadSessionFinishArg, UploadSessionStartArg,
};

use super::commit::{commit_info, fill_session, whole_body, CommitError, Target};
use super::pipeline::SessionPipeline;

/// Sends the file's bytes into a closed session and commits it in the next batch.
pub(super) async fn commit(
    target: &Target<'_>,
    pipeline: Option<SessionPipeline>,
) -> Result<FileMetadata, CommitError> {
    let cursor = if target.len <= target.settings.single_upload_limit {
        start_closed(target).await?
    } else {
        fill_session(target, pipeline, true).await?
    };
    let arg = UploadSessionFinishArg {
        cursor,
        commit: commit_info(target),
        // An entry's content_hash covers the data sent with the batch, which is none; the whole
        // file's hash is compared with the metadata of the entry's success.
        content_hash: None,
    };
    Ok(target
        .client
        .finish_in_batch(arg, target.content_hash.clone())
        .await?)
}

/// The whole file as one closed session.
async fn start_closed(target: &Target<'_>) -> Result<UploadSessionCursor, CommitError> {
    let arg = UploadSessionStartArg {
        close: true,
        session_type: None,
        content_hash: Some(target.content_hash.clone()),
    };
    let body = UploadBody::Factory(whole_body(target));
    let session_id = target.client.upload_session_start(&arg, body).await?;
    Ok(UploadSessionCursor {
        session_id,
        offset: target.len,
    })
}
