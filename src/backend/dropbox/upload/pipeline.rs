//! Appending an upload session while the client is still sending.
//!
//! Once an upload has grown past the single-upload limit it will be committed as a session, so
//! there is no reason to wait for CLOSE: each full chunk is appended as soon as it is spooled, by
//! a background task, and CLOSE only has to send the tail and finish. The chunks already sent
//! are frozen: a later write into them (or a truncation below them) makes the pipeline stale,
//! and the commit falls back to a fresh session from the spool.
//!
//! With one connection the session is sequential and its chunks go one after another. With
//! more it is concurrent: Dropbox takes its pieces in any order, so up to `connections` chunks
//! are in flight at once, each over a TCP connection of its own (the client's transfer pool),
//! since across a long distance one connection carries far less than the link. Every piece but
//! the last must be a multiple of 4 MiB (as `chunk_size` is), and the last must close the
//! session once all others are in; the spec does not say that it may be empty, so a chunk of
//! a concurrent session is handed over only once a byte beyond it has arrived, and the tail
//! left for CLOSE is never empty.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::backend::dropbox::api::{
    BodyFactory, DropboxClient, DropboxError, SessionType, UploadBody, UploadSessionAppendArg,
    UploadSessionCursor, UploadSessionStartArg,
};

use super::spool::SpoolReader;

/// Every piece of a concurrent session but the closing one is a whole number of these.
const PIECE_BLOCK: u64 = 4 * 1024 * 1024;

/// How a session's chunks travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// One after another, in order.
    Sequential,
    /// Up to `connections` at once, in any order.
    Concurrent { connections: usize },
}

impl SessionKind {
    /// A concurrent session when more than one connection may carry an upload's chunks.
    pub fn for_connections(connections: usize) -> SessionKind {
        if connections > 1 {
            SessionKind::Concurrent { connections }
        } else {
            SessionKind::Sequential
        }
    }

    /// Whether a session holding `sent` bytes can become a file of `len` bytes.
    fn fits(self, sent: u64, len: u64) -> bool {
        match self {
            SessionKind::Sequential => len >= sent,
            SessionKind::Concurrent { .. } => len > sent,
        }
    }
}

/// A session being appended in the background.
pub struct SessionPipeline {
    /// Chunks to append, as (offset, len); None once the caller has said there are no more.
    chunks: Option<mpsc::UnboundedSender<(u64, u64)>>,
    task: JoinHandle<Result<Appended, DropboxError>>,
    /// Bytes handed to the task so far (all of them from the start of the file).
    dispatched: u64,
    kind: SessionKind,
}

/// What the background task achieved.
pub struct Appended {
    pub session_id: String,
    /// Bytes Dropbox holds in the session, from offset 0.
    pub offset: u64,
    pub kind: SessionKind,
}

impl SessionPipeline {
    pub fn start(client: DropboxClient, spool: SpoolReader, kind: SessionKind) -> SessionPipeline {
        let (chunks, queue) = mpsc::unbounded_channel();
        let task = match kind {
            SessionKind::Sequential => {
                tokio::spawn(append_in_order(client, spool, queue).in_current_span())
            }
            SessionKind::Concurrent { connections } => tokio::spawn(
                append_concurrently(client, spool, queue, connections).in_current_span(),
            ),
        };
        SessionPipeline {
            chunks: Some(chunks),
            task,
            dispatched: 0,
            kind,
        }
    }

    /// Bytes already handed over: they must not change any more.
    pub fn dispatched(&self) -> u64 {
        self.dispatched
    }

    /// Whether the session can still become a file of `len` bytes: none of the bytes handed
    /// over is cut off, and a concurrent session keeps a byte for its closing piece.
    pub fn fits_length(&self, len: u64) -> bool {
        self.kind.fits(self.dispatched, len)
    }

    /// Hands over every full chunk of `0..received` not yet dispatched (for a concurrent
    /// session, every one with a byte after it).
    pub fn dispatch_full_chunks(&mut self, received: u64, chunk_size: u64) {
        while self.kind.fits(self.dispatched + chunk_size, received) {
            if let Some(chunks) = &self.chunks {
                // A closed queue means the task has failed; `finish` reports why.
                let _ = chunks.send((self.dispatched, chunk_size));
            }
            self.dispatched += chunk_size;
        }
    }

    /// At CLOSE, hands over what is left of a concurrent session's `len` bytes but its closing
    /// piece, cut so that the connections carry it at once: the rest of a chunk sent as one
    /// closing piece would cross the distance on one connection while the others stand idle.
    /// The closing piece left for [`Appended::append_tail`] is at most 4 MiB (at least a byte).
    pub fn dispatch_rest(&mut self, len: u64) {
        let SessionKind::Concurrent { connections } = self.kind else {
            return;
        };
        for piece in rest_pieces(self.dispatched, len, connections) {
            if let Some(chunks) = &self.chunks {
                let _ = chunks.send(piece);
            }
            self.dispatched = piece.0 + piece.1;
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

impl Appended {
    /// Sends the rest of the file's `len` bytes, as the closing append if `close` (always for
    /// a concurrent session, which must be closed before it is finished); returns the cursor
    /// to finish the session at.
    pub async fn append_tail(
        self,
        client: &DropboxClient,
        spool: &SpoolReader,
        len: u64,
        close: bool,
    ) -> Result<UploadSessionCursor, DropboxError> {
        let Appended {
            session_id,
            mut offset,
            kind,
        } = self;
        let tail = (offset, len - offset);
        match kind {
            SessionKind::Concurrent { .. } => {
                append_piece(client, spool, &session_id, tail, true).await?;
                offset = len;
            }
            SessionKind::Sequential if len > offset || close => {
                offset = append(client, spool, &session_id, tail, close).await?;
            }
            SessionKind::Sequential => {}
        }
        Ok(UploadSessionCursor { session_id, offset })
    }
}

/// The pieces, as (offset, len), that carry bytes `dispatched..len` of a concurrent session
/// but the closing piece over `connections` at once: whole blocks, as even as blocks allow.
/// `dispatched` is a whole number of chunks, so of blocks, and below `len`.
fn rest_pieces(dispatched: u64, len: u64, connections: usize) -> Vec<(u64, u64)> {
    let closing_start = (len.max(1) - 1) / PIECE_BLOCK * PIECE_BLOCK;
    let blocks = closing_start.saturating_sub(dispatched) / PIECE_BLOCK;
    let piece = blocks.div_ceil(connections as u64).max(1) * PIECE_BLOCK;
    let mut pieces = Vec::new();
    let mut offset = dispatched;
    while offset < closing_start {
        let this = piece.min(closing_start - offset);
        pieces.push((offset, this));
        offset += this;
    }
    pieces
}

async fn append_in_order(
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
    Ok(Appended {
        session_id,
        offset,
        kind: SessionKind::Sequential,
    })
}

async fn append_concurrently(
    client: DropboxClient,
    spool: SpoolReader,
    queue: mpsc::UnboundedReceiver<(u64, u64)>,
    connections: usize,
) -> Result<Appended, DropboxError> {
    let arg = UploadSessionStartArg {
        session_type: Some(SessionType::Concurrent),
        ..UploadSessionStartArg::default()
    };
    let session_id = client.upload_session_start(&arg, Vec::new()).await?;
    let offset = append_pieces(&client, &spool, &session_id, queue, connections).await?;
    Ok(Appended {
        session_id,
        offset,
        kind: SessionKind::Concurrent { connections },
    })
}

/// Appends each chunk of `queue` as it comes, with up to `connections` in flight; returns
/// the end of the last one once all have landed. The first failure ends the session's use
/// (the pieces still in flight are dropped): the commit starts over from the spool.
async fn append_pieces(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    mut queue: mpsc::UnboundedReceiver<(u64, u64)>,
    connections: usize,
) -> Result<u64, DropboxError> {
    let mut in_flight = FuturesUnordered::new();
    let mut end = 0;
    let mut more = true;
    loop {
        tokio::select! {
            chunk = queue.recv(), if more && in_flight.len() < connections => match chunk {
                Some(chunk) => {
                    end = chunk.0 + chunk.1;
                    in_flight.push(append_piece(client, spool, session_id, chunk, false));
                }
                None => more = false,
            },
            Some(appended) = in_flight.next(), if !in_flight.is_empty() => appended?,
            else => return Ok(end),
        }
    }
}

/// How often one append may be moved to where Dropbox says the session stands.
const MAX_RESYNCS: u32 = 3;

/// Appends bytes `offset..offset + len` of the spool to a sequential session; returns the new
/// offset. With `close` the append is the session's last (it may carry no bytes), as a batch
/// commit needs.
///
/// The client repeats an append after a lost answer or a server error with a fresh body from
/// the spool (Dropbox checks the offset, so a repeat cannot add bytes twice). When Dropbox
/// answers `incorrect_offset`, its `correct_offset` says where the session stands: at the end
/// of this chunk means an earlier try had landed (success); anywhere before it, the rest is
/// sent from there (the spool still holds every byte). A closing append repeated after its
/// first try landed is told `closed`: only this upload appends to its session, so that is
/// the first try's success (the commit checks the offset and the hash in any case).
async fn append(
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
        let arg = append_arg(session_id, from, close);
        let body = UploadBody::Factory(spool_body(spool, (from, end - from)));
        let error = match client.upload_session_append(&arg, body).await {
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

/// Appends bytes `offset..offset + len` of the spool as one piece of a concurrent session
/// (the client tells a repeat's refusal from a failure, see its `concurrent_append`).
async fn append_piece(
    client: &DropboxClient,
    spool: &SpoolReader,
    session_id: &str,
    piece: (u64, u64),
    close: bool,
) -> Result<(), DropboxError> {
    let arg = append_arg(session_id, piece.0, close);
    client
        .upload_session_append_piece(&arg, spool_body(spool, piece))
        .await
}

fn append_arg(session_id: &str, offset: u64, close: bool) -> UploadSessionAppendArg {
    UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: session_id.to_string(),
            offset,
        },
        close,
        content_hash: None,
    }
}

/// A fresh stream of `len` spooled bytes from `offset` for every try: the bytes are never
/// held in memory.
fn spool_body(spool: &SpoolReader, (offset, len): (u64, u64)) -> Arc<dyn BodyFactory> {
    let spool = spool.clone();
    Arc::new(move || {
        let spool = spool.clone();
        async move { spool.body(offset, len).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_one_connection_makes_a_concurrent_session() {
        assert_eq!(SessionKind::for_connections(1), SessionKind::Sequential);
        assert_eq!(
            SessionKind::for_connections(4),
            SessionKind::Concurrent { connections: 4 }
        );
    }

    #[test]
    fn a_concurrent_session_keeps_a_byte_for_its_closing_piece() {
        let concurrent = SessionKind::Concurrent { connections: 4 };
        let sequential = SessionKind::Sequential;
        // A file of exactly what was sent: a sequential session finishes as it is; a
        // concurrent one would need an empty closing append.
        assert!(sequential.fits(8, 8));
        assert!(!concurrent.fits(8, 8));
        assert!(concurrent.fits(8, 9));
        // Cut below what was sent: neither can become that file.
        assert!(!sequential.fits(8, 7));
        assert!(!concurrent.fits(8, 7));
    }

    #[test]
    fn the_rest_at_close_is_spread_over_the_connections_in_whole_blocks() {
        const B: u64 = PIECE_BLOCK;
        // 32 MiB sent, 28 MiB + 5 bytes left: 7 blocks before the closing piece, in pieces of
        // 2 blocks over 4 connections; the closing piece is the last 5 bytes' block.
        assert_eq!(
            rest_pieces(8 * B, 15 * B + 5, 4),
            vec![
                (8 * B, 2 * B),
                (10 * B, 2 * B),
                (12 * B, 2 * B),
                (14 * B, B)
            ]
        );
        // An exact multiple of the block: the last whole block is the closing piece.
        assert_eq!(rest_pieces(0, 3 * B, 4), vec![(0, B), (B, B)]);
        // Nothing but the closing piece left.
        assert!(rest_pieces(8 * B, 8 * B + 1, 4).is_empty());
        assert!(rest_pieces(8 * B, 9 * B, 4).is_empty());
        // Every byte but the closing piece is covered, once, in order.
        for (sent, len, connections) in [(0, 100 * B + 1, 3), (4 * B, 37 * B, 4), (0, 1, 2)] {
            let pieces = rest_pieces(sent, len, connections);
            let mut at = sent;
            for (offset, piece) in &pieces {
                assert_eq!((*offset, piece % B), (at, 0));
                at += piece;
            }
            assert!(
                at < len && len - at <= B,
                "{sent} {len}: closing piece {at}..{len}"
            );
        }
    }
}
