//! The SSH front door: host key, public-key login, and the `sftp` subsystem.
//!
//! Each TCP connection gets its own [`connection::Connection`] handler; an error ends that one
//! connection, never the listener. Only the `sftp` subsystem is offered: exec and shell requests
//! are refused at once, so a client probing for a shell (rclone does) fails fast and cleanly.
//! What a user sees once logged in comes from a [`Backend`], which turns a [`User`] into a
//! filesystem; this module knows nothing about Dropbox. It wraps that filesystem in the user's
//! permissions and the audit log, so every backend gets both.
//!
//! Abuse limits live here too ([`guard`]): a banned address or one over a connection cap is
//! closed before the SSH banner, and a connection that has not logged in within the
//! authentication timeout is disconnected.

mod connection;
mod guard;
pub mod host_key;
pub mod password;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config as RusshConfig;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, AuditSession};
use crate::config::{LimitsConfig, User};
use crate::vfs::Vfs;
use guard::{AddressGuard, ConnectionSlot};

/// Turns a logged-in user into the filesystem their SFTP session sees.
pub trait Backend: Send + Sync + 'static {
    type Fs: Vfs;

    fn filesystem_for(&self, user: &User) -> anyhow::Result<Self::Fs>;
}

/// Everything a connection needs, shared by all of them.
pub struct ServerContext<B> {
    pub users: HashMap<String, User>,
    pub backend: B,
    pub limits: LimitsConfig,
    pub audit: AuditLog,
}

impl<B> ServerContext<B> {
    /// Password login is offered at all only if some user has a password.
    fn any_password(&self) -> bool {
        self.users.values().any(|u| u.password_hash.is_some())
    }
}

/// Serves SSH on `listener` until `shutdown` is cancelled.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    host_key: PrivateKey,
    context: Arc<ServerContext<B>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(russh_config(host_key, context.any_password()));
    let guard = AddressGuard::new(context.limits.clone());
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
        let audit = AuditSession {
            log: context.audit.clone(),
            conn: id,
            remote: peer,
            user: None,
        };
        let slot = match guard.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Closing the socket unanswered tells the client nothing about why.
                tracing::info!(conn = id, %peer, reason = refusal.reason(), "connection refused");
                let mut line = audit.event("connect");
                line.result = Some("refused");
                line.error = Some(refusal.reason().to_string());
                audit.record(&line);
                continue;
            }
        };
        let connection = Accepted {
            socket,
            audit,
            slot,
            guard: guard.clone(),
        };
        tokio::spawn(run_connection(config.clone(), connection, context.clone()));
    }
}

/// An admitted TCP connection and what it carries along.
struct Accepted {
    socket: tokio::net::TcpStream,
    audit: AuditSession,
    /// Held until the connection ends: its place in the connection caps.
    slot: ConnectionSlot,
    guard: Arc<AddressGuard>,
}

async fn run_connection<B: Backend>(
    config: Arc<RusshConfig>,
    accepted: Accepted,
    context: Arc<ServerContext<B>>,
) {
    let Accepted {
        socket,
        audit,
        slot,
        guard,
    } = accepted;
    let (id, peer) = (audit.conn, audit.remote);
    let _ = socket.set_nodelay(true);
    tracing::info!(conn = id, %peer, "connected");
    let mut line = audit.event("connect");
    line.result = Some("ok");
    audit.record(&line);

    let started = std::time::Instant::now();
    let auth_timeout = context.limits.auth_timeout();
    let logged_in = Arc::new(std::sync::OnceLock::new());
    let handler = connection::Connection::new(context, guard, audit.clone(), logged_in.clone());
    let result = run_until_closed(config, socket, handler, auth_timeout, &logged_in).await;
    match &result {
        Ok(()) => tracing::info!(conn = id, "disconnected"),
        Err(e) => tracing::info!(conn = id, error = %e, "connection ended with an error"),
    }
    let mut line = audit.event("disconnect");
    line.user = logged_in.get().cloned();
    line.duration_ms = Some(started.elapsed().as_millis() as u64);
    line.result = Some(if result.is_ok() { "ok" } else { "failed" });
    line.error = result.err().map(|e| e.to_string());
    audit.record(&line);
    drop(slot);
}

/// Runs the SSH session to its end; one that has not logged in within `auth_timeout` (counted
/// from the first byte, the version exchange included) is disconnected.
async fn run_until_closed<B: Backend>(
    config: Arc<RusshConfig>,
    socket: tokio::net::TcpStream,
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

fn russh_config(host_key: PrivateKey, any_password: bool) -> RusshConfig {
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
        keys: vec![host_key],
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(60)),
        // What a client may send ahead per channel, and so what a session can hold in memory:
        // 16 MiB made 50 parallel uploads peak at 236 MB RSS and was no faster than 2 MiB.
        window_size: 2 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        ..Default::default()
    }
}
