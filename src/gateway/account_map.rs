//! The accounts at run time: each one's settings, its signed-in client (or why it has none), and
//! its open uploads, replaceable while the gateway runs.
//!
//! The admin page can connect an account, or connect one again after its token was revoked,
//! while users are logged in. A login takes the account's client of that moment and its session
//! keeps that client until it ends, so replacing a client never disturbs a transfer under way.
//! The map is behind a lock held only to look up or swap an entry, never across a request to
//! Dropbox: signing in happens first, and only its result is put in place.
//!
//! An account keeps its [`OpenUploads`] when its client is replaced: sessions on the old client
//! still register their uploads there, so graceful shutdown waits for them too.
//!
//! Without the admin page an account that cannot sign in at start stops the gateway (there would
//! be no way to fix it but a restart); with it, the account is kept as not connected, with its
//! error, and its users are refused with a message naming it until it is connected.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use anyhow::anyhow;

use super::accounts::{self, AccountFacts, Connected, Unreachable};
use crate::backend::dropbox::api::DropboxClient;
use crate::backend::dropbox::OpenUploads;
use crate::config::{AccountConfig, Config, ServerConfig};

/// Every account of the running gateway, in config order, then in the order added since.
#[derive(Default)]
pub(super) struct AccountMap {
    entries: RwLock<Vec<RuntimeAccount>>,
}

/// One account at run time.
#[derive(Clone)]
pub(super) struct RuntimeAccount {
    /// Its settings: from the config at start or at the last reload, or as connected since.
    pub config: AccountConfig,
    /// None while it is not connected (its sign-in failed).
    pub signed_in: Option<SignedIn>,
    /// Shared by every user of the account, and kept when the client is replaced.
    pub open_uploads: OpenUploads,
    /// The last failure to sign it in (at start, at a reload or when connected from the page);
    /// kept after a later success, whose time `SignedIn::at` tells.
    pub sign_in_failure: Option<Failure>,
}

/// A client in place for new logins, and what the sign-in learnt.
#[derive(Clone)]
pub(super) struct SignedIn {
    pub client: DropboxClient,
    pub facts: AccountFacts,
    /// When Dropbox confirmed the credentials; None if it could not be reached at start.
    pub confirmed_at: Option<SystemTime>,
}

/// Why an account could not be signed in, and when.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub message: String,
    pub at: SystemTime,
}

impl Failure {
    pub fn now(error: &anyhow::Error) -> Failure {
        Failure {
            message: format!("{error:#}"),
            at: SystemTime::now(),
        }
    }
}

impl SignedIn {
    fn from(connected: Connected) -> SignedIn {
        // The email is known only when Dropbox answered users/get_current_account.
        let confirmed_at = connected.facts.email.is_some().then(SystemTime::now);
        SignedIn {
            client: connected.client,
            facts: connected.facts,
            confirmed_at,
        }
    }
}

impl AccountMap {
    /// Signs in every configured account (see the module doc for what a failure does).
    pub async fn sign_in_all(config: &Config) -> anyhow::Result<AccountMap> {
        let map = AccountMap::default();
        for account in &config.accounts {
            match accounts::connect(account, &config.server, Unreachable::Tolerate).await {
                Ok(connected) => {
                    log_ready(account, &connected.facts);
                    map.put_signed_in(account.clone(), connected);
                }
                Err(e) if config.admin.enabled() => {
                    tracing::error!(
                        account = %account.name,
                        error = format!("{e:#}"),
                        "cannot sign in to the Dropbox account; its users are refused until it \
                         is connected from the admin page"
                    );
                    map.put_not_connected(account.clone(), Failure::now(&e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(map)
    }

    /// Signs `account` in as at start, but with Dropbox unreachable an error too; changes
    /// nothing in the map.
    pub async fn sign_in(
        account: &AccountConfig,
        server: &ServerConfig,
    ) -> anyhow::Result<Connected> {
        let connected = accounts::connect(account, server, Unreachable::Fail).await?;
        log_ready(account, &connected.facts);
        Ok(connected)
    }

    /// Puts a signed-in account in place for the next logins: a new one at the end, a known one
    /// where it was, keeping its open uploads and its last sign-in failure.
    pub fn put_signed_in(&self, config: AccountConfig, connected: Connected) {
        let signed_in = Some(SignedIn::from(connected));
        let mut entries = self.write();
        match entries.iter_mut().find(|e| e.config.name == config.name) {
            Some(entry) => {
                entry.config = config;
                entry.signed_in = signed_in;
            }
            None => entries.push(RuntimeAccount {
                config,
                signed_in,
                open_uploads: OpenUploads::default(),
                sign_in_failure: None,
            }),
        }
    }

    /// Adds an account that could not be signed in (at start).
    fn put_not_connected(&self, config: AccountConfig, failure: Failure) {
        self.write().push(RuntimeAccount {
            config,
            signed_in: None,
            open_uploads: OpenUploads::default(),
            sign_in_failure: Some(failure),
        });
    }

    /// Records a failed sign-in of a known account; nothing else about it changes. False if
    /// there is no account of that name (then nothing is recorded).
    pub fn record_failure(&self, name: &str, failure: Failure) -> bool {
        let mut entries = self.write();
        match entries.iter_mut().find(|e| e.config.name == name) {
            Some(entry) => {
                entry.sign_in_failure = Some(failure);
                true
            }
            None => false,
        }
    }

    /// Replaces the settings known for a known account (a reload), leaving its client alone.
    pub fn set_config(&self, config: AccountConfig) {
        if let Some(entry) = self
            .write()
            .iter_mut()
            .find(|e| e.config.name == config.name)
        {
            entry.config = config;
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().iter().any(|e| e.config.name == name)
    }

    pub fn get(&self, name: &str) -> Option<RuntimeAccount> {
        self.read().iter().find(|e| e.config.name == name).cloned()
    }

    /// Every account as it is now.
    pub fn snapshot(&self) -> Vec<RuntimeAccount> {
        self.read().clone()
    }

    /// The client and open uploads a login of a user of `name` gets. The error's outermost
    /// message is for the SFTP client (it names the account and nothing else); the whole
    /// chain says why, for the logs.
    pub fn home(&self, name: &str) -> anyhow::Result<(DropboxClient, OpenUploads)> {
        let entries = self.read();
        let entry = entries
            .iter()
            .find(|e| e.config.name == name)
            .ok_or_else(|| anyhow!("no account named {name:?}"))?;
        match &entry.signed_in {
            Some(signed_in) => Ok((signed_in.client.clone(), entry.open_uploads.clone())),
            None => {
                let why = entry
                    .sign_in_failure
                    .as_ref()
                    .map_or("it was never signed in", |f| f.message.as_str());
                Err(anyhow!("{why}").context(format!(
                    "the Dropbox account {name:?} is not connected; the gateway's administrator \
                     must connect it"
                )))
            }
        }
    }

    /// Uploads open on every account (being received or committed).
    pub fn open_uploads(&self) -> usize {
        self.read().iter().map(|e| e.open_uploads.count()).sum()
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<RuntimeAccount>> {
        // Every change is one assignment or push: a panicking holder leaves nothing half done.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<RuntimeAccount>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn log_ready(account: &AccountConfig, facts: &AccountFacts) {
    tracing::info!(
        account = %account.name,
        email = facts.email.as_deref().unwrap_or("?"),
        team_member_id = facts.team_member_id.as_deref().unwrap_or("-"),
        team_space_root = facts.team_space_root.as_deref().unwrap_or("-"),
        "Dropbox account ready"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::dropbox::api::{ClientOptions, Credentials, Endpoints};

    /// A client that is never used to send anything.
    fn connected(email: Option<&str>) -> Connected {
        let options = ClientOptions::new(
            Endpoints::all("http://127.0.0.1:9").unwrap(),
            Credentials::AccessToken("unused".into()),
        );
        Connected {
            client: DropboxClient::new(options).unwrap(),
            facts: AccountFacts {
                email: email.map(str::to_string),
                ..AccountFacts::default()
            },
        }
    }

    fn failure(message: &str) -> Failure {
        Failure::now(&anyhow!("{message}"))
    }

    fn names(map: &AccountMap) -> Vec<String> {
        map.snapshot().into_iter().map(|e| e.config.name).collect()
    }

    #[test]
    fn a_replaced_account_keeps_its_place_and_a_new_one_goes_last() {
        let map = AccountMap::default();
        map.put_signed_in(
            AccountConfig::named("a"),
            connected(Some("old@example.com")),
        );
        map.put_not_connected(AccountConfig::named("b"), failure("no token file"));

        map.put_signed_in(
            AccountConfig::named("a"),
            connected(Some("new@example.com")),
        );
        map.put_signed_in(AccountConfig::named("c"), connected(None));
        assert_eq!(names(&map), ["a", "b", "c"]);
        let a = map.get("a").unwrap();
        assert_eq!(
            a.signed_in.unwrap().facts.email.as_deref(),
            Some("new@example.com")
        );
        assert!(map
            .get("c")
            .unwrap()
            .signed_in
            .unwrap()
            .confirmed_at
            .is_none());
        // That the open uploads stay shared across the swap is shown end to end
        // (tests/e2e/gateway_control.rs): registering one needs a real upload.
    }

    #[test]
    fn a_login_of_a_user_of_an_account_not_connected_names_it_and_says_why() {
        let map = AccountMap::default();
        map.put_not_connected(AccountConfig::named("main"), failure("no token file at /t"));
        let error = map.home("main").err().expect("refused");
        assert_eq!(
            error.to_string(),
            "the Dropbox account \"main\" is not connected; the gateway's administrator must \
             connect it"
        );
        assert!(
            format!("{error:#}").ends_with(": no token file at /t"),
            "{error:#}"
        );
        assert_eq!(
            map.home("other").err().expect("refused").to_string(),
            "no account named \"other\""
        );

        map.put_signed_in(
            AccountConfig::named("main"),
            connected(Some("m@example.com")),
        );
        assert!(map.home("main").is_ok());
        let entry = map.get("main").unwrap();
        assert!(
            entry.sign_in_failure.is_some(),
            "the failure stays; the sign-in's time says it is older"
        );
        assert!(
            entry.signed_in.unwrap().confirmed_at.unwrap() >= entry.sign_in_failure.unwrap().at
        );
    }

    #[test]
    fn a_failure_is_recorded_only_for_a_known_account_and_changes_nothing_else() {
        let map = AccountMap::default();
        map.put_signed_in(AccountConfig::named("a"), connected(Some("a@example.com")));
        assert!(map.record_failure("a", failure("refused")));
        assert!(!map.record_failure("typo", failure("refused")));
        assert_eq!(names(&map), ["a"]);
        let a = map.get("a").unwrap();
        assert!(a.signed_in.is_some(), "still connected with its client");
        assert_eq!(a.sign_in_failure.unwrap().message, "refused");

        let mut changed = AccountConfig::named("a");
        changed.team_space = true;
        map.set_config(changed);
        map.set_config(AccountConfig::named("unknown"));
        assert!(map.get("a").unwrap().config.team_space);
        assert!(map.get("a").unwrap().signed_in.is_some());
        assert!(!map.contains("unknown"));
    }
}
