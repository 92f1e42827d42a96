//! [`Control`]: the admin page's handle on the running gateway.
//!
//! The page shows the accounts (with their health: who they are signed in as, the last error,
//! the token's expiry) and the users, connects accounts and reloads the config, and signs its
//! own admins in against the same ban logic as SSH logins. Every one of those is a view of, or a
//! change to, state the gateway already holds; `Control` is the one way in, so the page never
//! holds a copy that could drift from what logins see.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use russh::keys::HashAlg;

use super::account_map::{AccountMap, Failure, RuntimeAccount};
use super::reload::{Reloaded, Reloader};
use super::{DropboxHomes, StartedWith};
use crate::admin::settings::AdminConfig;
use crate::audit_log::AuditLog;
use crate::config::{AccountConfig, ServerConfig};
use crate::ssh::guard::AddressGuard;
use crate::ssh::ServerContext;
use crate::users::registry::Logins;
use crate::users::{MtimeChange, User};

/// A handle on a running gateway, from [`super::Gateway::control`]; cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub(super) context: Arc<ServerContext<DropboxHomes>>,
    pub(super) reloader: Reloader,
    pub(super) guard: Arc<AddressGuard>,
    pub(super) started: Arc<StartedWith>,
    /// One connect at a time: two admins connecting the same account at once must not leave
    /// one's token file in place and the other's client running.
    pub(super) connecting: Arc<tokio::sync::Mutex<()>>,
}

/// One account as the gateway runs it now.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub name: String,
    /// A client is in place: users of the account can log in (Dropbox may still have refused
    /// its last request: see `last_error`).
    pub connected: bool,
    /// Who it signed in as (None if not connected, or Dropbox could not be asked at start).
    pub email: Option<String>,
    pub account_id: Option<String>,
    /// It acts as a member of a Business team (`team_member_email`).
    pub team: bool,
    pub team_member_email: Option<String>,
    pub team_member_id: Option<String>,
    /// Paths start at the team space (`team_space`), whose root namespace is this once signed in.
    pub team_space: bool,
    pub team_space_root: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The scopes Dropbox granted, space-separated, as the token file recorded them.
    pub granted_scopes: Option<String>,
    /// When the current access token expires; None before the first token.
    pub token_expires_at: Option<SystemTime>,
    /// The last failed Dropbox request of its current client (see
    /// [`crate::backend::dropbox::api::Health`] for what counts), or the last failed sign-in (at
    /// start, a reload, or a connect), whichever is newer. A later success does not clear it: compare
    /// `last_error_at` with `last_ok_at`.
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// The last request Dropbox answered with the account's credentials accepted (a sign-in
    /// included).
    pub last_ok_at: Option<SystemTime>,
    /// The users naming it, by name.
    pub users: Vec<String>,
    /// Its credentials are in the config (inline or `*_file`), not in a token file, so it
    /// cannot be connected again from the page.
    pub credentials_in_config: bool,
}

/// One user as logins see them now.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub name: String,
    pub account: String,
    /// The user's home in Dropbox ("" is the whole Dropbox).
    pub dropbox_root: String,
    /// "all", a preset's name, or the permissions granted, comma separated.
    pub permissions: String,
    /// Each authorized key's SHA256 fingerprint, as `ssh-keygen -l` prints it.
    pub key_fingerprints: Vec<String>,
    pub has_password: bool,
    /// Where the user may log in from, comma separated; None: from anywhere.
    pub allowed_networks: Option<String>,
    /// The user's own `mtime_change`; None: the server's.
    pub mtime_change: Option<MtimeChange>,
}

impl Control {
    /// Every account the gateway has: the config's in its order, then those added since (by
    /// [`Control::connect_account`] or a reload).
    pub fn accounts(&self) -> Vec<AccountStatus> {
        let logins = self.context.users.current();
        self.account_map()
            .snapshot()
            .iter()
            .map(|account| status(account, &logins))
            .collect()
    }

    /// The settings known for the account `name`: from the config at start or at the last
    /// reload, or as connected since.
    pub fn account_config(&self, name: &str) -> Option<AccountConfig> {
        self.account_map().get(name).map(|account| account.config)
    }

    /// Signs `account` in as at start (but Dropbox being unreachable is an error too), then puts
    /// its client in place for the next logins, as a new account or in place of the one of that
    /// name. A replaced account keeps its open uploads; sessions already open keep the client
    /// they started with. On error nothing changes but the account's `last_error` (an account
    /// the gateway does not have is not added).
    pub async fn connect_account(&self, account: AccountConfig) -> anyhow::Result<AccountStatus> {
        self.connect(account, None).await
    }

    /// [`Control::connect_account`] with new credentials that must not replace the old ones
    /// unless they work: signs in with the token file at `staged` (written beside the
    /// account's own `token_file`), and only once signed in moves it over that file. A failure
    /// removes `staged` and leaves the old file and the running account as they were (a
    /// running account stays healthy: the new credentials failed, not it).
    pub async fn connect_account_staged(
        &self,
        account: AccountConfig,
        staged: &Path,
    ) -> anyhow::Result<AccountStatus> {
        self.connect(account, Some(staged)).await
    }

    async fn connect(
        &self,
        account: AccountConfig,
        staged: Option<&Path>,
    ) -> anyhow::Result<AccountStatus> {
        let name = account.name.clone();
        // Signing in, installing the token file and putting the client in place are one step.
        let _one_at_a_time = self.connecting.lock().await;
        let signed_in = match staged {
            None => AccountMap::sign_in(&account, &self.started.server).await,
            Some(staged) => self.sign_in_staged(&account, staged).await,
        };
        match signed_in {
            Ok(connected) => {
                self.account_map().put_signed_in(account, connected);
                tracing::info!(account = %name, "Dropbox account connected; next logins use it");
                self.account_status(&name)
                    .context("the account vanished right after it was connected")
            }
            Err(e) => {
                tracing::warn!(
                    account = %name,
                    error = format!("{e:#}"),
                    "cannot connect the Dropbox account; nothing changed"
                );
                let running = self.account_status(&name).is_some_and(|s| s.connected);
                if staged.is_none() || !running {
                    self.account_map().record_failure(&name, Failure::now(&e));
                }
                Err(e)
            }
        }
    }

    /// Signs in with the token file at `staged`, then moves it over the account's own; removes
    /// it on failure.
    async fn sign_in_staged(
        &self,
        account: &AccountConfig,
        staged: &Path,
    ) -> anyhow::Result<super::accounts::Connected> {
        let target = account
            .token_file
            .clone()
            .context("the account has no token_file to install the new token in")?;
        let trial = AccountConfig {
            token_file: Some(staged.to_path_buf()),
            ..account.clone()
        };
        let signed_in = AccountMap::sign_in(&trial, &self.started.server)
            .await
            .and_then(|connected| {
                std::fs::rename(staged, &target).with_context(|| {
                    format!("cannot move the new token file to {}", target.display())
                })?;
                Ok(connected)
            });
        if signed_in.is_err() {
            let _ = std::fs::remove_file(staged);
        }
        signed_in
    }

    /// The users as logins see them now (after any reload), by name.
    pub fn users(&self) -> Vec<UserSummary> {
        let logins = self.context.users.current();
        let mut users: Vec<UserSummary> = logins.users.values().map(summary).collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// What SIGHUP does: reopens the audit log and reloads from the config file the gateway
    /// was started from (see [`super::reload`]). An error if it was started from none.
    pub async fn reload(&self) -> anyhow::Result<Reloaded> {
        let path = self.started.config_path.as_deref().context(
            "the gateway was not started from a config file, so there is none to reload",
        )?;
        self.reloader.reload_file(path).await
    }

    /// The bans and limits of the SSH listener: the same instance, so failed admin logins
    /// count towards the same bans ([`AddressGuard::record_failure`], [`AddressGuard::is_banned`]).
    pub fn guard(&self) -> Arc<AddressGuard> {
        self.guard.clone()
    }

    /// The gateway's audit log.
    pub fn audit(&self) -> AuditLog {
        self.context.audit.clone()
    }

    /// `[server]` as at start: the proxy and CAs new accounts sign in with.
    pub fn server_config(&self) -> ServerConfig {
        self.started.server.clone()
    }

    /// `[admin]` as at start.
    pub fn admin_config(&self) -> AdminConfig {
        self.started.admin.clone()
    }

    fn account_map(&self) -> &AccountMap {
        &self.context.filesystems.accounts
    }

    fn account_status(&self, name: &str) -> Option<AccountStatus> {
        let account = self.account_map().get(name)?;
        Some(status(&account, &self.context.users.current()))
    }
}

fn status(account: &RuntimeAccount, logins: &Logins) -> AccountStatus {
    let config = &account.config;
    let health = account
        .signed_in
        .as_ref()
        .map(|signed_in| signed_in.client.health())
        .unwrap_or_default();
    let request_error = health.last_error.zip(health.last_error_at);
    let sign_in_error = account
        .sign_in_failure
        .clone()
        .map(|failure| (failure.message, failure.at));
    let (last_error, last_error_at) = newest(request_error, sign_in_error).unzip();
    let confirmed_at = account.signed_in.as_ref().and_then(|s| s.confirmed_at);
    let facts = account
        .signed_in
        .as_ref()
        .map(|s| s.facts.clone())
        .unwrap_or_default();
    let mut users: Vec<String> = logins
        .users
        .values()
        .filter(|user| user.account == config.name)
        .map(|user| user.name.clone())
        .collect();
    users.sort();
    AccountStatus {
        name: config.name.clone(),
        connected: account.signed_in.is_some(),
        email: facts.email,
        account_id: facts.account_id,
        team: config.team_member_email.is_some(),
        team_member_email: config.team_member_email.clone(),
        team_member_id: facts.team_member_id,
        team_space: config.team_space,
        team_space_root: facts.team_space_root,
        token_file: config.token_file.clone(),
        granted_scopes: facts.granted_scopes,
        token_expires_at: health.token_expires_at,
        last_error,
        last_error_at,
        last_ok_at: health.last_ok_at.max(confirmed_at),
        users,
        credentials_in_config: config.refresh_token.is_some() || config.access_token.is_some(),
    }
}

/// The later of two timed errors.
fn newest(
    a: Option<(String, SystemTime)>,
    b: Option<(String, SystemTime)>,
) -> Option<(String, SystemTime)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1 > a.1 { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn summary(user: &User) -> UserSummary {
    UserSummary {
        name: user.name.clone(),
        account: user.account.clone(),
        dropbox_root: user.dropbox_root.clone(),
        permissions: user.permissions.to_string(),
        key_fingerprints: user
            .keys
            .iter()
            .map(|key| key.key.fingerprint(HashAlg::Sha256).to_string())
            .collect(),
        has_password: user.password_hash.is_some(),
        allowed_networks: user.allowed_networks.as_ref().map(ToString::to_string),
        mtime_change: user.mtime_change,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::account_map::Failure;
    use super::*;
    use crate::backend::dropbox::OpenUploads;
    use crate::users::networks::Networks;
    use crate::users::permissions::Permissions;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn user(name: &str, account: &str) -> User {
        User {
            name: name.into(),
            account: account.into(),
            dropbox_root: "/in".into(),
            keys: Vec::new(),
            permissions: Permissions::preset("upload-only").unwrap(),
            password_hash: None,
            allowed_networks: Some(Networks::parse(["192.0.2.0/24"]).unwrap()),
            mtime_change: Some(MtimeChange::Ignore),
        }
    }

    #[test]
    fn the_newer_of_two_errors_is_shown() {
        let old = Some(("old".to_string(), at(1)));
        let new = Some(("new".to_string(), at(2)));
        assert_eq!(newest(old.clone(), new.clone()), new);
        assert_eq!(newest(new.clone(), old.clone()), new);
        assert_eq!(newest(None, old.clone()), old);
        assert_eq!(newest(None, None), None);
    }

    #[test]
    fn an_account_not_connected_shows_its_failure_its_settings_and_its_users() {
        let mut config = AccountConfig::named("acme");
        config.token_file = Some(PathBuf::from("/var/lib/dropgate/acme.token"));
        config.team_member_email = Some("ops@acme.example".into());
        let account = RuntimeAccount {
            config,
            signed_in: None,
            open_uploads: OpenUploads::default(),
            sign_in_failure: Some(Failure {
                message: "no token file".into(),
                at: at(5),
            }),
        };
        let logins = Logins::new(
            vec![
                user("zed", "acme"),
                user("amy", "acme"),
                user("bo", "other"),
            ],
            Vec::new(),
        );
        let shown = status(&account, &logins);
        assert!(!shown.connected && shown.team && !shown.credentials_in_config);
        assert_eq!(shown.users, ["amy", "zed"]);
        assert_eq!(shown.last_error.as_deref(), Some("no token file"));
        assert_eq!((shown.last_error_at, shown.last_ok_at), (Some(at(5)), None));
        assert_eq!(shown.team_member_email.as_deref(), Some("ops@acme.example"));

        let listed = summary(&logins.users["amy"]);
        assert_eq!(listed.permissions, "upload-only");
        assert_eq!(listed.allowed_networks.as_deref(), Some("192.0.2.0/24"));
        assert_eq!(listed.mtime_change, Some(MtimeChange::Ignore));
        assert!(listed.key_fingerprints.is_empty() && !listed.has_password);
    }
}
