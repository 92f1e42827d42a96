//! Committing a spooled file to Dropbox, and checking that Dropbox holds exactly our bytes.
//!
//! Up to the single-upload limit the file goes as one `files/upload`; above it, as a
//! sequential upload session in `chunk_size` pieces. Either way the commit carries our
//! content_hash (Dropbox refuses a mismatch) and the hash Dropbox answers with is compared
//! again, so a success here means the file in Dropbox is byte-exact.

use crate::dropbox::{
    self, CommitInfo, DropboxClient, DropboxError, FileMetadata, UploadArg, UploadSessionAppendArg,
    UploadSessionCursor, UploadSessionFinishArg, UploadSessionStartArg, WriteMode,
};

use super::{Spool, UploadSettings};

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("Dropbox rejected the upload: {0}")]
    Dropbox(#[from] DropboxError),
    #[error("Dropbox stored different bytes (content_hash {stored}, expected {expected})")]
    HashMismatch { expected: String, stored: String },
    #[error("reading the spooled upload failed: {0}")]
    Spool(#[from] std::io::Error),
}

/// Sends the spooled file to `path` (replacing any file there) and verifies the result.
pub async fn commit(
    client: &DropboxClient,
    spool: &Spool,
    path: &str,
    client_modified: Option<i64>,
    settings: &UploadSettings,
) -> Result<FileMetadata, CommitError> {
    let expected = spool.content_hash().await?;
    let client_modified = client_modified.map(dropbox::timestamp);
    let stored = if spool.len() <= settings.single_upload_limit {
        upload_whole(client, spool, path, client_modified, &expected).await?
    } else {
        upload_in_session(client, spool, path, client_modified, &expected, settings).await?
    };
    match stored.content_hash.as_deref() {
        Some(hash) if hash == expected => Ok(stored),
        other => Err(CommitError::HashMismatch {
            expected,
            stored: other.unwrap_or("none").to_string(),
        }),
    }
}

async fn upload_whole(
    client: &DropboxClient,
    spool: &Spool,
    path: &str,
    client_modified: Option<String>,
    content_hash: &str,
) -> Result<FileMetadata, CommitError> {
    let arg = UploadArg {
        path: path.to_string(),
        mode: WriteMode::Overwrite,
        autorename: false,
        client_modified,
        mute: false,
        strict_conflict: false,
        content_hash: Some(content_hash.to_string()),
    };
    let body = spool.body(0, spool.len()).await?;
    Ok(client.upload(&arg, body).await?)
}

async fn upload_in_session(
    client: &DropboxClient,
    spool: &Spool,
    path: &str,
    client_modified: Option<String>,
    content_hash: &str,
    settings: &UploadSettings,
) -> Result<FileMetadata, CommitError> {
    let session_id = client
        .upload_session_start(
            &UploadSessionStartArg {
                close: false,
                session_type: None,
                content_hash: None,
            },
            reqwest::Body::from(Vec::new()),
        )
        .await?;
    let total = spool.len();
    let mut offset = 0;
    while offset < total {
        let len = settings.chunk_size.min(total - offset);
        let arg = UploadSessionAppendArg {
            cursor: UploadSessionCursor {
                session_id: session_id.clone(),
                offset,
            },
            close: offset + len == total,
            content_hash: None,
        };
        match client
            .upload_session_append(&arg, spool.body(offset, len).await?)
            .await
        {
            Ok(()) => offset += len,
            // Dropbox says where it is; carry on from there (a retried append that had landed).
            Err(e) => match e.correct_offset() {
                Some(correct) if correct <= total && correct != offset => offset = correct,
                _ => return Err(e.into()),
            },
        }
    }
    let finish = UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id,
            offset: total,
        },
        commit: CommitInfo {
            path: path.to_string(),
            mode: WriteMode::Overwrite,
            autorename: false,
            client_modified,
            mute: false,
            strict_conflict: false,
        },
        content_hash: Some(content_hash.to_string()),
    };
    Ok(client
        .upload_session_finish(&finish, reqwest::Body::from(Vec::new()))
        .await?)
}
