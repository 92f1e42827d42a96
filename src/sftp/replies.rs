//! The way back to the client: replies queued by every task, one writer task that sends them,
//! and the [`Permit`] each request holds until its reply is written.
//!
//! Sending a reply never waits: the number queued is bounded by the permits they carry, which
//! the session's reader had to get before it took the request. The writer writes piece by piece
//! as the channel's window allows and keeps count, so the reader can tell a client that stopped
//! reading replies ([`ReplyProgress`]) from one that is merely slow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
#[cfg(test)]
use tokio::sync::Semaphore;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::framing::{self, Reply};
use super::status::{self, Outcome};
use crate::vfs::VfsError;

/// What a request holds until its reply is written: one of the session's in-flight slots and
/// its share of the request bytes (WRITE data) the session may hold at once.
#[derive(Debug)]
pub(super) struct Permit {
    pub(super) _in_flight: OwnedSemaphorePermit,
    pub(super) _bytes: OwnedSemaphorePermit,
}

impl Permit {
    /// A permit from semaphores of its own, for tests of code that takes one.
    #[cfg(test)]
    pub fn detached() -> Permit {
        let take = || {
            Arc::new(Semaphore::new(1))
                .try_acquire_owned()
                .expect("a fresh permit")
        };
        Permit {
            _in_flight: take(),
            _bytes: take(),
        }
    }
}
/// The way replies reach the writer task. Sending never waits: the number of replies queued is
/// bounded by the in-flight permits they carry.
#[derive(Clone)]
pub(super) struct Replies {
    tx: mpsc::UnboundedSender<Outgoing>,
}

struct Outgoing {
    bytes: Bytes,
    /// Released once the reply is written, letting the reader take another request.
    _permit: Permit,
}

impl Replies {
    /// Sends the reply for `outcome`: its packet, or a STATUS carrying the error.
    pub fn send(&self, id: u32, outcome: Outcome, permit: Permit) {
        self.send_reply(id, outcome.map(Reply::from), permit);
    }

    /// [`Replies::send`] for an outcome that may be DATA.
    pub fn send_reply(&self, id: u32, outcome: Result<Reply, VfsError>, permit: Permit) {
        let reply = match outcome {
            Ok(reply) => reply,
            Err(error) => status::reply_for(id, Err(error)).into(),
        };
        let bytes = framing::encode(reply).or_else(|error| {
            tracing::error!("{error:#}");
            framing::encode(status::reply_for(id, Err(VfsError::Failure(error.to_string()))).into())
        });
        match bytes {
            // A closed channel means the session is ending; the reply has nowhere to go.
            Ok(bytes) => drop(self.tx.send(Outgoing {
                bytes,
                _permit: permit,
            })),
            Err(error) => tracing::error!("dropping the reply to request {id}: {error:#}"),
        }
    }
}

/// Whether the writer is getting replies out: bytes written so far, and whether some are waiting
/// to go (for window from the client).
#[derive(Clone, Default)]
pub(super) struct ReplyProgress(Arc<ProgressCounters>);

#[derive(Default)]
struct ProgressCounters {
    written: AtomicU64,
    waiting: AtomicBool,
}

impl ReplyProgress {
    pub(super) fn written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    /// True if a reply has been waiting to go out and not one byte went since `written`.
    pub(super) fn stalled_since(&self, written: u64) -> bool {
        self.0.waiting.load(Ordering::Relaxed) && self.written() == written
    }
}

/// The way replies reach `writer`, the writer's progress, and the writer task itself (to be
/// spawned: it ends once every [`Replies`] is dropped and the queue is written).
pub(super) fn writer<W>(
    writer: W,
) -> (
    Replies,
    ReplyProgress,
    impl std::future::Future<Output = std::io::Result<()>>,
)
where
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let progress = ReplyProgress::default();
    let task = write_replies(writer, rx, progress.clone());
    (Replies { tx }, progress, task)
}

/// Writes replies in the order they are ready; flushes whenever the queue runs dry.
async fn write_replies<W>(
    mut writer: W,
    mut replies: mpsc::UnboundedReceiver<Outgoing>,
    progress: ReplyProgress,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while let Some(reply) = replies.recv().await {
        progress.0.waiting.store(true, Ordering::Relaxed);
        // Piece by piece (the channel takes what the window allows), so progress shows.
        let mut rest = &reply.bytes[..];
        while !rest.is_empty() {
            let written = writer.write(rest).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            progress
                .0
                .written
                .fetch_add(written as u64, Ordering::Relaxed);
            rest = &rest[written..];
        }
        progress.0.waiting.store(false, Ordering::Relaxed);
        drop(reply);
        if replies.is_empty() {
            writer.flush().await?;
        }
    }
    writer.shutdown().await
}
