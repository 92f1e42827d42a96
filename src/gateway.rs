//! The running gateway: config in, SSH listener out.
//!
//! This is the one place where the layers meet: each configured account becomes a Dropbox
//! client ([`accounts`]: token file, proxy, team member, team space), each user a jailed
//! [`DropboxFs`] on their account's client, and the SSH server gets a [`UserFilesystems`] that
//! hands a user their filesystem at login. `dropgate check-config` (`crate::cli::check`) signs
//! in the same way.
//!
//! Users and keys can be replaced while it runs ([`reload`]), and so can an account's client
//! (`account_map`): the admin page connects accounts, or connects them again, through a
//! [`Control`] handle, which also reads the accounts' health, the users, the ban logic and the
//! audit log of the running gateway.
//!
//! Graceful shutdown ([`Drainer`]): the listener stops accepting, sessions already connected
//! go on, and the gateway waits (up to a timeout) until no upload is open on any account, so
//! an upload being received or committed when the signal came still reaches Dropbox.

mod account_map;
pub mod accounts;
pub mod control;
pub mod reload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, ActivityBounds};
use crate::admin::settings::AdminConfig;
use crate::audit_log::AuditLog;
use crate::backend::dropbox::upload::{self, UploadSettings};
use crate::backend::dropbox::{DropboxFs, FsSettings};
use crate::config::{Config, ServerConfig};
use crate::hooks::Hooks;
use crate::metrics;
use crate::ssh::algorithms::Policy;
use crate::ssh::guard::AddressGuard;
use crate::ssh::{self, host_key, ServerContext, UserFilesystems};
use crate::tls_trust::Trust;
use crate::users::registry::{Logins, Registry};
use crate::users::User;
use account_map::AccountMap;
pub use control::Control;
use reload::Reloader;

/// A gateway that is accepting connections.
pub struct Gateway {
    addr: SocketAddr,
    host_key_fingerprint: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    context: Arc<ServerContext<DropboxHomes>>,
    metrics_addr: Option<SocketAddr>,
    activity: Arc<Activity>,
    /// The ban logic of the SSH listener, shared with the admin page's login.
    guard: Arc<AddressGuard>,
    started: Arc<StartedWith>,
    /// Held while an account is connected from the admin page (see `Control::connect`).
    connecting: Arc<tokio::sync::Mutex<()>>,
}

/// What the gateway was started with that later changes still need: the settings new accounts
/// sign in with, the admin page's, and the file a reload reads.
struct StartedWith {
    server: ServerConfig,
    admin: AdminConfig,
    config_path: Option<PathBuf>,
}

impl Gateway {
    /// Starts serving `config` (whose paths [`Config::load`] made absolute); reloads read the
    /// file it was loaded from (`config.source`).
    pub async fn start(config: &Config) -> anyhow::Result<Gateway> {
        let policy = Policy::from_config(&config.server.algorithms)?;
        let host_keys = load_host_keys(config)?;
        announce_policy(&policy);
        let host_key_fingerprint = host_key::fingerprint(&host_keys[0]);
        prepare_spool_folder(config)?;

        let homes = DropboxHomes::new(config).await?;
        let removed = upload::remove_stale_spools(&homes.settings.upload.spool_dir)
            .context("cannot clean the spool folder")?;
        if removed > 0 {
            tracing::info!(removed, "removed spool files left by an earlier run");
        }
        let logins = Logins::new(config.resolve_users()?, config.trusted_user_cas()?);
        let mut audit = match &config.audit.output {
            Some(output) => AuditLog::open(output)?,
            None => AuditLog::disabled(),
        };
        let trust =
            Trust::with_ca_file(config.server.ca_file.as_deref()).context("server.ca_file")?;
        if let Some(hooks) = Hooks::start(&config.hooks, &config.hook_queue, &trust)? {
            audit = audit.with_listener(hooks);
        }
        let activity = Arc::new(Activity::new(
            audit.transfers().clone(),
            ActivityBounds {
                recent_events: config.admin.recent_events,
                connections: config.limits.max_connections,
            },
        ));
        audit = audit.with_listener(activity.clone());
        let guard = AddressGuard::new(config.limits.clone());
        let context = Arc::new(ServerContext {
            users: Registry::new(logins),
            trusted_proxies: match config.server.proxy_protocol {
                true => Some(config.server.trusted_proxies()?),
                false => None,
            },
            filesystems: homes,
            limits: config.limits.clone(),
            audit,
        });

        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening for SFTP");
        let shutdown = CancellationToken::new();
        let metrics_addr = match config.metrics.listen {
            Some(listen) => Some(metrics::server::start(listen, shutdown.clone()).await?),
            None => None,
        };
        let task = tokio::spawn(ssh::serve(
            listener,
            host_keys,
            policy,
            context.clone(),
            guard.clone(),
            shutdown.clone(),
        ));
        Ok(Gateway {
            addr,
            host_key_fingerprint,
            shutdown,
            task,
            context,
            metrics_addr,
            activity,
            guard,
            connecting: Arc::default(),
            started: Arc::new(StartedWith {
                server: config.server.clone(),
                admin: config.admin.clone(),
                config_path: config.source.clone(),
            }),
        })
    }

    /// A handle that replaces the users and keys while the gateway runs (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            context: self.context.clone(),
            server: Arc::new(self.started.server.clone()),
        }
    }

    /// The admin page's handle on the running gateway (see [`Control`]).
    pub fn control(&self) -> Control {
        Control {
            context: self.context.clone(),
            reloader: self.reloader(),
            guard: self.guard.clone(),
            started: self.started.clone(),
            connecting: self.connecting.clone(),
        }
    }

    /// A handle that can stop the listener and wait for open uploads (graceful shutdown).
    pub fn drainer(&self) -> Drainer {
        Drainer {
            shutdown: self.shutdown.clone(),
            context: self.context.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` and `/healthz` are served, if `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Its connections, transfers in progress, recent audit events and last logins.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The ed25519 host key's fingerprint.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// Stops accepting connections.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await?
    }

    /// Runs until the listener fails.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Every configured host key (ed25519 first), created where missing; each fingerprint is
/// logged so an admin can publish them.
fn load_host_keys(config: &Config) -> anyhow::Result<Vec<russh::keys::PrivateKey>> {
    let mut keys = Vec::new();
    for file in host_key::configured_files(&config.server) {
        let key = file.load_or_create(config.server.host_key_create)?;
        tracing::info!(
            key = %host_key::describe(&key),
            path = %file.path.display(),
            "host key"
        );
        keys.push(key);
    }
    Ok(keys)
}

/// Refuses to start with a spool folder no upload could use, rather than fail every upload.
fn prepare_spool_folder(config: &Config) -> anyhow::Result<()> {
    let dir = config.upload.spool_dir();
    let free = upload::spool_dir::prepare(&dir)?;
    let floor = config.upload.min_free_space;
    if free < floor {
        tracing::warn!(
            spool_dir = %dir.display(),
            free,
            min_free_space = floor,
            "the spool folder's file system is below upload.min_free_space: uploads are refused \
             until space is freed"
        );
    }
    Ok(())
}

fn announce_policy(policy: &Policy) {
    tracing::info!(policy = %policy.describe(), "algorithms");
    if policy.allows_legacy() {
        tracing::warn!(
            policy = %policy.name,
            "server.algorithms allows legacy algorithms (SHA-1, CBC); each connection that \
             uses one is logged"
        );
    }
}

/// Stops a gateway gracefully: see the module doc.
#[derive(Clone)]
pub struct Drainer {
    shutdown: CancellationToken,
    context: Arc<ServerContext<DropboxHomes>>,
}

impl Drainer {
    /// Stops accepting connections, then waits until no upload is open or `timeout` has
    /// passed; true if every upload finished.
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let open = self.open_uploads();
            if open == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(open, "shutdown timeout: uploads still open are abandoned");
                return false;
            }
            tracing::debug!(open, "waiting for open uploads before exiting");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Uploads open on every account (being received or committed).
    pub fn open_uploads(&self) -> usize {
        self.context.filesystems.accounts.open_uploads()
    }
}

/// Users' filesystems on their accounts' Dropbox clients.
struct DropboxHomes {
    accounts: AccountMap,
    settings: Arc<FsSettings>,
}

impl DropboxHomes {
    async fn new(config: &Config) -> anyhow::Result<Self> {
        let accounts = AccountMap::sign_in_all(config).await?;
        let upload = &config.upload;
        let settings = FsSettings {
            upload: Arc::new(UploadSettings {
                spool_dir: upload.spool_dir(),
                single_upload_limit: upload.single_upload_limit,
                chunk_size: upload.chunk_size,
                connections: upload.connections,
                max_file_size: upload.max_file_size,
                min_free_space: upload.min_free_space,
            }),
            download: config.download.settings(),
            mtime_change: config.server.mtime_change,
        };
        Ok(DropboxHomes {
            accounts,
            settings: Arc::new(settings),
        })
    }
}

impl UserFilesystems for DropboxHomes {
    type Fs = DropboxFs;

    /// On the account's client of this moment (see `account_map` for the error).
    fn filesystem_for(&self, user: &User) -> anyhow::Result<DropboxFs> {
        let (client, open_uploads) = self.accounts.home(&user.account)?;
        Ok(DropboxFs::new(
            client,
            user.dropbox_root.clone(),
            self.settings_for(user),
            open_uploads,
        ))
    }
}

impl DropboxHomes {
    /// The gateway's settings, with the user's own `mtime_change` where they set one (read at
    /// each login, so a reload changes it for the next session).
    fn settings_for(&self, user: &User) -> Arc<FsSettings> {
        match user.mtime_change {
            Some(own) if own != self.settings.mtime_change => Arc::new(FsSettings {
                mtime_change: own,
                ..(*self.settings).clone()
            }),
            _ => self.settings.clone(),
        }
    }
}
