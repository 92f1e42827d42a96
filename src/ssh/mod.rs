//! The SSH front door: host key, public-key login, and the `sftp` subsystem.
//!
//! Each TCP connection gets its own [`connection::Connection`] handler; an error ends that one
//! connection, never the listener. Only the `sftp` subsystem is offered: exec and shell requests
//! are refused at once, so a client probing for a shell (rclone does) fails fast and cleanly.
//! What a user sees once logged in comes from a [`Backend`], which turns a [`User`] into a
//! filesystem; this module knows nothing about Dropbox.

mod connection;
pub mod host_key;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config as RusshConfig;
use russh::MethodSet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::User;
use crate::vfs::Vfs;

/// Turns a logged-in user into the filesystem their SFTP session sees.
pub trait Backend: Send + Sync + 'static {
    type Fs: Vfs;

    fn filesystem_for(&self, user: &User) -> anyhow::Result<Self::Fs>;
}

/// Everything a connection needs, shared by all of them.
pub struct ServerContext<B> {
    pub users: HashMap<String, User>,
    pub backend: B,
}

/// Serves SSH on `listener` until `shutdown` is cancelled.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    host_key: PrivateKey,
    context: Arc<ServerContext<B>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(russh_config(host_key));
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
        tokio::spawn(run_connection(
            config.clone(),
            socket,
            peer,
            id,
            context.clone(),
        ));
    }
}

async fn run_connection<B: Backend>(
    config: Arc<RusshConfig>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    context: Arc<ServerContext<B>>,
) {
    let _ = socket.set_nodelay(true);
    tracing::info!(conn = id, %peer, "connected");
    let handler = connection::Connection::new(id, peer, context);
    let result = match russh::server::run_stream(config, socket, handler).await {
        Ok(session) => session.await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!(conn = id, "disconnected"),
        Err(e) => tracing::info!(conn = id, error = %e, "connection ended with an error"),
    }
}

fn russh_config(host_key: PrivateKey) -> RusshConfig {
    RusshConfig {
        server_id: russh::SshId::Standard(
            concat!("SSH-2.0-dropgate_", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[russh::MethodKind::PublicKey][..]),
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
