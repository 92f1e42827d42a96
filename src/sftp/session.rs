//! One SFTP session: a reader that never waits on the writer, requests handled concurrently,
//! and a writer task that owns the write half (`replies`).
//!
//! The reader must keep reading even while replies cannot be sent: russh delivers the client's
//! WINDOW_ADJUSTs on the same connection task that feeds our channel, so a reader that stops
//! until replies drain stops the window adjusts that would let them drain (paramiko's `get`,
//! thousands of READs in flight, deadlocked that way). So reading and executing are split:
//!
//! * the reader decodes packets into a queue, and pauses only when the requests not yet
//!   answered hold more than [`MAX_REQUEST_BYTES`], each counted at its length on the wire —
//!   that takes a flood of WRITE data, whose replies are small status packets that never wait
//!   long for window, or of requests with huge paths, whose client pays with a stalled
//!   connection;
//! * the dispatcher takes one of `max_in_flight` slots per request, which bounds the replies
//!   (READ data) in memory.
//!
//! Both travel with the request as its [`Permit`] until its reply is written.
//!
//! A paused reader is one that russh waits on: it stops reading the connection's socket until
//! the reader takes the channel's data. If at the same time the client reads none of our
//! replies (its window stays at 0), nothing can move again, and a client that vanishes in that
//! state cannot even be seen to go (its FIN waits behind the data we do not read). So a reader
//! that has waited [`STALL_LIMIT`] for room while the writer could not send a byte ends the
//! session.
//!
//! The session ends when the client closes its side (`Ok`, after every accepted request has been
//! answered) or on a protocol violation (`Err`, with handle tasks aborted). Either way uploads
//! without a CLOSE are dropped uncommitted. Dropping the [`serve`] future ends everything it
//! started, the writer included: that is how the SSH layer ends a session whose connection is
//! gone while its writer still waits for window the client will never grant.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::FutureExt;
use russh_sftp::protocol::Packet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use tokio::task::JoinSet;

use super::actor;
use super::context::Context;
use super::dispatch::{self, Route};
use super::extensions;
use super::framing::{self, Incoming};
use super::handles::{self, HandleOp, HandleTable, Job};
use super::replies::{self, Permit, Replies, ReplyProgress};
use super::requests::{self, PathRequest};
use super::status;
use super::SessionLimits;
use crate::vfs::{VPath, Vfs, VfsError};

/// Serves one SFTP session over `stream` (an SSH channel's `sftp` subsystem).
///
/// Returns `Ok` when the client closes the stream and `Err` on a protocol violation (oversized or
/// malformed packet, a request before INIT, a second INIT); the caller then closes the channel.
/// Open uploads that were never closed are dropped without committing.
pub async fn serve<S, F>(stream: S, fs: F, limits: SessionLimits) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Vfs,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (replies, progress, write_replies) = replies::writer(writer);
    // Aborted if this future is dropped: a writer waiting for window must not outlive it.
    let mut writer = AbortOnDropHandle::new(tokio::spawn(write_replies.in_current_span()));
    let mut session = Session::new(fs, limits, replies, progress);
    let failed = session.ctx.failed.clone();

    let outcome = tokio::select! {
        result = session.read_requests(&mut reader) => result,
        result = &mut writer => Err(match result {
            Ok(Ok(())) => anyhow!("the reply writer stopped"),
            Ok(Err(error)) => anyhow!(error).context("cannot send replies"),
            Err(error) => anyhow!(error).context("the reply writer failed"),
        }),
        () = failed.notified() => Err(anyhow!("a request handler panicked")),
    };

    match outcome {
        Ok(()) => {
            session.finish().await;
            // The last reply sender goes with the session; the writer drains and ends.
            drop(session);
            if let Ok(Err(error)) = writer.await {
                // The client may already be gone entirely; its replies have nowhere to go.
                tracing::debug!("could not deliver the last replies: {error}");
            }
            Ok(())
        }
        Err(error) => {
            session.abort().await;
            writer.abort();
            Err(error)
        }
    }
}

/// Request bytes (mostly WRITE data) a session holds at most, queued or being handled: with
/// 50 parallel uploads, 4 MiB each measured 261 MB resident; 1 MiB keeps a 255 KiB-write
/// pipeline four requests deep, enough to keep the spool busy. (512 KiB saved little more and
/// stalled the reader of a client whose replies pile up before its FIN could be seen:
/// tests/e2e/session_bounds.rs.)
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How long the reader waits for room in [`MAX_REQUEST_BYTES`] while not one byte of the
/// replies can be sent before it gives the client up (see the module doc). A live client that
/// reads slowly still opens some window now and then; one that reads nothing for this long
/// while still sending requests is gone or hostile.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// A decoded request waiting for the dispatcher, with its share of [`MAX_REQUEST_BYTES`].
type Queued = (Incoming, OwnedSemaphorePermit);

/// Decodes packets into `queue` until the client closes the stream; each waits for its share of
/// [`MAX_REQUEST_BYTES`] first.
async fn read_into_queue<R>(
    reader: &mut R,
    queue: mpsc::UnboundedSender<Queued>,
    progress: &ReplyProgress,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
{
    let room = Arc::new(Semaphore::new(MAX_REQUEST_BYTES));
    while let Some((incoming, len)) = framing::read_sized_packet(reader).await? {
        let share = wait_for_room(&room, queued_size(len), progress).await?;
        if queue.send((incoming, share)).is_err() {
            // The dispatcher stopped on a protocol violation; its error ends the session.
            break;
        }
    }
    Ok(())
}

/// Takes `cost` from `room`, waiting while the requests not yet answered hold too much; an
/// error if the replies that would free it have not moved for [`STALL_LIMIT`].
async fn wait_for_room(
    room: &Arc<Semaphore>,
    cost: u32,
    progress: &ReplyProgress,
) -> anyhow::Result<OwnedSemaphorePermit> {
    loop {
        let written = progress.written();
        let waited = tokio::time::timeout(STALL_LIMIT, room.clone().acquire_many_owned(cost));
        match waited.await {
            Ok(share) => return Ok(share?),
            Err(_) if progress.stalled_since(written) => bail!(
                "the client has read no reply for {} s while sending more requests than the \
                 session holds",
                STALL_LIMIT.as_secs()
            ),
            Err(_) => {}
        }
    }
}

/// What a queued request costs: its whole packet (WRITE data, or a path of up to 256 KiB in
/// any other request), plus what decoding and queueing it take.
fn queued_size(packet_len: u32) -> u32 {
    const REQUEST_OVERHEAD: u32 = 128;
    packet_len + REQUEST_OVERHEAD
}

struct Session<F: Vfs> {
    ctx: Arc<Context<F>>,
    replies: Replies,
    in_flight: Arc<Semaphore>,
    tasks: JoinSet<()>,
    initialized: bool,
    progress: ReplyProgress,
}

impl<F: Vfs> Session<F> {
    fn new(fs: F, limits: SessionLimits, replies: Replies, progress: ReplyProgress) -> Self {
        let ctx = Context {
            fs,
            handles: HandleTable::new(limits.max_handles.max(1), limits.user_handles),
            user: limits.user,
            max_handles: limits.max_handles.max(1),
            failed: Arc::new(Notify::new()),
        };
        Session {
            ctx: Arc::new(ctx),
            replies,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            tasks: JoinSet::new(),
            initialized: false,
            progress,
        }
    }

    /// Reads and dispatches requests until the client closes the stream.
    async fn read_requests<R>(&mut self, reader: &mut R) -> anyhow::Result<()>
    where
        R: AsyncRead + Unpin,
    {
        let (queue_tx, mut queue_rx) = mpsc::unbounded_channel();
        let progress = self.progress.clone();
        let reading = read_into_queue(reader, queue_tx, &progress);
        let dispatching = async {
            while let Some((incoming, bytes)) = queue_rx.recv().await {
                let in_flight = self.in_flight.clone().acquire_owned().await?;
                let permit = Permit {
                    _in_flight: in_flight,
                    _bytes: bytes,
                };
                self.dispatch(incoming, permit)?;
                // Forget finished tasks so the set does not grow with the session.
                while self.tasks.try_join_next().is_some() {}
            }
            Ok::<_, anyhow::Error>(())
        };
        // The reader ends at the client's EOF and closes the queue; the dispatcher drains it.
        tokio::try_join!(reading, dispatching)?;
        Ok(())
    }

    fn dispatch(&mut self, incoming: Incoming, permit: Permit) -> anyhow::Result<()> {
        if !self.initialized {
            return self.init(incoming, permit);
        }
        let route = dispatch::route(incoming)?;
        match route {
            Route::Init => bail!("client sent a second INIT"),
            Route::Path { id, request } => self.path_request(id, request, permit),
            Route::Open { id, target } => {
                if let Err(error) = self.ctx.handles.check_room() {
                    self.replies.send(id, Err(error), permit);
                    return Ok(());
                }
                let barriers = self.barriers(&[target.path()]);
                let (ctx, replies) = (self.ctx.clone(), self.replies.clone());
                self.spawn(async move {
                    handles::wait_for(barriers).await;
                    actor::open_and_serve(ctx, replies, id, target, permit).await;
                });
            }
            Route::Handle { id, handle, op } => self.handle_request(id, &handle, op, permit),
            Route::Unsupported { id, packet_type } => {
                let message = format!("packet type {packet_type} is not supported");
                self.replies
                    .send(id, Err(VfsError::Unsupported(message)), permit);
            }
            Route::Copy {
                id,
                read_handle,
                range,
                write_handle,
            } => match self.ctx.handles.read_source(&read_handle) {
                Some(source) => {
                    let op = HandleOp::CopyFrom { source, range };
                    self.handle_request(id, &write_handle, op, permit);
                }
                None => self.replies.send(id, Err(status::invalid_handle()), permit),
            },
        }
        Ok(())
    }

    /// The first packet must be INIT; the answer is VERSION 3 whatever version the client named.
    fn init(&mut self, incoming: Incoming, permit: Permit) -> anyhow::Result<()> {
        let Incoming::Request(Packet::Init(_)) = incoming else {
            bail!("client sent a request before INIT");
        };
        self.initialized = true;
        self.replies.send(0, Ok(extensions::version()), permit);
        Ok(())
    }

    fn path_request(&mut self, id: u32, request: PathRequest, permit: Permit) {
        // A SETSTAT on a file this session is uploading belongs to that upload, in order.
        let request = match request {
            PathRequest::SetStat { path, attrs } => match self.upload_of(&path) {
                Some(handle) => {
                    let op = HandleOp::SetStat(Box::new(attrs));
                    return self.handle_request(id, &handle, op, permit);
                }
                None => PathRequest::SetStat { path, attrs },
            },
            other => other,
        };
        let barriers = self.barriers(&request.paths());
        let (ctx, replies) = (self.ctx.clone(), self.replies.clone());
        self.spawn(async move {
            handles::wait_for(barriers).await;
            let outcome = requests::execute(&ctx, id, request).await;
            replies.send(id, outcome, permit);
        });
    }

    /// Queues a request on its handle, in arrival order.
    fn handle_request(&self, id: u32, handle: &str, op: HandleOp, permit: Permit) {
        if let Err(job) = self.ctx.handles.submit(handle, Job { id, op, permit }) {
            self.replies
                .send(job.id, Err(status::invalid_handle()), job.permit);
        }
    }

    fn upload_of(&self, path: &str) -> Option<String> {
        let path = VPath::parse(path).ok()?;
        self.ctx.handles.open_upload(&path)
    }

    /// Waits owed to uploads of these paths that are still committing.
    fn barriers(&self, paths: &[&str]) -> Vec<tokio::sync::watch::Receiver<()>> {
        let paths: Vec<VPath> = paths.iter().filter_map(|p| VPath::parse(p).ok()).collect();
        if paths.is_empty() {
            return Vec::new();
        }
        self.ctx.handles.barriers(&paths)
    }

    /// Runs a request task, in the session's span; a panic in it ends the session instead of
    /// leaving the client waiting for a reply that will never come.
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let failed = self.ctx.failed.clone();
        let task = async move {
            if AssertUnwindSafe(task).catch_unwind().await.is_err() {
                failed.notify_one();
            }
        };
        self.tasks.spawn(task.in_current_span());
    }

    /// Clean end: every handle's queue is closed (unclosed uploads are dropped uncommitted once
    /// their queued requests are done) and every accepted request is answered.
    async fn finish(&mut self) {
        self.ctx.handles.shut_down();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Protocol violation: stop everything now; nothing more is committed.
    async fn abort(&mut self) {
        self.ctx.handles.shut_down();
        self.tasks.shutdown().await;
    }
}
