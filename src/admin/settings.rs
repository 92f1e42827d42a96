//! The `[admin]` table: where the admin web page listens, who may sign in, and where accounts
//! connected from it are kept.
//!
//! The page can connect Dropbox accounts and reload the config, so it is off unless `listen` is
//! set, and plain HTTP is refused anywhere but loopback unless the operator says so
//! (`allow_plain_http`, for a TLS proxy in front): a session cookie or a password sent in
//! clear over a network is the one mistake this table exists to prevent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

use crate::backend::dropbox::authorization::REDIRECT_SUFFIX;
use crate::users::password::StoredPasswordHash;

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the page listens; the page is off when unset.
    pub listen: Option<SocketAddr>,
    /// The URL browsers (and Dropbox's redirect) reach the page at, without the query; the
    /// OAuth redirect URI is this plus `/?command=register_dropbox_api`. Default: `listen`'s
    /// address over http or https.
    pub external_url: Option<String>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// PEM certificate chain and private key: the page speaks HTTPS (and its cookie is Secure).
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where accounts connected from the page are kept (one token file each, mode 0600), unless
    /// the config already names the account's `token_file`.
    #[serde(default = "default_accounts_dir")]
    pub accounts_dir: PathBuf,
    /// The Dropbox base URL for accounts first connected from the page (the emulator in the
    /// demo); Dropbox's own hosts when unset.
    pub api_url: Option<String>,
    /// How many recent audit events the activity page keeps.
    #[serde(default = "default_recent_events")]
    pub recent_events: usize,
    /// A signed-in admin idle this long is signed out.
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// Who may sign in (`[[admin.users]]`).
    #[serde(default)]
    pub users: Vec<AdminUserConfig>,
}

/// One `[[admin.users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUserConfig {
    pub name: String,
    /// An argon2id PHC string from `dropgate hash-password`.
    pub password_hash: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: None,
            external_url: None,
            allow_plain_http: false,
            tls_certificate: None,
            tls_key: None,
            accounts_dir: default_accounts_dir(),
            api_url: None,
            recent_events: default_recent_events(),
            session_idle_secs: default_session_idle_secs(),
            users: Vec::new(),
        }
    }
}

fn default_accounts_dir() -> PathBuf {
    PathBuf::from("accounts")
}

fn default_recent_events() -> usize {
    100
}

fn default_session_idle_secs() -> u64 {
    1800
}

impl AdminConfig {
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    pub fn tls(&self) -> bool {
        self.tls_certificate.is_some()
    }

    /// The page's own URL (no trailing slash).
    pub fn external_url(&self) -> Option<String> {
        let listen = self.listen?;
        Some(match &self.external_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.tls() { "https" } else { "http" };
                format!("{scheme}://{listen}")
            }
        })
    }

    /// Where Dropbox sends the browser back after the admin allowed access.
    pub fn redirect_uri(&self) -> Option<String> {
        Some(format!("{}/{REDIRECT_SUFFIX}", self.external_url()?))
    }

    /// The admin users' hashes, parsed.
    pub fn password_hashes(&self) -> anyhow::Result<Vec<(String, StoredPasswordHash)>> {
        self.users
            .iter()
            .map(|user| {
                let hash = StoredPasswordHash::parse(&user.password_hash)
                    .with_context(|| format!("admin.users.{}.password_hash", user.name))?;
                Ok((user.name.clone(), hash))
            })
            .collect()
    }

    /// What can be checked from the text: run with the rest of the config.
    pub fn validate(&self) -> anyhow::Result<()> {
        let Some(listen) = self.listen else {
            return Ok(());
        };
        if self.users.is_empty() {
            bail!(
                "admin.listen is set but no [[admin.users]] may sign in: add one with a \
                 password_hash from `dropgate hash-password`"
            );
        }
        let mut names = std::collections::HashSet::new();
        for user in &self.users {
            if user.name.is_empty() || !names.insert(user.name.as_str()) {
                bail!(
                    "admin.users: the name {:?} is empty or used twice",
                    user.name
                );
            }
        }
        self.password_hashes()?;
        match (&self.tls_certificate, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                bail!("admin: set both tls_certificate and tls_key, or neither")
            }
            (None, None) if !listen.ip().is_loopback() && !self.allow_plain_http => bail!(
                "admin.listen {listen} is not a loopback address: set tls_certificate and \
                 tls_key, or allow_plain_http = true when a TLS proxy is in front"
            ),
            _ => {}
        }
        if let Some(url) = &self.external_url {
            let parsed = Url::parse(url).with_context(|| format!("admin.external_url {url:?}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                bail!("admin.external_url {url:?} must be an http(s) URL without a query");
            }
        }
        if let Some(url) = &self.api_url {
            Url::parse(url).with_context(|| format!("admin.api_url {url:?}"))?;
        }
        if self.recent_events == 0 || self.session_idle_secs == 0 {
            bail!("admin.recent_events and admin.session_idle_secs must be above 0");
        }
        Ok(())
    }

    /// The token files of accounts connected from the page, by account name.
    pub fn connected_accounts(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        list_token_files(&self.accounts_dir)
    }
}

/// `NAME.token` files in `dir` (none when it does not exist yet).
fn list_token_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("admin.accounts_dir {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".token"));
        if let Some(name) = name.filter(|n| is_account_name(n)) {
            found.push((name.to_string(), path.clone()));
        }
    }
    found.sort();
    Ok(found)
}

/// Letters, digits, '.', '_' and '-', not starting with '.': safe as a file name.
pub fn is_account_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_listen(listen: &str) -> AdminConfig {
        AdminConfig {
            listen: Some(listen.parse().unwrap()),
            users: vec![AdminUserConfig {
                name: "admin".into(),
                password_hash: crate::users::password::hash_password("pw").unwrap(),
            }],
            ..AdminConfig::default()
        }
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        assert!(with_listen("127.0.0.1:8080").validate().is_ok());
        let err = with_listen("0.0.0.0:8080").validate().unwrap_err();
        assert!(err.to_string().contains("tls_certificate"), "{err}");
        let allowed = AdminConfig {
            allow_plain_http: true,
            ..with_listen("0.0.0.0:8080")
        };
        assert!(allowed.validate().is_ok());
    }

    #[test]
    fn needs_a_user_with_a_real_hash() {
        let none = AdminConfig {
            users: vec![],
            ..with_listen("127.0.0.1:1")
        };
        assert!(none.validate().is_err());
        let bad = AdminConfig {
            users: vec![AdminUserConfig {
                name: "a".into(),
                password_hash: "plain".into(),
            }],
            ..with_listen("127.0.0.1:1")
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_redirect_uri_follows_the_external_url() {
        let config = AdminConfig {
            external_url: Some("https://gw.example.com/admin/".into()),
            ..with_listen("127.0.0.1:8080")
        };
        assert_eq!(
            config.redirect_uri().unwrap(),
            "https://gw.example.com/admin/?command=register_dropbox_api"
        );
        assert_eq!(
            with_listen("127.0.0.1:8080").redirect_uri().unwrap(),
            "http://127.0.0.1:8080/?command=register_dropbox_api"
        );
    }

    #[test]
    fn account_names_are_safe_file_names() {
        assert!(is_account_name("acme-2.files_x"));
        for bad in ["", ".hidden", "a/b", "a b", "..", "é"] {
            assert!(!is_account_name(bad), "{bad:?}");
        }
    }
}
