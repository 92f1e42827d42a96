//! How far away the emulator pretends to be: a round trip added to every answer, and a cap on
//! what one TCP connection carries.
//!
//! On loopback an answer takes microseconds and one connection carries gigabytes a second;
//! real Dropbox is tens of milliseconds away, and one HTTPS connection to it carries a few tens
//! of megabytes a second. A client tuned on loopback can make a round trip per file too many,
//! or send a gigabyte down one connection, and never see the cost. With a [`Distance`] set:
//!
//! - every API answer is held back for `latency_ms` after it is ready (one round trip; the
//!   `/__emulator/` hooks are not Dropbox and answer at once);
//! - a new connection waits `latency_ms` before its first request is read (TCP's handshake;
//!   TLS would cost one more), so connections are worth keeping alive;
//! - each connection moves at most `connection_bytes_per_sec` in each direction, paced per
//!   TCP connection ([`FarStream`]): parallel transfers are only faster on connections of
//!   their own.
//!
//! `--profile wan` (or `--latency-ms` and `--connection-rate`) sets it at start;
//! `PUT /__emulator/distance` changes it at run time, for connections already open too, so a
//! benchmark can seed its files at loopback speed.
//!
//! The pacing is written here rather than taken from a rate-limiting crate: it must pace each
//! direction of a tokio stream on its own and follow a setting changed at run time, which the
//! crates for this (built on futures-io, one fixed limiter per stream) do not offer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::server::Shared;

/// The round trip and the per-connection throughput the emulator shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Distance {
    /// Added to every API answer, and once to each new connection.
    pub latency_ms: u64,
    /// Most bytes per second one TCP connection carries in each direction; None: no cap.
    pub connection_bytes_per_sec: Option<u64>,
}

impl Distance {
    /// A Dropbox across a continent: 40 ms away, 25 MB/s per connection.
    pub fn wan() -> Distance {
        Distance {
            latency_ms: 40,
            connection_bytes_per_sec: Some(25_000_000),
        }
    }
}

/// The distance in force, read by every connection on every read and write.
#[derive(Debug, Default)]
pub struct DistanceSwitch {
    latency_ms: AtomicU64,
    /// 0: no cap.
    bytes_per_sec: AtomicU64,
}

impl DistanceSwitch {
    pub fn new(distance: Distance) -> Self {
        let switch = Self::default();
        switch.set(distance);
        switch
    }

    pub fn set(&self, distance: Distance) {
        self.latency_ms
            .store(distance.latency_ms, Ordering::Relaxed);
        self.bytes_per_sec.store(
            distance.connection_bytes_per_sec.unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> Distance {
        let rate = self.bytes_per_sec.load(Ordering::Relaxed);
        Distance {
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            connection_bytes_per_sec: (rate > 0).then_some(rate),
        }
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    fn bytes_per_sec(&self) -> Option<u64> {
        Some(self.bytes_per_sec.load(Ordering::Relaxed)).filter(|&rate| rate > 0)
    }
}

/// Holds every API answer back for one round trip.
pub async fn delay_answers(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let is_hook = request.uri().path().starts_with("/__emulator/");
    let response = next.run(request).await;
    let latency = state.distance.latency();
    if !is_hook && !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    response
}

pub async fn get_distance(State(state): State<Shared>) -> Response {
    Json(state.distance.get()).into_response()
}

pub async fn put_distance(State(state): State<Shared>, Json(distance): Json<Distance>) -> Response {
    state.distance.set(distance);
    Json(json!({})).into_response()
}

/// A listener whose connections are [`FarStream`]s.
pub struct FarListener {
    inner: TcpListener,
    distance: Arc<DistanceSwitch>,
}

impl FarListener {
    pub fn new(inner: TcpListener, distance: Arc<DistanceSwitch>) -> Self {
        Self { inner, distance }
    }
}

impl axum::serve::Listener for FarListener {
    type Io = FarStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (FarStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if self.distance.bytes_per_sec().is_some() {
            shrink_socket_buffers(&stream);
        }
        (FarStream::new(stream, self.distance.clone()), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The kernel's buffers of a loopback connection grow to megabytes, which a sender fills at
/// loopback speed before any pacing is felt: a 10 MiB upload would move half its bytes at once.
/// Small buffers make the pace hold from the first bytes (nothing here needs a large window:
/// the latency is added to answers, not to the packets).
fn shrink_socket_buffers(stream: &TcpStream) {
    const SOCKET_BUFFER: usize = 256 * 1024;
    let socket = socket2::SockRef::from(stream);
    if let Err(err) = socket
        .set_recv_buffer_size(SOCKET_BUFFER)
        .and_then(|()| socket.set_send_buffer_size(SOCKET_BUFFER))
    {
        tracing::warn!("could not shrink a paced connection's socket buffers: {err}");
    }
}

/// A TCP connection paced to the distance in force.
pub struct FarStream {
    inner: TcpStream,
    distance: Arc<DistanceSwitch>,
    reads: Pace,
    writes: Pace,
}

impl FarStream {
    fn new(inner: TcpStream, distance: Arc<DistanceSwitch>) -> Self {
        // The handshake's round trip: nothing is read before it is over.
        let handshake_done = Instant::now() + distance.latency();
        FarStream {
            inner,
            distance,
            reads: Pace::from(handshake_done),
            writes: Pace::from(Instant::now()),
        }
    }
}

/// One direction's pacing: the bytes moved so far are paid for by waiting until `ready_at`.
struct Pace {
    ready_at: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl Pace {
    fn from(ready_at: Instant) -> Self {
        Pace {
            ready_at,
            sleep: Box::pin(tokio::time::sleep_until(ready_at)),
        }
    }

    /// Ready once what was moved before is paid for.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready_at <= Instant::now() {
            return Poll::Ready(());
        }
        if self.sleep.deadline() != self.ready_at {
            self.sleep.as_mut().reset(self.ready_at);
        }
        self.sleep.as_mut().poll(cx)
    }

    /// `bytes` were just moved at `bytes_per_sec`: the next move waits for them. Time spent
    /// idle is not saved up as credit, so a connection never bursts above its rate.
    fn pay(&mut self, bytes: usize, bytes_per_sec: Option<u64>) {
        let Some(rate) = bytes_per_sec else {
            return;
        };
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.ready_at = self.ready_at.max(Instant::now()) + cost;
    }
}

impl AsyncRead for FarStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.reads.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let read = buf.filled().len() - before;
            this.reads.pay(read, this.distance.bytes_per_sec());
        }
        result
    }
}

impl AsyncWrite for FarStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.writes.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result {
            this.writes.pay(written, this.distance.bytes_per_sec());
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
