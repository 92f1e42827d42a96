//! A Dropbox API v2 emulator: the embedded default of `dropgate demo` and the backend of the
//! integration tests. It needs nothing of the gateway; the `dropbox-emulator` binary (or
//! `dropgate emulator`) runs it alone.
//!
//! It behaves like Dropbox as the public Stone spec (dropbox/dropbox-api-spec) and the
//! repository's `docs/dropbox-api.md` describe it — argument names, result shapes, error
//! unions, status codes and header rules — not like whatever our own client happens to send, so
//! it can catch a client that is wrong. One HTTP server (HTTP/1.1 keep-alive and HTTP/2 prior-knowledge h2c)
//! serves the api, content and oauth routes:
//!
//! * `POST /2/files/{get_metadata, list_folder, list_folder/continue, create_folder_v2,
//!   delete_v2, move_v2, copy_v2, upload_session/finish_batch_v2, upload_session/finish_batch,
//!   upload_session/finish_batch/check}` (RPC), `files/upload`, `files/upload_session/{start,
//!   append_v2, finish}` (upload), `files/download` (download, POST or GET),
//!   `users/{get_current_account, get_space_usage}`, `team/members/get_info_v2`;
//! * `GET /oauth2/authorize` (approves at once), `POST /oauth2/token`.
//!
//! # Storage (`root`)
//! Real bytes on disk; a restarted emulator on the same root serves the same files:
//! ```text
//! accounts.json               who exists and which tokens unlock whom (below)
//! issued_refresh_tokens.json  refresh tokens issued by the code flow
//! meta/<tree>/<id>.json       one metadata file per file or folder (atomic temp + rename)
//! blobs/<blob>                content of each stored file version
//! sessions/<id>/              upload sessions: state.json and data
//! tmp/                        uploads in flight
//! ```
//! A *tree* is the storage of one personal account or one team, named by its root namespace id.
//! A team's tree holds its team folders and each member's home folder at the top; a member's
//! home namespace is that folder, the team space root namespace is the whole tree (so with
//! `Dropbox-API-Path-Root: {".tag":"root",...}` a member sees the team folders and the members'
//! homes as folders).
//!
//! # `accounts.json`
//! Written with the [`demo_credentials`] values when missing:
//! ```json
//! {
//!   "access_token_ttl_secs": 14400,
//!   "apps": [{"app_key": "...", "app_secret": "..."}],
//!   "accounts": [{"account_id": "dbid:<35 chars>", "email": "demo@example.com",
//!                 "given_name": "Demo", "surname": "User", "country": "US", "locale": "en",
//!                 "home_namespace_id": "1001", "allocated_bytes": 2199023255552}],
//!   "teams": [{"team_id": "dbtid:...", "name": "Example Team", "root_namespace_id": "2000",
//!              "allocated_bytes": 5497558138880,
//!              "team_folders": [{"name": "Team Shared", "namespace_id": "2100"}],
//!              "members": [{"account_id": "dbid:...", "email": "alice@team.example",
//!                           "given_name": "Alice", "surname": "Smith",
//!                           "team_member_id": "dbmid:...", "home_namespace_id": "2001",
//!                           "home_folder": "Alice Smith"}]}],
//!   "refresh_tokens": [{"token": "...", "app_key": "...", "account_id": "dbid:..."},
//!                      {"token": "...", "app_key": "...", "team_id": "dbtid:..."}],
//!   "static_access_tokens": [{"token": "...", "account_id": "dbid:..."},
//!                            {"token": "...", "team_id": "dbtid:..."}],
//!   "authorize_as": "dbid:... (optional; default the first account)"
//! }
//! ```
//! Static access tokens never expire; access tokens from `/oauth2/token` expire after
//! `access_token_ttl_secs` (set it low to test refreshing) and live in memory.
//!
//! # Test hooks (`/__emulator/`, not part of Dropbox)
//! * `POST /__emulator/faults` `{"rules":[{"kind": "status_429"|"status_503"|"expired_token"|
//!   "drop_before"|"drop_after"|"error"|"delay_after"|"cut_body", "route": "files/upload",
//!   "count": N, "skip": N, "probability": 0.2, "retry_after": 1, "status": 409, "body": {...},
//!   "delay_ms": 1000, "after_bytes": 65536}]}` replaces the rules;
//!   `DELETE` clears them. Without `route` a rule matches every `/2/` and `/oauth2/` request;
//!   without `count` it stays until cleared; with `skip` the first N matching requests pass
//!   untouched. `drop_before` closes the connection without applying the request, `drop_after`
//!   applies it and then closes without a response, `delay_after` applies it and holds the
//!   answer back for `delay_ms`, `cut_body` sends the answer's head and `after_bytes` of its
//!   body, then closes the connection.
//! * `GET /__emulator/stats` → `{"requests": {"files/upload": 3, ...}, "busy_ms": {"files/upload": 12.5, ...},
//!   "write_lock_refusals": 0, "rate_limit_refusals": 0, "batch_entries": 0,
//!   "concurrent_sessions": 0, "peak_appends_in_flight": 0,
//!   "faults_injected": {"status_503": 2}, "downloads_in_flight": 0,
//!   "peak_downloads_in_flight": 4}` (handling time per route, up to the response head;
//!   calls refused by the `write_lock` and `rate_limit` models; entries applied by the
//!   finish_batch routes; concurrent upload sessions started; the most appends one session
//!   has had in flight at once, from arrival to answer; faults injected by kind; download
//!   bodies being sent now and at most at once); `DELETE` resets (the download peak to the
//!   downloads in flight then).
//! * `POST /__emulator/expire_tokens` expires every issued (non-static) access token.
//! * `PUT /__emulator/realism` `{...}` replaces the models of real Dropbox behaviour in force
//!   (see [`Realism`]; a missing field is off); `GET` shows them. The models:
//!   - `"write_lock": {"hold_ms": 200, "shape": "route_error"|"rate_limit"|"alternate",
//!     "retry_after": N}`: each commit (files/upload, upload_session/finish, a whole
//!     finish_batch, create_folder_v2, delete_v2, move_v2, copy_v2) holds its namespace's lock for `hold_ms` before it answers,
//!     and a commit overlapping it in the same namespace is refused with
//!     `too_many_write_operations`, as a 409 in the route's own error union (`route_error`),
//!     as a 429 RateLimitError (`rate_limit`, with `retry_after` and `Retry-After` only if
//!     set), or one then the other (`alternate`, the default).
//!   - `"rate_limit": {"burst": 3, "per_second": 2.0, "retry_after_secs": 20}`: each user (each
//!     team member acting through a team token; the team itself on team routes) may make
//!     `burst` calls at once, refilled at `per_second`, over every API route; the call that
//!     finds the budget spent, and every call of that user for `retry_after_secs` after it,
//!     gets a 429 with `Retry-After` and the RateLimitError body.
//!   - `"refuse_non_bmp_names": {}` refuses names with characters beyond U+FFFF (emoji) in
//!     written paths as `malformed_path`, as Dropbox does for some accounts.
//!   - `"lag_ms": N`: for N ms after an entry is written, get_metadata, move_v2, copy_v2 and
//!     delete_v2 by path answer `not_found` for it (listings and ids see it at once).
//!   - `"session_lifetime_secs": N`: upload sessions expire N s after their start (Dropbox: 7
//!     days, the default); an expired session is `not_found`.
//! * `PUT /__emulator/distance` `{"latency_ms": 40, "connection_bytes_per_sec": 25000000}`
//!   replaces how far away the emulator pretends to be ([`Distance`]: a round trip added to
//!   every answer and to each new connection, a cap on each connection's throughput per
//!   direction; a missing field is off); `GET` shows it.

mod accounts;
mod caller;
mod cli;
mod commit;
mod content_hash;
pub mod demo_credentials;
mod disk;
mod distance;
mod download;
mod error;
mod faults;
mod files_read;
mod files_write;
mod finish_batch;
mod lag;
mod locate;
mod non_bmp_names;
mod oauth;
mod paths;
mod rate_limit;
mod realism;
mod server;
mod sessions;
mod spool;
mod store;
mod team;
mod tokens;
mod upload;
mod users;
mod wire;
mod write_lock;
mod write_rules;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;

pub use cli::EmulatorArgs;
pub use content_hash::{content_hash, ContentHasher};
pub use distance::Distance;
pub use non_bmp_names::RefuseNonBmpNames;
pub use rate_limit::RateLimit;
pub use realism::{Profile, Realism};

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Storage root (created if missing).
    pub root: PathBuf,
    /// Where to listen, e.g. `127.0.0.1:0` for a free port.
    pub listen: SocketAddr,
    /// Most entries per list_folder page; list_folder's own `limit` may lower it.
    pub page_size: usize,
    /// Which models of real Dropbox behaviour are on at start (all off by default).
    pub realism: Realism,
    /// How far away the emulator pretends to be at start (nowhere by default).
    pub distance: Distance,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            root: PathBuf::from("./emulator-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            page_size: 500,
            realism: Realism::default(),
            distance: Distance::default(),
        }
    }
}

/// A running emulator.
pub struct Emulator {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// How long shutdown waits for open connections before cutting them.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

impl Emulator {
    /// Opens the storage root, binds and starts serving in the background; returns at once.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let state = Arc::new(open_state(&config)?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the emulator to {}", config.listen))?;
        let addr = listener.local_addr()?;
        let listener = distance::FarListener::new(listener, state.distance.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!("emulator server failed: {err}");
            }
        });
        Ok(Emulator { addr, stop, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: base of the api, content and oauth routes alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish (briefly), then stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

fn open_state(config: &EmulatorConfig) -> anyhow::Result<server::AppState> {
    let layout = disk::Layout::create(&config.root)
        .with_context(|| format!("creating the emulator root {}", config.root.display()))?;
    let accounts = accounts::AccountsFile::load_or_create(&config.root)?;
    let tokens = tokens::Tokens::load(&accounts, &layout)?;
    let directory = caller::Directory::new(accounts);
    let mut store = store::Store::open(layout.clone()).context("loading emulator metadata")?;
    create_namespace_folders(&directory, &mut store)?;
    Ok(server::AppState {
        sessions: sessions::Sessions::new(&layout),
        layout,
        directory,
        tokens,
        store: Mutex::new(store),
        faults: Default::default(),
        stats: Default::default(),
        realism: realism::RealismSwitch::new(config.realism.clone()),
        distance: Arc::new(distance::DistanceSwitch::new(config.distance)),
        write_locks: Default::default(),
        rate_limits: Default::default(),
        batch_jobs: Default::default(),
        page_size: config.page_size.max(1),
    })
}

/// Every namespace's top folder (member homes, team folders) exists from the start.
fn create_namespace_folders(
    directory: &caller::Directory,
    store: &mut store::Store,
) -> anyhow::Result<()> {
    for namespace in directory.namespaces.values() {
        if namespace.base.is_empty() {
            continue;
        }
        let place = locate::Located {
            tree: namespace.tree.clone(),
            components: namespace.base.clone(),
            depth: 0,
        };
        if place.entry(store).is_none() {
            let folder = store::Entry {
                id: disk::new_id(),
                path_display: paths::display_path(&namespace.base),
                file: None,
            };
            store.put(&namespace.tree, folder)?;
        }
    }
    Ok(())
}

/// For the CLI: start, log the URL, serve until Ctrl-C.
pub async fn run(config: EmulatorConfig) -> anyhow::Result<()> {
    let emulator = Emulator::start(config.clone()).await?;
    tracing::info!(
        "Dropbox API emulator listening on {} (storage: {})",
        emulator.base_url(),
        config.root.display()
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping the Dropbox API emulator");
    emulator.shutdown().await;
    Ok(())
}
