//! The SSH front door: host keys, algorithm policies, public-key login, the `sftp` subsystem
//! and legacy SCP.
//!
//! Each TCP connection gets its own `connection::Connection` handler; an error ends that one
//! connection, never the listener. The `sftp` subsystem is offered, and the exec request serves
//! only the two commands of the legacy SCP protocol, `scp -t` and `scp -f` ([`crate::scp`]);
//! any other command and every shell request are refused at once, so a client probing for a
//! shell (rclone does) fails fast and cleanly.
//! What a user sees once logged in comes from a [`UserFilesystems`], which turns a [`User`] into a
//! filesystem; this module knows nothing about Dropbox. It wraps that filesystem in the user's
//! permissions and the audit log, so every backend gets both.
//!
//! Abuse limits live here too (`guard`): a banned address or one over a connection cap is
//! closed before the SSH banner, and a connection that has not logged in within the
//! authentication timeout is disconnected. Channels per connection, and sessions (SFTP and SCP)
//! and open handles per user (`quotas`), are capped as well.
//!
//! The server offers three host keys (ed25519, RSA, ECDSA; [`host_key`]) and the algorithms
//! of the configured policy ([`algorithms`]). What each connection negotiated is settled from
//! its client's cleartext hello (`negotiation`, `client_hello`), since russh does not report
//! it: logged when it fails or uses a legacy algorithm, and written on the login audit lines.
//!
//! Behind a load balancer ([`proxy_protocol`]), the client's real address comes from the
//! PROXY header the balancer sends first; only balancers in `trusted_proxies` may send one,
//! and a connection from anywhere else is refused, since a client that could connect directly
//! could claim any address in a header of its own.
//!
//! Every connection runs in a `conn` tracing span (`conn`, the connection's number in this
//! process; `peer`, the client's address; `user`, once logged in), and each SFTP session in a
//! `sftp` span (`session`, its number within the connection) below it, each SCP transfer in a
//! `scp` span likewise. Every task started for
//! them carries the span along, so a log line from deep below (a vfs call, the Dropbox client,
//! an upload's commit) still says which connection and user it served.

pub mod algorithms;
mod certificate;
mod client_hello;
mod connection;
/// Entry points for the fuzz targets in `fuzz/`; feature `testing`. Not a stable API.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod host_key;
mod negotiation;
pub mod proxy_protocol;
mod quotas;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config as RusshConfig;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit_log::{AuditLog, AuditSession};
use crate::config::LimitsConfig;
use crate::metrics;
use crate::users::networks::Networks;
use crate::users::registry::Registry;
use crate::users::User;
use crate::vfs::Vfs;
use algorithms::{Handshake, Policy};
use client_hello::HelloRecorder;
use guard::{AddressGuard, ConnectionSlot, PreLoginSlot};
use negotiation::{record_hello, KeyExchange};
use quotas::UserQuotas;

/// Turns a logged-in user into the filesystem their SFTP session sees.
pub trait UserFilesystems: Send + Sync + 'static {
    type Fs: Vfs;

    /// An error refuses the session: its outermost message is what the client is told, so it
    /// must say no more than a partner may know; the whole chain goes to the logs.
    fn filesystem_for(&self, user: &User) -> anyhow::Result<Self::Fs>;
}

/// Everything a connection needs, shared by all of them.
pub struct ServerContext<B> {
    /// Users and trusted CAs; replaced whole by a reload.
    pub users: Registry,
    /// With the PROXY protocol on, the addresses allowed to send its header; None: off.
    pub trusted_proxies: Option<Networks>,
    pub filesystems: B,
    pub limits: LimitsConfig,
    pub audit: AuditLog,
}

/// Serves SSH on `listener` until `shutdown` is cancelled. `guard` applies the limits and bans;
/// the caller made it, so that other doors (the admin page's login) can count failures in it.
pub async fn serve<B: UserFilesystems>(
    listener: TcpListener,
    host_keys: Vec<PrivateKey>,
    policy: Policy,
    context: Arc<ServerContext<B>>,
    guard: Arc<AddressGuard>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let configs = RusshConfigs::new(&host_keys, &policy);
    let key_exchange = Arc::new(KeyExchange::new(policy, &host_keys));
    let quotas = UserQuotas::new(&context.limits);
    let next_id = AtomicU64::new(1);
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors must not end the server.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let span = connection_span(id);
        let incoming = Incoming {
            socket,
            peer,
            id,
            guard: guard.clone(),
            quotas: quotas.clone(),
            // Users may have been reloaded since the last connection: offer password login
            // only if someone now has a password.
            config: configs.pick(context.users.current().any_password()),
            key_exchange: key_exchange.clone(),
        };
        tokio::spawn(incoming.admit_and_run(context.clone()).instrument(span));
    }
}

/// The span every task serving connection `id` runs in. The client's address is recorded
/// once known (behind a load balancer, only after its PROXY header), the user at login.
fn connection_span(id: u64) -> tracing::Span {
    tracing::info_span!(
        "conn",
        conn = id,
        peer = tracing::field::Empty,
        user = tracing::field::Empty
    )
}

/// A TCP connection just accepted, not yet admitted.
struct Incoming {
    socket: tokio::net::TcpStream,
    /// Who connected: the client, or the load balancer when PROXY headers are expected.
    peer: SocketAddr,
    id: u64,
    guard: Arc<AddressGuard>,
    quotas: Arc<UserQuotas>,
    config: Arc<RusshConfig>,
    key_exchange: Arc<KeyExchange>,
}

impl Incoming {
    /// Finds the client's address, applies the limits to it, and runs the SSH session.
    async fn admit_and_run<B: UserFilesystems>(mut self, context: Arc<ServerContext<B>>) {
        let id = self.id;
        let audit = |remote| AuditSession {
            log: context.audit.clone(),
            conn: id,
            remote,
            user: None,
            dropbox_root: None,
            negotiation: Arc::default(),
        };
        let client = match self.client_address(&context).await {
            Ok(client) => client,
            Err(reason) => {
                tracing::Span::current().record("peer", tracing::field::display(self.peer));
                return refuse(&audit(self.peer), &reason);
            }
        };
        tracing::Span::current().record("peer", tracing::field::display(client));
        let audit = audit(client);
        let (slot, pre_login) = match self.guard.admit(client.ip()) {
            Ok(slots) => slots,
            Err(refusal) => return refuse(&audit, refusal.reason()),
        };
        let connection = Accepted {
            socket: self.socket,
            key_exchange: self.key_exchange,
            audit,
            slot,
            pre_login,
            guard: self.guard,
            quotas: self.quotas,
        };
        run_connection(self.config, connection, context).await;
    }

    /// The connection's own address, or with PROXY headers on, the client address the
    /// header carries; an error (in plain words) if the connection must be closed.
    async fn client_address<B>(
        &mut self,
        context: &ServerContext<B>,
    ) -> Result<SocketAddr, String> {
        let Some(trusted) = &context.trusted_proxies else {
            return Ok(self.peer);
        };
        if !trusted.contains(self.peer.ip()) {
            return Err("not a trusted proxy (server.trusted_proxies)".to_string());
        }
        let limit = context.limits.auth_timeout();
        match tokio::time::timeout(limit, proxy_protocol::read_header(&mut self.socket)).await {
            Ok(Ok(Some(client))) => Ok(client),
            Ok(Ok(None)) => Ok(self.peer),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no PROXY protocol header within the authentication timeout".into()),
        }
    }
}

/// Closes a connection before SSH starts. Closing the socket unanswered tells the client
/// nothing about why; the reason goes to the logs.
fn refuse(audit: &AuditSession, reason: &str) {
    tracing::info!(reason, "connection refused");
    metrics::connection_refused();
    let mut line = audit.event("connect");
    line.result = Some("refused");
    line.error = Some(reason.to_string());
    audit.record(&line);
}

/// An admitted TCP connection and what it carries along.
struct Accepted {
    socket: tokio::net::TcpStream,
    key_exchange: Arc<KeyExchange>,
    audit: AuditSession,
    /// Held until the connection ends: its place in the connection caps.
    slot: ConnectionSlot,
    /// Held until the connection logs in (or ends): its place among those not logged in.
    pre_login: PreLoginSlot,
    guard: Arc<AddressGuard>,
    quotas: Arc<UserQuotas>,
}

async fn run_connection<B: UserFilesystems>(
    config: Arc<RusshConfig>,
    accepted: Accepted,
    context: Arc<ServerContext<B>>,
) {
    let Accepted {
        socket,
        key_exchange,
        audit,
        slot,
        pre_login,
        guard,
        quotas,
    } = accepted;
    let _ = socket.set_nodelay(true);
    tracing::info!("connected");
    metrics::connection_accepted();
    let mut line = audit.event("connect");
    line.result = Some("ok");
    audit.record(&line);

    let auth_timeout = context.limits.auth_timeout();
    let logged_in = Arc::new(std::sync::OnceLock::new());
    let open = OpenConnection {
        audit: audit.clone(),
        started: std::time::Instant::now(),
        logged_in: logged_in.clone(),
        ended: false,
    };
    let handshake = Arc::new(std::sync::OnceLock::new());
    let socket = record_hello(socket, key_exchange, handshake.clone(), &audit);
    // russh drops the handler when the connection ends, and with it the SFTP sessions it runs.
    let handler = connection::Connection::new(
        context,
        guard,
        quotas,
        pre_login,
        audit.clone(),
        logged_in.clone(),
        tracing::Span::current(),
    );
    let result = run_until_closed(config, socket, handler, auth_timeout, &logged_in).await;
    let error = result.err().map(|e| {
        let error = match handshake.get() {
            // russh's own words list every name in Rust syntax; ours say which policy refused.
            Some(Handshake {
                negotiated: Err(no_common),
                ..
            }) => no_common.to_string(),
            _ => e.to_string(),
        };
        (error, closed_by_client(&e))
    });
    match &error {
        None => tracing::info!("disconnected"),
        Some((error, true)) => {
            tracing::info!(%error, "disconnected: the client closed the connection")
        }
        Some((error, false)) => tracing::warn!(%error, "connection ended with an error"),
    }
    // A client that goes away has ended its connection, not failed it: its audit line is `ok`.
    open.ended(error.and_then(|(error, by_client)| (!by_client).then_some(error)));
    metrics::connection_closed();
    drop(slot);
}

/// An open connection's `disconnect` audit line, owed however the connection ends: written
/// with its outcome when it ends, or, if its task is dropped first (the gateway shutting down
/// with the session still open), when it is dropped.
struct OpenConnection {
    audit: AuditSession,
    started: std::time::Instant,
    logged_in: Arc<std::sync::OnceLock<String>>,
    ended: bool,
}

impl OpenConnection {
    /// Writes the line: `error` is why the connection failed, None if it ended cleanly.
    fn ended(mut self, error: Option<String>) {
        let result = if error.is_none() { "ok" } else { "failed" };
        self.write(result, error);
    }

    fn write(&mut self, result: &'static str, error: Option<String>) {
        self.ended = true;
        let mut line = self.audit.event("disconnect");
        line.user = self.logged_in.get().cloned();
        line.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        line.result = Some(result);
        line.error = error;
        self.audit.record(&line);
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if !self.ended {
            self.write(
                "interrupted",
                Some("the gateway stopped while the connection was open".to_string()),
            );
        }
    }
}

/// Whether a connection's error is only its client going away (EOF, or a reset after the
/// client closed): an ordinary end, not a fault of the gateway's.
fn closed_by_client(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    let io_closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
        )
    };
    error.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<russh::Error>() {
            return match e {
                russh::Error::Disconnect | russh::Error::HUP => true,
                russh::Error::IO(e) => io_closed(e),
                _ => false,
            };
        }
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(io_closed)
    })
}

/// Runs the SSH session to its end; one that has not logged in within `auth_timeout` (counted
/// from the first byte, the version exchange included) is disconnected.
async fn run_until_closed<B: UserFilesystems>(
    config: Arc<RusshConfig>,
    socket: HelloRecorder<tokio::net::TcpStream>,
    handler: connection::Connection<B>,
    auth_timeout: Duration,
    logged_in: &std::sync::OnceLock<String>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + auth_timeout;
    let started =
        tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler));
    let Ok(session) = started.await else {
        return Err(anyhow::anyhow!("authentication timeout"));
    };
    let mut session = std::pin::pin!(session?);
    tokio::select! {
        result = &mut session => return result,
        _ = tokio::time::sleep_until(deadline) => {}
    }
    if logged_in.get().is_none() {
        let handle = session.handle();
        let _ = handle
            .disconnect(
                russh::Disconnect::ByApplication,
                "authentication timeout".to_string(),
                "en".to_string(),
            )
            .await;
        // A session that ignores the disconnect is left to the inactivity timeout.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut session).await;
        return Err(anyhow::anyhow!("authentication timeout"));
    }
    session.await
}

/// The server settings with and without password login offered.
struct RusshConfigs {
    keys_only: Arc<RusshConfig>,
    with_password: Arc<RusshConfig>,
}

impl RusshConfigs {
    fn new(host_keys: &[PrivateKey], policy: &Policy) -> Self {
        RusshConfigs {
            keys_only: Arc::new(russh_config(host_keys, policy, false)),
            with_password: Arc::new(russh_config(host_keys, policy, true)),
        }
    }

    fn pick(&self, any_password: bool) -> Arc<RusshConfig> {
        if any_password {
            self.with_password.clone()
        } else {
            self.keys_only.clone()
        }
    }
}

fn russh_config(host_keys: &[PrivateKey], policy: &Policy, any_password: bool) -> RusshConfig {
    let mut methods = vec![MethodKind::PublicKey];
    if any_password {
        methods.push(MethodKind::Password);
    }
    RusshConfig {
        server_id: russh::SshId::Standard(
            concat!("SSH-2.0-dropgate_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&methods[..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        keys: host_keys.to_vec(),
        preferred: policy.preferred(),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(60)),
        // What a client may send ahead per channel, and so what a session can hold in memory:
        // 16 MiB made 50 parallel uploads peak at 236 MB RSS and was no faster than 2 MiB.
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        // Channel messages (up to 32 KiB each) queued between the connection and the SFTP
        // reader, 256 KiB a session: what the client sends beyond that waits in the socket
        // (the kernel's memory, bounded by the window), not in ours. 32 (1 MiB a session) made
        // 50 parallel uploads peak at 83-91 MB; 8 at 57-69 MB, no slower.
        channel_buffer_size: 8,
        nodelay: true,
        ..Default::default()
    }
}
