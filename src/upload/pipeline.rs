//! Appending an upload session while the client is still sending.
//!
//! Once an upload has grown past the single-upload limit it will be committed as a session, so
//! there is no reason to wait for CLOSE: each full chunk is appended as soon as it is spooled, by
//! a background task, and CLOSE only has to send the tail and finish. The chunks already sent
//! are frozen: a later write into them (or a truncation below them) makes the pipeline stale,
//! and the commit falls back to a fresh session from the spool.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dropbox::{
    DropboxClient, DropboxError, UploadSessionAppendArg, UploadSessionCursor, UploadSessionStartArg,
};

use super::spool::SpoolReader;

/// A session being appended in the background.
pub struct SessionPipeline {
    /// Chunks to append, as (offset, len); None once the caller has said there are no more.
    chunks: Option<mpsc::UnboundedSender<(u64, u64)>>,
    task: JoinHandle<Result<Appended, DropboxError>>,
    /// Bytes handed to the task so far (all of them from the start of the file).
    dispatched: u64,
}

/// What the background task achieved.
pub struct Appended {
    pub session_id: String,
    /// Bytes Dropbox holds in the session, from offset 0.
    pub offset: u64,
}

impl SessionPipeline {
    pub fn start(client: DropboxClient, spool: SpoolReader) -> SessionPipeline {
        let (chunks, queue) = mpsc::unbounded_channel();
        let task = tokio::spawn(append_chunks(client, spool, queue));
        SessionPipeline {
            chunks: Some(chunks),
            task,
            dispatched: 0,
        }
    }

    /// Bytes already handed over: they must not change any more.
    pub fn dispatched(&self) -> u64 {
        self.dispatched
    }

    /// Hands over every full chunk of `0..received` not yet dispatched.
    pub fn dispatch_full_chunks(&mut self, received: u64, chunk_size: u64) {
        while received - self.dispatched >= chunk_size {
            if let Some(chunks) = &self.chunks {
                // A closed queue means the task has failed; `finish` reports why.
                let _ = chunks.send((self.dispatched, chunk_size));
            }
            self.dispatched += chunk_size;
        }
    }

    /// Waits for every dispatched chunk to be appended.
    pub async fn finish(mut self) -> Result<Appended, DropboxError> {
        self.chunks = None;
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(DropboxError::Transport(format!(
                "the session upload task failed: {e}"
            ))),
        }
    }
}

impl Drop for SessionPipeline {
    /// An upload abandoned without CLOSE stops appending at once.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn append_chunks(
    client: DropboxClient,
    spool: SpoolReader,
    mut queue: mpsc::UnboundedReceiver<(u64, u64)>,
) -> Result<Appended, DropboxError> {
    let session_id = client
        .upload_session_start(
            &UploadSessionStartArg::default(),
            reqwest::Body::from(Vec::new()),
        )
        .await?;
    let mut offset = 0;
    while let Some((chunk_offset, len)) = queue.recv().await {
        debug_assert_eq!(chunk_offset, offset);
        offset = append(&client, &spool, &session_id, offset, len).await?;
    }
    Ok(Appended { session_id, offset })
}

/// Appends `len` bytes at `offset`; returns the new offset. An `incorrect_offset` that says the
/// bytes are already there (a retried append that had landed) counts as success. An access
/// token that expired in the middle is retried once: the client cannot replay a streamed body
/// itself, but it has refreshed the token by the time the error arrives.
pub async fn append(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    offset: u64,
    len: u64,
) -> Result<u64, DropboxError> {
    match append_once(client, spool, session_id, offset, len).await {
        Err(e) if e.is_expired_token() => {
            tracing::debug!(
                session_id,
                offset,
                "access token expired during an append; retrying"
            );
            append_once(client, spool, session_id, offset, len).await
        }
        other => other,
    }
}

async fn append_once(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    offset: u64,
    len: u64,
) -> Result<u64, DropboxError> {
    let arg = UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: session_id.to_string(),
            offset,
        },
        close: false,
        content_hash: None,
    };
    let body = spool
        .body(offset, len)
        .await
        .map_err(|e| DropboxError::Transport(format!("reading the spool failed: {e}")))?;
    match client.upload_session_append(&arg, body).await {
        Ok(()) => Ok(offset + len),
        Err(e) if e.correct_offset() == Some(offset + len) => Ok(offset + len),
        Err(e) => Err(e),
    }
}
