//! Appending an upload session while the client is still sending.
//!
//! Once an upload has grown past the single-upload limit it will be committed as a session, so
//! there is no reason to wait for CLOSE: each full chunk is appended as soon as it is spooled, by
//! a background task, and CLOSE only has to send the tail and finish. The chunks already sent
//! are frozen: a later write into them (or a truncation below them) makes the pipeline stale,
//! and the commit falls back to a fresh session from the spool.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::backend::dropbox::api::{
    DropboxClient, DropboxError, UploadBody, UploadSessionAppendArg, UploadSessionCursor,
    UploadSessionStartArg,
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
        let task = tokio::spawn(append_chunks(client, spool, queue).in_current_span());
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
        .upload_session_start(&UploadSessionStartArg::default(), Vec::new())
        .await?;
    let mut offset = 0;
    while let Some((chunk_offset, len)) = queue.recv().await {
        debug_assert_eq!(chunk_offset, offset);
        offset = append(&client, &spool, &session_id, (offset, len), false).await?;
    }
    Ok(Appended { session_id, offset })
}

/// How often one append may be moved to where Dropbox says the session stands.
const MAX_RESYNCS: u32 = 3;

/// Appends bytes `offset..offset + len` of the spool; returns the new offset. With `close`
/// the append is the session's last (it may carry no bytes), as a batch commit needs.
///
/// The client repeats an append after a lost answer or a server error with a fresh body from
/// the spool (Dropbox checks the offset, so a repeat cannot add bytes twice). When Dropbox
/// answers `incorrect_offset`, its `correct_offset` says where the session stands: at the end
/// of this chunk means an earlier try had landed (success); anywhere before it, the rest is
/// sent from there (the spool still holds every byte). A closing append repeated after its
/// first try landed is told `closed`: only this upload appends to its session, so that is
/// the first try's success (the commit checks the offset and the hash in any case).
pub async fn append(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    (offset, len): (u64, u64),
    close: bool,
) -> Result<u64, DropboxError> {
    let end = offset + len;
    let mut from = offset;
    let mut resyncs = 0;
    loop {
        let error = match append_once(client, spool, session_id, (from, end - from), close).await {
            Ok(()) => return Ok(end),
            Err(error) => error,
        };
        if close && error.has_tag("closed") {
            return Ok(end);
        }
        match error.correct_offset() {
            Some(correct) if correct == end => return Ok(end),
            Some(correct) if correct < end && resyncs < MAX_RESYNCS => {
                tracing::debug!(
                    session_id,
                    from,
                    correct,
                    "upload session offset resynchronised"
                );
                from = correct;
                resyncs += 1;
            }
            _ => return Err(error),
        }
    }
}

async fn append_once(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    (offset, len): (u64, u64),
    close: bool,
) -> Result<(), DropboxError> {
    let arg = UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: session_id.to_string(),
            offset,
        },
        close,
        content_hash: None,
    };
    let spool = spool.clone();
    // A fresh stream from the spool for every try: the bytes are never held in memory.
    let body = UploadBody::factory(move || {
        let spool = spool.clone();
        async move { spool.body(offset, len).await }
    });
    client.upload_session_append(&arg, body).await
}
