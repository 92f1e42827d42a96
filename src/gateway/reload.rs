//! Reloading who may log in (SIGHUP) without a restart and without dropping anyone.
//!
//! A reload reads the config file again and replaces the users (keys, passwords, roots,
//! permissions, `allowed_networks` with their `[server]` default, `mtime_change`) and the
//! trusted user CAs in one step. Sessions already logged in keep the
//! user they logged in as until they disconnect; the next login sees the new settings. The
//! rest of the config (listener, accounts, limits, PROXY protocol, metrics, audit log) is read
//! only at start: changing it needs a restart, and a reload says which of those it ignored.
//! A config that fails to load changes nothing. The audit log's file is reopened at every
//! reload (for logrotate), at the path configured at start.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;

use super::DropboxHomes;
use crate::config::Config;
use crate::ssh::ServerContext;
use crate::users::registry::Logins;

/// What a reload put in place, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub users: usize,
    pub trusted_user_cas: usize,
}

/// Replaces a running gateway's users and trusted CAs.
#[derive(Clone)]
pub struct Reloader {
    pub(super) context: Arc<ServerContext<DropboxHomes>>,
}

impl Reloader {
    /// Puts `config`'s users and CAs in place; an error leaves the current ones untouched.
    pub fn reload(&self, config: &Config) -> anyhow::Result<Reloaded> {
        let users = config.resolve_users()?;
        for user in &users {
            if !self
                .context
                .filesystems
                .accounts
                .contains_key(&user.account)
            {
                bail!(
                    "users.{}.account: the account {:?} was not there at start; new accounts \
                     need a restart",
                    user.name,
                    user.account
                );
            }
        }
        let cas = config.trusted_user_cas()?;
        let reloaded = Reloaded {
            users: users.len(),
            trusted_user_cas: cas.len(),
        };
        self.context.users.replace(Logins::new(users, cas));
        Ok(reloaded)
    }

    /// Loads the config file at `path` and reloads from it, logging the outcome. The audit
    /// log file is reopened first, whatever the config holds: logrotate has just renamed it.
    pub fn reload_file(&self, path: &Path) {
        if let Err(e) = self.context.audit.reopen() {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot reopen the audit log; writing on to the file already open"
            );
        }
        let result = Config::load(path).and_then(|config| self.reload(&config));
        match result {
            Ok(reloaded) => tracing::info!(
                users = reloaded.users,
                trusted_user_cas = reloaded.trusted_user_cas,
                "reloaded users and keys; other settings change only with a restart"
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "reload failed; the users and keys already loaded stay in force"
            ),
        }
    }
}
