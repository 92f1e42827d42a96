//! The gateway's config file, typed: a test-side mirror of the TOML format that tests change
//! field by field and write out with the `toml` crate, instead of splicing TOML text.
//!
//! It mirrors only the fields the tests set. An unset `Option` (or an empty list) is left out
//! of the file, so the gateway's own default applies, exactly as if an admin had not written
//! the line. [`GatewayConfig::bench`] is the config every bench starts from.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dropgate::ssh::host_key::{self, KeyKind};
use russh::keys::PrivateKey;

use dropbox_emulator::demo_credentials as demo;
use serde::Serialize;

use super::{Permission, USERS};

/// The whole file: `[server]`, `[upload]`, `[download]`, `[limits]`, `[audit]`, `[metrics]`,
/// `[[accounts]]`, `[[users]]`, `[hook_queue]`, `[[hooks]]` and `[admin]`.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayConfig {
    pub server: Server,
    pub upload: Upload,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
    #[serde(skip_serializing_if = "Limits::is_unset")]
    pub limits: Limits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_queue: Option<HookQueue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
}

/// `[admin]` and its `[[admin.users]]`.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub listen: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    pub users: Vec<AdminUser>,
}

/// One `[[admin.users]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct AdminUser {
    pub name: String,
    pub password_hash: String,
}

impl Admin {
    /// The page on a free loopback port, for one admin with `password`; accounts connected
    /// from it use the emulator at `api_url` and are kept in `dir/accounts`.
    pub fn on_loopback(dir: &Path, api_url: &str, name: &str, password: &str) -> Admin {
        Admin {
            listen: "127.0.0.1:0".into(),
            external_url: None,
            api_url: Some(api_url.into()),
            accounts_dir: Some(dir.join("accounts")),
            tls_certificate: None,
            tls_key: None,
            users: vec![AdminUser {
                name: name.into(),
                password_hash: dropgate::users::password::hash_password(password).unwrap(),
            }],
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub listen: String,
    pub host_key: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_create: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_rsa: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_ecdsa: Option<PathBuf>,
    /// A policy name, or a table of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// `"reject"` or `"ignore"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime_change: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_wait_secs: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_user_ca_keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// The default for users without `allowed_networks` of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Vec<String>>,
    /// `text` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

/// `[upload]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Upload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_upload_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free_space: Option<u64>,
}

impl Upload {
    /// Files above `single_upload_limit` bytes go up as an upload session of `chunk_size`
    /// chunks.
    pub fn sessions_above(&mut self, single_upload_limit: u64, chunk_size: u64) {
        self.single_upload_limit = Some(single_upload_limit);
        self.chunk_size = Some(chunk_size);
    }
}

/// `[download]`.
#[derive(Debug, Clone, Serialize)]
pub struct Download {
    pub connections: u64,
    pub read_ahead: u64,
}

/// `[limits]`: only what some test sets; the rest keeps the gateway's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_login_failures: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_failure_window_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sftp_sessions_per_user: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_handles_per_user: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unauthenticated_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unauthenticated_per_address: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_password_checks: Option<u64>,
}

impl Limits {
    fn is_unset(&self) -> bool {
        *self == Limits::default()
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// `"stderr"` or a file.
    pub output: String,
}

/// `[metrics]`.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub listen: String,
}

/// One `[[accounts]]` table.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub name: String,
    pub api_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_member_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_space: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Account {
    /// An account signed in with the emulator's personal refresh token.
    pub fn personal(name: &str, api_url: &str) -> Account {
        Account {
            app_key: Some(demo::APP_KEY.into()),
            app_secret: Some(demo::APP_SECRET.into()),
            refresh_token: Some(demo::REFRESH_TOKEN.into()),
            ..Account::bare(name, api_url)
        }
    }

    /// An account on the emulator's Business team token, acting as the member with `email`,
    /// in the team space or in the member's home.
    pub fn team(name: &str, api_url: &str, email: &str, team_space: bool) -> Account {
        Account {
            app_key: Some(demo::APP_KEY.into()),
            app_secret: Some(demo::APP_SECRET.into()),
            refresh_token: Some(demo::TEAM_REFRESH_TOKEN.into()),
            team_member_email: Some(email.into()),
            team_space: Some(team_space),
            ..Account::bare(name, api_url)
        }
    }

    /// An account whose credentials are in the token file `dropgate auth` wrote.
    pub fn from_token_file(name: &str, api_url: &str, token_file: &Path) -> Account {
        Account {
            token_file: Some(token_file.to_path_buf()),
            ..Account::bare(name, api_url)
        }
    }

    /// Only a name and the API URL: the credentials are for the caller to set.
    pub fn bare(name: &str, api_url: &str) -> Account {
        Account {
            name: name.into(),
            api_url: api_url.into(),
            token_file: None,
            app_key: None,
            app_secret: None,
            refresh_token: None,
            team_member_email: None,
            team_space: None,
            proxy: None,
            ca_file: None,
        }
    }
}

/// One `[[users]]` table.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub account: String,
    pub root: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_keys_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorized_keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Vec<String>>,
    /// `"reject"` or `"ignore"`: the user's own `[server] mtime_change`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime_change: Option<String>,
}

impl User {
    /// One of the bench's key-pair users ([`USERS`]): `dir/{name}.pub` is their authorized
    /// keys file.
    pub fn with_bench_key(dir: &Path, name: &str, account: &str, root: &str) -> User {
        User {
            name: name.into(),
            account: account.into(),
            root: root.into(),
            authorized_keys_file: Some(dir.join(format!("{name}.pub"))),
            authorized_keys: Vec::new(),
            password_hash: None,
            permissions: None,
            allowed_networks: None,
            mtime_change: None,
        }
    }
}

/// `permissions = "upload-only"` or `permissions = ["upload", "mkdir"]`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Permissions {
    Preset(String),
    List(Vec<String>),
}

impl Permissions {
    /// A preset by name: `"all"`, `"read-only"`, `"upload-only"`.
    pub fn preset(name: &str) -> Permissions {
        Permissions::Preset(name.into())
    }

    /// Every permission but `missing`, as a list.
    pub fn all_but(missing: Permission) -> Permissions {
        Permissions::List(
            Permission::ALL
                .into_iter()
                .filter(|p| *p != missing)
                .map(|p| p.name().to_string())
                .collect(),
        )
    }
}

impl GatewayConfig {
    /// The bench's base config: SSH on a free loopback port, host key and spool in `dir`, one
    /// account `main` on the emulator at `api_url`, and the users alice and bob (their keys in
    /// `dir`, roots `/alice` and `/bob`).
    pub fn bench(dir: &Path, api_url: &str) -> GatewayConfig {
        let mut config = GatewayConfig::without_accounts(dir);
        config.accounts.push(Account::personal("main", api_url));
        for (name, root) in USERS {
            config
                .users
                .push(User::with_bench_key(dir, name, "main", root));
        }
        config
    }

    /// Only `[server]` and `[upload]` (host keys and spool in `dir`): no account, no user.
    /// The RSA and ECDSA host keys are written into `dir` already ([`provide_host_keys`]);
    /// the ed25519 one is left for the gateway to create.
    pub fn without_accounts(dir: &Path) -> GatewayConfig {
        provide_host_keys(dir);
        GatewayConfig {
            server: Server {
                listen: "127.0.0.1:0".into(),
                host_key: dir.join("host_key"),
                host_key_create: None,
                host_key_rsa: None,
                host_key_ecdsa: None,
                algorithms: None,
                proxy: None,
                mtime_change: None,
                shutdown_timeout_secs: None,
                rate_limit_wait_secs: None,
                trusted_user_ca_keys: Vec::new(),
                proxy_protocol: None,
                trusted_proxies: Vec::new(),
                allowed_networks: None,
                log_format: None,
            },
            upload: Upload {
                spool_dir: Some(dir.join("spool")),
                ..Upload::default()
            },
            download: None,
            limits: Limits::default(),
            audit: None,
            metrics: None,
            accounts: Vec::new(),
            users: Vec::new(),
            hook_queue: None,
            hooks: Vec::new(),
            admin: None,
        }
    }

    /// The user called `name`.
    pub fn user(&mut self, name: &str) -> &mut User {
        self.users
            .iter_mut()
            .find(|user| user.name == name)
            .unwrap_or_else(|| panic!("no user {name} in the config"))
    }

    /// The account called `name`.
    pub fn account(&mut self, name: &str) -> &mut Account {
        self.accounts
            .iter_mut()
            .find(|account| account.name == name)
            .unwrap_or_else(|| panic!("no account {name} in the config"))
    }

    /// SSH on this loopback port instead of a free one the gateway picks (for a `dropgate
    /// serve` process, whose port the test must know in advance).
    pub fn listen_on(&mut self, port: u16) {
        self.server.listen = format!("127.0.0.1:{port}");
    }

    /// The audit log written to `path`.
    pub fn audit_to(&mut self, path: &Path) {
        self.audit = Some(Audit {
            output: path.display().to_string(),
        });
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serialises")
    }

    /// Writes the TOML text to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).unwrap();
    }
}

/// `[hook_queue]`.
#[derive(Debug, Clone, Serialize)]
pub struct HookQueue {
    pub dir: PathBuf,
}

/// One `[[hooks]]` table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hook {
    pub name: String,
    pub on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
}

impl Hook {
    /// A webhook to `url` signed with `secret`, on the events `on`.
    pub fn webhook(name: &str, on: &[&str], url: &str, secret: &str) -> Hook {
        Hook {
            name: name.into(),
            on: on.iter().map(|e| e.to_string()).collect(),
            webhook: Some(url.into()),
            secret: Some(secret.into()),
            ..Hook::default()
        }
    }

    /// A command hook running `command` (program and arguments), on the events `on`.
    pub fn command(name: &str, on: &[&str], command: &[&str]) -> Hook {
        Hook {
            name: name.into(),
            on: on.iter().map(|e| e.to_string()).collect(),
            command: Some(command.iter().map(|a| a.to_string()).collect()),
            ..Hook::default()
        }
    }
}

/// Writes `options` (authorized_keys options such as `from="10.0.0.1"`) before the key of the
/// bench user `user` in their authorized_keys file in `dir`.
pub fn write_key_options(dir: &Path, user: &str, options: &str) {
    let path = dir.join(format!("{user}.pub"));
    let key = std::fs::read_to_string(&path).unwrap();
    // With a comment, as ssh-keygen writes keys.
    let line = format!("{options} {} {user}@test\n", key.trim());
    std::fs::write(&path, line).unwrap();
}

/// Where the gateway looks for its RSA and ECDSA host keys when the config names none: beside
/// `host_key`.
pub const DEFAULT_HOST_KEY_FILES: [(KeyKind, &str); 2] = [
    (KeyKind::Rsa, "ssh_host_rsa_key"),
    (KeyKind::Ecdsa, "ssh_host_ecdsa_key"),
];

/// Writes the RSA and ECDSA host keys into `dir` where the gateway looks for them, unless
/// there already. They are generated once per test process: an RSA-3072 key takes a moment in
/// a debug build, and hundreds of benches start a gateway.
pub fn provide_host_keys(dir: &Path) {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        DEFAULT_HOST_KEY_FILES
            .iter()
            .map(|(kind, _)| kind.generate().unwrap())
            .collect()
    });
    for (key, (_, name)) in keys.iter().zip(DEFAULT_HOST_KEY_FILES) {
        let path = dir.join(name);
        if !path.exists() {
            host_key::write_key_pair(key, &path).unwrap();
        }
    }
}
