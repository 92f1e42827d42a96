//! The optional HTTP listener for operators: `/metrics` (Prometheus text) and `/healthz`.
//!
//! `/healthz` answers 200 `ok` while the gateway accepts SSH connections and 503 `draining`
//! once a shutdown has begun, so a load balancer stops sending new clients to an instance that
//! is finishing its uploads. The listener has nothing secret to show and no way to change
//! anything; bind it to a private address all the same.

use std::net::SocketAddr;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type Prometheus expects for the text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `listen` and serves until the process ends; returns the bound address. `draining`
/// is the gateway's shutdown token: once cancelled, `/healthz` says so.
pub async fn start(listen: SocketAddr, draining: CancellationToken) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(move || healthz(draining.clone())));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics and /healthz");
    Ok(addr)
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], super::render())
}

async fn healthz(draining: CancellationToken) -> (StatusCode, &'static str) {
    if draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
