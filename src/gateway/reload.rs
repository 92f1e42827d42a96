//! Reloading who may log in (SIGHUP, or the admin page) without a restart and without dropping
//! anyone.
//!
//! A reload reads the config file again and replaces the users (keys, passwords, roots,
//! permissions, `allowed_networks` with their `[server]` default, `mtime_change`) and the
//! trusted user CAs in one step. Sessions already logged in keep the
//! user they logged in as until they disconnect; the next login sees the new settings.
//!
//! Accounts: one the gateway does not have yet (new in the file, or a token file the admin page
//! left in `[admin] accounts_dir`) is signed in first, and if it cannot be, the reload fails; an
//! account the gateway has keeps its client (connecting it again is the admin page's), and one
//! that is not connected is tried again, its failure recorded but not failing the reload. A
//! user may name any account the gateway has, including one connected from the page since start.
//!
//! The rest of the config (listener, limits, PROXY protocol, metrics, audit log, the settings
//! of accounts already signed in) is read only at start: changing it needs a restart. A config
//! that fails to load, or a new account that fails to sign in, changes nothing. The audit log's
//! file is reopened at every reload (for logrotate), at the path configured at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::account_map::{AccountMap, Failure};
use super::accounts::Connected;
use super::DropboxHomes;
use crate::config::{AccountConfig, Config, ServerConfig};
use crate::ssh::ServerContext;
use crate::users::registry::Logins;

/// What a reload put in place, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub users: usize,
    pub trusted_user_cas: usize,
    /// Accounts signed in by this reload: new ones, and ones that were not connected.
    pub accounts_connected: Vec<String>,
}

/// Replaces a running gateway's users and trusted CAs, and signs in accounts new to it.
#[derive(Clone)]
pub struct Reloader {
    pub(super) context: Arc<ServerContext<DropboxHomes>>,
    /// `[server]` as at start: the proxy and CAs new accounts sign in with.
    pub(super) server: Arc<ServerConfig>,
}

impl Reloader {
    /// Puts `config`'s users and CAs in place (see the module doc); an error leaves the
    /// current ones, and the accounts, untouched.
    pub async fn reload(&self, config: &Config) -> anyhow::Result<Reloaded> {
        let users = config.resolve_users()?;
        let cas = config.trusted_user_cas()?;
        let new_accounts: Vec<&AccountConfig> = config
            .accounts
            .iter()
            .filter(|account| !self.accounts().contains(&account.name))
            .collect();
        for user in &users {
            let known = self.accounts().contains(&user.account)
                || new_accounts.iter().any(|a| a.name == user.account);
            if !known {
                bail!(
                    "users.{}.account: no account named {:?}",
                    user.name,
                    user.account
                );
            }
        }
        let signed_in = self.sign_in_new(&new_accounts).await?;

        // Nothing fails from here on.
        let mut accounts_connected: Vec<String> =
            signed_in.iter().map(|(a, _)| a.name.clone()).collect();
        for (account, connected) in signed_in {
            self.accounts().put_signed_in(account, connected);
        }
        for account in &config.accounts {
            self.accounts().set_config(account.clone());
        }
        let (user_count, ca_count) = (users.len(), cas.len());
        self.context.users.replace(Logins::new(users, cas));
        accounts_connected.extend(self.retry_not_connected().await);
        Ok(Reloaded {
            users: user_count,
            trusted_user_cas: ca_count,
            accounts_connected,
        })
    }

    /// Loads the config file at `path` and reloads from it, logging the outcome. The audit
    /// log file is reopened first, whatever the config holds: logrotate has just renamed it.
    pub async fn reload_file(&self, path: &Path) -> anyhow::Result<Reloaded> {
        if let Err(e) = self.context.audit.reopen() {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot reopen the audit log; writing on to the file already open"
            );
        }
        let result = match Config::load(path) {
            Ok(config) => self.reload(&config).await,
            Err(e) => Err(e),
        };
        match &result {
            Ok(reloaded) => tracing::info!(
                users = reloaded.users,
                trusted_user_cas = reloaded.trusted_user_cas,
                accounts_connected = ?reloaded.accounts_connected,
                "reloaded users and keys; other settings change only with a restart"
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "reload failed; the users and keys already loaded stay in force"
            ),
        }
        result
    }

    fn accounts(&self) -> &AccountMap {
        &self.context.filesystems.accounts
    }

    /// Every new account signed in, or the first failure.
    async fn sign_in_new(
        &self,
        accounts: &[&AccountConfig],
    ) -> anyhow::Result<Vec<(AccountConfig, Connected)>> {
        let mut signed_in = Vec::new();
        for account in accounts {
            let connected = AccountMap::sign_in(account, &self.server)
                .await
                .context("a new account in the config could not be signed in")?;
            signed_in.push(((*account).clone(), connected));
        }
        Ok(signed_in)
    }

    /// Tries again each account that is not connected; the names of those that now are.
    async fn retry_not_connected(&self) -> Vec<String> {
        let waiting = self
            .accounts()
            .snapshot()
            .into_iter()
            .filter(|account| account.signed_in.is_none());
        let mut connected = Vec::new();
        for account in waiting {
            let name = account.config.name.clone();
            match AccountMap::sign_in(&account.config, &self.server).await {
                Ok(signed_in) => {
                    self.accounts().put_signed_in(account.config, signed_in);
                    connected.push(name);
                }
                Err(e) => {
                    tracing::warn!(
                        account = %name,
                        error = format!("{e:#}"),
                        "the Dropbox account is still not connected"
                    );
                    self.accounts().record_failure(&name, Failure::now(&e));
                }
            }
        }
        connected
    }
}
