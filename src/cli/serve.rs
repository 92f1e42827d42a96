//! `dropgate serve`: the gateway until a signal stops it.
//!
//! SIGTERM or SIGINT starts a graceful shutdown (no new connections; open uploads get
//! `shutdown_timeout_secs` to commit; a second signal exits at once); SIGHUP reloads users and
//! keys from the config file and reopens the audit log. Sessions still open when it exits
//! get their `disconnect` audit line as the runtime drops them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::gateway::reload::Reloader;
use crate::gateway::Gateway;

/// Runs until the listener fails, or until SIGTERM/SIGINT (SIGHUP reloads users and keys): then no new connections, open
/// uploads get `shutdown_timeout_secs` to commit, and a second signal exits at once.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // Listening for the signals before anything starts: their default action ends the process.
    let mut signals = StopSignals::new()?;
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    tracing::info!(
        instance = crate::audit_log::instance(),
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    let gateway = Gateway::start(&config).await?;
    let drainer = gateway.drainer();
    tokio::spawn(reload_on_hangup(
        hangups,
        gateway.reloader(),
        config_path.to_path_buf(),
    ));
    tokio::select! {
        result = gateway.wait() => return result,
        name = signals.next() => {
            let timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
            tracing::info!(
                signal = name,
                open_uploads = drainer.open_uploads(),
                timeout_secs = timeout.as_secs(),
                "shutting down: no new connections; waiting for open uploads to commit"
            );
            tokio::select! {
                finished = drainer.drain(timeout) => {
                    if finished {
                        tracing::info!("all uploads finished; exiting");
                    }
                }
                name = signals.next() => {
                    tracing::warn!(signal = name, "second signal: exiting now");
                }
            }
        }
    }
    Ok(())
}

/// Each SIGHUP reloads the users and keys from the config file (see `gateway::reload`).
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Reloader,
    config_path: PathBuf,
) {
    while hangups.recv().await.is_some() {
        tracing::info!(config = %config_path.display(), "SIGHUP: reloading users and keys");
        reloader.reload_file(&config_path);
    }
}

/// SIGTERM and SIGINT, whichever comes.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
