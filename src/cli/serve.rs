//! `dropgate serve`: the gateway until a signal stops it.
//!
//! SIGTERM or SIGINT starts a graceful shutdown (no new connections; open uploads get
//! `shutdown_timeout_secs` to commit; a second signal exits at once); SIGHUP reloads users and
//! keys from the config file and reopens the audit log. Sessions still open when it exits
//! get their `disconnect` audit line as the runtime drops them. A shutdown that had to abandon
//! open uploads (the timeout, or a second signal) ends with an error, so the exit status says
//! that data was lost. Under systemd the service manager is told each step (`notify`).

mod notify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::gateway::reload::Reloader;
use crate::gateway::{Drainer, Gateway};
use notify::ServiceManager;

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
    let manager = Arc::new(ServiceManager::from_env());
    let gateway = Gateway::start(&config).await?;
    let _admin = crate::admin::start_for(&gateway, &config.admin).await?;
    // Accounts signed in and the port bound: partners can connect from now on.
    let serving = format!("serving SFTP on {}", gateway.addr());
    manager.ready(&serving);
    let drainer = gateway.drainer();
    tokio::spawn(reload_on_hangup(
        hangups,
        gateway.reloader(),
        config_path.to_path_buf(),
        manager.clone(),
        serving,
    ));
    tokio::select! {
        result = gateway.wait() => result,
        name = signals.next() => {
            let timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
            shut_down(name, &drainer, timeout, &mut signals, &manager).await
        }
    }
}

/// No new connections; open uploads get `timeout` to commit. An error if any was abandoned.
async fn shut_down(
    signal: &str,
    drainer: &Drainer,
    timeout: Duration,
    signals: &mut StopSignals,
    manager: &ServiceManager,
) -> anyhow::Result<()> {
    let open = drainer.open_uploads();
    tracing::info!(
        signal,
        open_uploads = open,
        timeout_secs = timeout.as_secs(),
        "shutting down: no new connections; waiting for open uploads to commit"
    );
    manager.stopping(&format!(
        "{signal}: draining, {open} open upload(s), at most {}s",
        timeout.as_secs()
    ));
    tokio::select! {
        finished = drainer.drain(timeout) => {
            if finished {
                tracing::info!("all uploads finished; exiting");
                manager.status("all uploads finished; exiting");
                return Ok(());
            }
            abandoned(drainer.open_uploads(), "the shutdown timeout passed", manager)
        }
        name = signals.next() => {
            tracing::warn!(signal = name, "second signal: exiting now");
            match drainer.open_uploads() {
                0 => Ok(()),
                open => abandoned(open, &format!("a second signal ({name}) came"), manager),
            }
        }
    }
}

/// The error a shutdown ends with when `open` uploads never reached Dropbox.
fn abandoned(open: usize, why: &str, manager: &ServiceManager) -> anyhow::Result<()> {
    let message = format!("{why}; {open} open upload(s) abandoned, not stored in Dropbox");
    manager.status(&message);
    anyhow::bail!(message)
}

/// Each SIGHUP reloads the users and keys from the config file (see `gateway::reload`).
/// systemd hears RELOADING=1 before and READY=1 after each one.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    reloader: Reloader,
    config_path: PathBuf,
    manager: Arc<ServiceManager>,
    serving: String,
) {
    while hangups.recv().await.is_some() {
        manager.reloading();
        tracing::info!(config = %config_path.display(), "SIGHUP: reloading users and keys");
        // The outcome is logged; a failed reload leaves the gateway as it was.
        let _ = reloader.reload_file(&config_path).await;
        manager.ready(&serving);
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
