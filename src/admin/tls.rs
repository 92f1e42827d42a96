//! The admin page's listener: plain TCP, or TLS from the configured certificate and key.
//!
//! axum accepts connections one at a time, so a TLS handshake must not happen inside its
//! accept (one slow client would hold up everyone): a task of its own accepts TCP connections
//! and runs each handshake on a task, with a time limit and a bound on how many run at once,
//! and hands finished ones over. [`Peer`] is the client's address for the handlers (the ban
//! logic counts failed sign-ins by it).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;

use super::settings::AdminConfig;

/// Handshakes allowed at once; more wait for a place.
const HANDSHAKES_AT_ONCE: usize = 64;
/// A handshake not finished in this time is dropped.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// The client's address, as the handlers see it (`ConnectInfo<Peer>`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, AdminListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, AdminListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Plain or TLS connections for axum.
pub struct AdminListener {
    local: SocketAddr,
    kind: Kind,
}

enum Kind {
    Plain(TcpListener),
    Tls(mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>),
}

impl AdminListener {
    /// Binds `listen`, with TLS when the settings name a certificate.
    pub async fn bind(listen: SocketAddr, settings: &AdminConfig) -> anyhow::Result<AdminListener> {
        let tcp = TcpListener::bind(listen)
            .await
            .with_context(|| format!("admin.listen: cannot listen on {listen}"))?;
        let local = tcp.local_addr()?;
        let kind = match (&settings.tls_certificate, &settings.tls_key) {
            (Some(certificate), Some(key)) => {
                let acceptor = acceptor(certificate, key)?;
                let (send, receive) = mpsc::channel(HANDSHAKES_AT_ONCE);
                tokio::spawn(handshakes(tcp, acceptor, send));
                Kind::Tls(receive)
            }
            _ => Kind::Plain(tcp),
        };
        Ok(AdminListener { local, kind })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Listener for AdminListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match &mut self.kind {
            Kind::Plain(tcp) => {
                let (stream, addr) = Listener::accept(tcp).await;
                (Either::Left(stream), addr)
            }
            Kind::Tls(finished) => match finished.recv().await {
                Some((stream, addr)) => (Either::Right(stream), addr),
                // The accepting task is gone (it never ends on its own): accept nothing more.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and hands over the ones whose handshake succeeds.
async fn handshakes(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    finished: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let places = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    let mut tcp = tcp;
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = Listener::accept(&mut tcp).await;
        let acceptor = acceptor.clone();
        let hand_over = finished.clone();
        tokio::spawn(async move {
            let _place = place;
            match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = hand_over.send((stream, addr)).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(remote = %addr, error = %e, "admin page: TLS handshake failed")
                }
                Err(_) => tracing::debug!(remote = %addr, "admin page: TLS handshake timed out"),
            }
        });
        if finished.is_closed() {
            return;
        }
    }
}

/// A TLS acceptor for the PEM certificate chain and key, with HTTP/1.1 offered by ALPN.
pub fn acceptor(certificate: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("admin.tls_certificate {}", certificate.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "admin.tls_certificate {} holds no certificate",
            certificate.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("admin.tls_key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("admin.tls_certificate and admin.tls_key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
