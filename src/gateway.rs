//! The running gateway: config in, SSH listener out.
//!
//! This is the one place where the layers meet: each configured account becomes a Dropbox
//! client ([`accounts`]: token file, proxy, team member, team space), each user a jailed
//! [`DropboxFs`] on their account's client, and the SSH server gets a [`UserFilesystems`] that
//! hands a user their filesystem at login. `dropgate check-config` (`crate::cli::check`) signs
//! in the same way.
//!
//! Users and keys can be replaced while it runs ([`reload`]).
//!
//! Graceful shutdown ([`Drainer`]): the listener stops accepting, sessions already connected
//! go on, and the gateway waits (up to a timeout) until no upload is open on any account, so
//! an upload being received or committed when the signal came still reaches Dropbox.

pub mod accounts;
pub mod reload;

use std::collections::HashMap;
use std::net::SocketAddr;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, ActivityBounds};
use crate::audit_log::AuditLog;
use crate::backend::dropbox::api::DropboxClient;
use crate::backend::dropbox::upload::{self, UploadSettings};
use crate::backend::dropbox::{DropboxFs, FsSettings, OpenUploads};
use crate::config::Config;
use crate::hooks::Hooks;
use crate::metrics;
use crate::ssh::algorithms::Policy;
use crate::ssh::{self, host_key, ServerContext, UserFilesystems};
use crate::tls_trust::Trust;
use crate::users::registry::{Logins, Registry};
use crate::users::User;
use accounts::Unreachable;
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
}

impl Gateway {
    /// Starts serving `config` (whose paths [`Config::load`] made absolute).
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
        })
    }

    /// A handle that replaces the users and keys while the gateway runs (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            context: self.context.clone(),
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
        self.context
            .filesystems
            .accounts
            .values()
            .map(|account| account.open_uploads.count())
            .sum()
    }
}

/// Users' filesystems on their accounts' Dropbox clients.
struct DropboxHomes {
    accounts: HashMap<String, Account>,
    settings: Arc<FsSettings>,
}

/// A configured account at run time.
struct Account {
    client: DropboxClient,
    /// Shared by every user of the account: an upload is visible to all of them.
    open_uploads: OpenUploads,
}

impl DropboxHomes {
    async fn new(config: &Config) -> anyhow::Result<Self> {
        let mut accounts = HashMap::new();
        for account in &config.accounts {
            let connected =
                accounts::connect(account, &config.server, Unreachable::Tolerate).await?;
            let facts = &connected.facts;
            tracing::info!(
                account = %account.name,
                email = facts.email.as_deref().unwrap_or("?"),
                team_member_id = facts.team_member_id.as_deref().unwrap_or("-"),
                team_space_root = facts.team_space_root.as_deref().unwrap_or("-"),
                "Dropbox account ready"
            );
            let runtime = Account {
                client: connected.client,
                open_uploads: OpenUploads::default(),
            };
            accounts.insert(account.name.clone(), runtime);
        }
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

    fn filesystem_for(&self, user: &User) -> anyhow::Result<DropboxFs> {
        let account = self
            .accounts
            .get(&user.account)
            .with_context(|| format!("no account named {:?}", user.account))?;
        Ok(DropboxFs::new(
            account.client.clone(),
            user.dropbox_root.clone(),
            self.settings_for(user),
            account.open_uploads.clone(),
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
