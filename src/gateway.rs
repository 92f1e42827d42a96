//! The running gateway: config in, SSH listener out.
//!
//! This is the one place where the layers meet: each configured account becomes a Dropbox
//! client, each user a jailed [`DropboxFs`] on their account's client, and the SSH server gets a
//! [`Backend`] that hands a user their filesystem at login.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AccountConfig, Config, User};
use crate::dropbox::{ClientOptions, Credentials, DropboxClient, Endpoints};
use crate::ssh::{self, host_key, Backend, ServerContext};
use crate::upload::{self, UploadSettings};
use crate::vfs::dropbox::{DropboxFs, FsSettings, OpenUploads};

/// A gateway that is accepting connections.
pub struct Gateway {
    addr: SocketAddr,
    host_key_fingerprint: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// Starts serving `config`. Relative paths in it are taken from the working directory.
    pub async fn start(config: &Config) -> anyhow::Result<Gateway> {
        let host_key = host_key::load_or_create(&config.server.host_key)?;
        let host_key_fingerprint = host_key::fingerprint(&host_key);
        tracing::info!(fingerprint = %host_key_fingerprint, "host key");

        let backend = DropboxBackend::new(config)?;
        let removed = upload::remove_stale_spools(&backend.settings.upload.spool_dir)
            .context("cannot clean the spool folder")?;
        if removed > 0 {
            tracing::info!(removed, "removed spool files left by an earlier run");
        }
        let users = config
            .resolve_users(Path::new(""))?
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        let context = Arc::new(ServerContext { users, backend });

        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "listening for SFTP");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ssh::serve(listener, host_key, context, shutdown.clone()));
        Ok(Gateway {
            addr,
            host_key_fingerprint,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

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

/// Users' filesystems on their accounts' Dropbox clients.
struct DropboxBackend {
    accounts: HashMap<String, Account>,
    settings: Arc<FsSettings>,
}

/// A configured account at run time.
struct Account {
    client: DropboxClient,
    /// Shared by every user of the account: an upload is visible to all of them.
    open_uploads: OpenUploads,
}

impl DropboxBackend {
    fn new(config: &Config) -> anyhow::Result<Self> {
        let accounts = config
            .accounts
            .iter()
            .map(|account| {
                let runtime = Account {
                    client: client_for(account)?,
                    open_uploads: OpenUploads::default(),
                };
                Ok((account.name.clone(), runtime))
            })
            .collect::<anyhow::Result<_>>()?;
        let upload = &config.upload;
        let settings = FsSettings {
            upload: Arc::new(UploadSettings {
                spool_dir: upload
                    .spool_dir
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join("dropgate-spool")),
                single_upload_limit: upload.single_upload_limit,
                chunk_size: upload.chunk_size,
                max_file_size: upload.max_file_size,
                min_free_space: upload.min_free_space,
            }),
            mtime_change: config.server.mtime_change,
        };
        Ok(DropboxBackend {
            accounts,
            settings: Arc::new(settings),
        })
    }
}

impl Backend for DropboxBackend {
    type Fs = DropboxFs;

    fn filesystem_for(&self, user: &User) -> anyhow::Result<DropboxFs> {
        let account = self
            .accounts
            .get(&user.account)
            .with_context(|| format!("no account named {:?}", user.account))?;
        Ok(DropboxFs::new(
            account.client.clone(),
            user.dropbox_root.clone(),
            self.settings.clone(),
            account.open_uploads.clone(),
        ))
    }
}

fn client_for(account: &AccountConfig) -> anyhow::Result<DropboxClient> {
    let endpoints = match &account.api_url {
        Some(url) => Endpoints::all(url)?,
        None => Endpoints::default(),
    };
    let credentials = match (
        &account.app_key,
        &account.app_secret,
        &account.refresh_token,
    ) {
        (Some(app_key), Some(app_secret), Some(refresh_token)) => Credentials::Refresh {
            app_key: app_key.clone(),
            app_secret: app_secret.clone(),
            refresh_token: refresh_token.clone(),
        },
        _ => Credentials::AccessToken(
            account
                .access_token
                .clone()
                .context("the account has no credentials")?,
        ),
    };
    let client = DropboxClient::new(ClientOptions {
        endpoints,
        credentials,
        select_user: None,
        path_root: None,
        proxy: None,
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(120),
    })
    .with_context(|| format!("account {:?}", account.name))?;
    Ok(client)
}
