//! The gateway's configuration: a TOML file turned into typed, validated settings.
//!
//! Parsing is serde's; validation that serde cannot express (a user naming an account that does
//! not exist, a key that does not parse) happens in [`Config::load`], and every error names the
//! file and the key it is about, so an operator can fix it without reading code. Relative paths
//! in it are made absolute from the config file's folder as it is loaded (`paths`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use russh::keys::PublicKey;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::admin::settings::AdminConfig;
use crate::backend::dropbox::api::DEFAULT_RATE_LIMIT_WAIT;
use crate::backend::dropbox::DownloadSettings;
use crate::hooks::settings::{HookConfig, HookQueueConfig};
use crate::tls_trust::Trust;
use crate::users::authorized_keys::AuthorizedKey;
use crate::users::networks::Networks;
use crate::users::password::StoredPasswordHash;
use crate::users::permissions::{Permission, Permissions, PRESETS};
use crate::users::{MtimeChange, User};

mod overrides;
mod paths;
pub use overrides::Overrides;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub upload: UploadConfig,
    #[serde(default)]
    pub download: DownloadConfig,
    #[serde(default, rename = "accounts")]
    pub accounts: Vec<AccountConfig>,
    #[serde(default, rename = "users")]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Event hooks (`[[hooks]]`) and where their queues live (`[hook_queue]`).
    #[serde(default, rename = "hooks")]
    pub hooks: Vec<HookConfig>,
    #[serde(default)]
    pub hook_queue: HookQueueConfig,
    /// The admin web page (`[admin]`); off unless its `listen` is set.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The file it was loaded from (absolute), which a reload reads again.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the SSH server listens.
    pub listen: SocketAddr,
    /// The ed25519 host key; created (mode 0600) on first start if missing.
    #[serde(default = "default_host_key", alias = "host_key_ed25519")]
    pub host_key: PathBuf,
    /// Create missing host keys at start; false refuses to start without them (a package's
    /// config: a key that vanished must not be silently replaced by a new one).
    #[serde(default = "default_true")]
    pub host_key_create: bool,
    /// The RSA host key (3072 bits when created); unset: `ssh_host_rsa_key` beside `host_key`.
    pub host_key_rsa: Option<PathBuf>,
    /// The ECDSA P-256 host key; unset: `ssh_host_ecdsa_key` beside `host_key`.
    pub host_key_ecdsa: Option<PathBuf>,
    /// Which key exchanges, ciphers, MACs and host key signatures are offered: a policy name
    /// or explicit lists (`crate::ssh::algorithms`).
    #[serde(default)]
    pub algorithms: AlgorithmsConfig,
    /// What SETSTAT does when asked to change the mtime of a file already in Dropbox; a user's
    /// own `mtime_change` overrides it.
    #[serde(default)]
    pub mtime_change: MtimeChange,
    /// Where users may log in from, for every user without `allowed_networks` of their own;
    /// unset = from anywhere.
    pub allowed_networks: Option<Vec<String>>,
    /// Outbound proxy for every account that sets none of its own (`http://host:port`, or
    /// `"none"` to ignore HTTPS_PROXY); unset = HTTPS_PROXY from the environment.
    pub proxy: Option<String>,
    /// A PEM file of CAs trusted for HTTPS besides the system's trust store (a proxy that
    /// inspects TLS): for every account that names none of its own, and for webhooks.
    pub ca_file: Option<PathBuf>,
    /// On SIGTERM or SIGINT, how long open uploads get to finish and commit before exit.
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
    /// How long one Dropbox request may wait out Dropbox's rate limit (429 with Retry-After),
    /// its waits together, before the operation fails.
    #[serde(default = "default_rate_limit_wait_secs")]
    pub rate_limit_wait_secs: u64,
    /// CA public keys (OpenSSH lines); user certificates they signed are accepted for the
    /// users their principals name.
    #[serde(default)]
    pub trusted_user_ca_keys: Vec<String>,
    /// A file of CA public keys, one per line, added to `trusted_user_ca_keys`.
    pub trusted_user_ca_keys_file: Option<PathBuf>,
    /// Every connection starts with a PROXY protocol (v1 or v2) header from a load balancer
    /// in `trusted_proxies`; the client address it carries is the one bans and logs use.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Addresses or ranges (`10.0.0.0/8`) allowed to send PROXY headers; connections from
    /// anywhere else are refused while `proxy_protocol` is on.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The operational log's format on stderr: `text` or `json` (`serve --log-format` wins).
    #[serde(default)]
    pub log_format: crate::logging::LogFormat,
}

impl ServerConfig {
    pub fn rate_limit_wait(&self) -> Duration {
        Duration::from_secs(self.rate_limit_wait_secs)
    }

    /// `trusted_proxies` parsed.
    pub fn trusted_proxies(&self) -> anyhow::Result<Networks> {
        Networks::parse(self.trusted_proxies.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("server.trusted_proxies: {e}"))
    }
}

fn default_true() -> bool {
    true
}

fn default_shutdown_timeout_secs() -> u64 {
    120
}

fn default_rate_limit_wait_secs() -> u64 {
    DEFAULT_RATE_LIMIT_WAIT.as_secs()
}

fn default_host_key() -> PathBuf {
    PathBuf::from("keys/ssh_host_ed25519_key")
}

/// `[server] algorithms`: `"modern"`, `"compatible"`, `"fips-like"`, or a table of lists.
/// (The names are checked by `crate::ssh::algorithms`.)
#[derive(Debug, Clone, PartialEq)]
pub enum AlgorithmsConfig {
    Named(String),
    Lists(AlgorithmLists),
}

/// A string or a table; written out rather than `untagged` so that a misspelt list name is
/// reported as such instead of as "did not match any variant".
impl<'de> Deserialize<'de> for AlgorithmsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrLists;
        impl<'de> serde::de::Visitor<'de> for NameOrLists {
            type Value = AlgorithmsConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a policy name or a table of kex, ciphers, macs and host_keys lists")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(AlgorithmsConfig::Named(name.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let deserializer = serde::de::value::MapAccessDeserializer::new(map);
                AlgorithmLists::deserialize(deserializer).map(AlgorithmsConfig::Lists)
            }
        }
        deserializer.deserialize_any(NameOrLists)
    }
}

impl Default for AlgorithmsConfig {
    fn default() -> Self {
        AlgorithmsConfig::Named("modern".into())
    }
}

/// Explicit algorithm lists, most preferred first; a list left out is the `modern` one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmLists {
    pub kex: Option<Vec<String>>,
    pub ciphers: Option<Vec<String>>,
    pub macs: Option<Vec<String>>,
    pub host_keys: Option<Vec<String>>,
}

/// Spooling and commit settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Where uploads are spooled before they go to Dropbox; the system temp dir by default.
    pub spool_dir: Option<PathBuf>,
    /// Files up to this size go as one files/upload; larger ones as an upload session.
    #[serde(default = "default_single_upload_limit")]
    pub single_upload_limit: u64,
    /// Upload session chunk size; a multiple of 4 MiB.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u64,
    /// The largest file a client may upload (bytes).
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// Free space (bytes) the spool folder's file system must keep: a write that would go
    /// below it is refused at once, instead of the upload failing at the end.
    #[serde(default = "default_min_free_space")]
    pub min_free_space: u64,
    /// Chunk appends of one upload session in flight at once, each over a connection of its
    /// own (a concurrent session); 1 appends one chunk after another (a sequential session).
    #[serde(default = "default_connections")]
    pub connections: usize,
}

/// Dropbox's limit for one files/upload request.
pub const MAX_SINGLE_UPLOAD: u64 = 150 * 1024 * 1024;
const FOUR_MIB: u64 = 4 * 1024 * 1024;

fn default_single_upload_limit() -> u64 {
    MAX_SINGLE_UPLOAD
}

fn default_chunk_size() -> u64 {
    8 * FOUR_MIB
}

/// Dropbox's own limit for one file: an upload session takes at most 2^41 - 2^22 bytes
/// (4 MiB short of 2 TiB).
fn default_max_file_size() -> u64 {
    (1 << 41) - (1 << 22)
}

fn default_min_free_space() -> u64 {
    1024 * 1024 * 1024
}

/// Across a long distance one connection carries ~25 MB/s; four fill a typical uplink.
fn default_connections() -> usize {
    4
}

impl UploadConfig {
    /// The spool folder: `spool_dir`, else `dropgate-spool` in the system temp folder.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("dropgate-spool"))
    }
}

/// More connections per upload only crowd the gateway's own link and Dropbox's rate limits.
pub const MAX_UPLOAD_CONNECTIONS: usize = 16;

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            spool_dir: None,
            single_upload_limit: default_single_upload_limit(),
            chunk_size: default_chunk_size(),
            max_file_size: default_max_file_size(),
            min_free_space: default_min_free_space(),
            connections: default_connections(),
        }
    }
}

/// How files are downloaded: over how many connections at once, and how far ahead of the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// Ranged downloads in flight at once for one file being read sequentially; 1 = one
    /// streaming download, as a plain HTTP client would.
    pub connections: usize,
    /// Bytes fetched ahead of the client per open download, shared out as `connections` ranges
    /// of a whole number of MiB: the most one open download holds in memory.
    pub read_ahead: u64,
}

/// More connections than this per file gain nothing and look like abuse to Dropbox.
const MAX_DOWNLOAD_CONNECTIONS: usize = 16;
const MIB: u64 = 1024 * 1024;
const MAX_READ_AHEAD: u64 = 1024 * MIB;

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            connections: DownloadSettings::DEFAULT_CONNECTIONS,
            read_ahead: DownloadSettings::DEFAULT_READ_AHEAD,
        }
    }
}

impl DownloadConfig {
    pub fn settings(&self) -> DownloadSettings {
        DownloadSettings::new(self.connections, self.read_ahead)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_DOWNLOAD_CONNECTIONS).contains(&self.connections) {
            bail!("download.connections must be from 1 to {MAX_DOWNLOAD_CONNECTIONS}");
        }
        let least = self.connections as u64 * MIB;
        if !(least..=MAX_READ_AHEAD).contains(&self.read_ahead) {
            bail!(
                "download.read_ahead must be from 1 MiB per connection ({least} with {} \
                 connections) up to 1 GiB ({MAX_READ_AHEAD})",
                self.connections
            );
        }
        Ok(())
    }
}

/// One Dropbox account: a token file written by `dropgate auth`, or inline credentials (an
/// app's refresh token, or a fixed access token); for a Business team token, the member whose
/// Dropbox the users see.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    /// One base URL for the api, content and oauth hosts (the emulator); the real Dropbox hosts
    /// when absent.
    pub api_url: Option<String>,
    /// The token file `dropgate auth` wrote (app key, secret, refresh token; mode 0600).
    pub token_file: Option<PathBuf>,
    /// Overrides the token file's app key (or goes with `refresh_token`).
    pub app_key: Option<String>,
    /// Overrides the token file's app secret (or goes with `refresh_token`).
    pub app_secret: Option<String>,
    /// A file holding `app_secret` (mode 0600), instead of it.
    pub app_secret_file: Option<PathBuf>,
    pub refresh_token: Option<String>,
    /// A file holding `refresh_token` (mode 0600), instead of it.
    pub refresh_token_file: Option<PathBuf>,
    /// A fixed access token instead of app key + secret + refresh token.
    pub access_token: Option<String>,
    /// A file holding `access_token` (mode 0600), instead of it.
    pub access_token_file: Option<PathBuf>,
    /// Business: the team member (by email) whose Dropbox a team token acts on; resolved to a
    /// team_member_id at start and sent as `Dropbox-API-Select-User`.
    pub team_member_email: Option<String>,
    /// Business: paths start at the team space (team folders visible) instead of the member's
    /// home (`Dropbox-API-Path-Root` with the root namespace id).
    #[serde(default)]
    pub team_space: bool,
    /// Outbound proxy for this account; `[server] proxy` when unset.
    pub proxy: Option<String>,
    /// A PEM file of CAs trusted besides the system's for this account; `[server] ca_file`
    /// when unset.
    pub ca_file: Option<PathBuf>,
}

impl AccountConfig {
    /// An account with only its name set (no credentials yet).
    pub fn named(name: &str) -> AccountConfig {
        AccountConfig {
            name: name.to_string(),
            api_url: None,
            token_file: None,
            app_key: None,
            app_secret: None,
            app_secret_file: None,
            refresh_token: None,
            refresh_token_file: None,
            access_token: None,
            access_token_file: None,
            team_member_email: None,
            team_space: false,
            proxy: None,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for AccountConfig {
    /// Secrets stay out of logs: only the names of what is set are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("token_file", &self.token_file)
            .field("team_member_email", &self.team_member_email)
            .field("team_space", &self.team_space)
            .field(
                "proxy",
                &self
                    .proxy
                    .as_deref()
                    .map(crate::backend::dropbox::api::scrub),
            )
            .field("ca_file", &self.ca_file)
            .field("app_secret_file", &self.app_secret_file)
            .field("refresh_token_file", &self.refresh_token_file)
            .field("access_token_file", &self.access_token_file)
            .field("app_key", &self.app_key)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One SFTP user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// The account (by name) whose Dropbox this user sees.
    pub account: String,
    /// The user's home in Dropbox: a jail; nothing outside it can be reached.
    #[serde(default = "default_root")]
    pub root: String,
    /// OpenSSH authorized_keys lines.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// A file of OpenSSH authorized_keys lines (relative paths are from the config file).
    pub authorized_keys_file: Option<PathBuf>,
    /// What the user may do: a preset name (`"all"`, `"read-only"`, `"upload-only"`) or a list
    /// of permissions (list, read, upload, overwrite, delete, rename, mkdir). Default: all.
    pub permissions: Option<PermissionsSetting>,
    /// An argon2id hash from `dropgate hash-password`; password login is off without one.
    pub password_hash: Option<StoredPasswordHash>,
    /// Addresses and ranges the user may log in from, checked before any key or password;
    /// replaces `[server] allowed_networks`.
    pub allowed_networks: Option<Vec<String>>,
    /// The user's own `[server] mtime_change`.
    pub mtime_change: Option<MtimeChange>,
}

/// `permissions = "upload-only"` or `permissions = ["upload", "mkdir"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PermissionsSetting {
    Preset(String),
    List(Vec<String>),
}

impl PermissionsSetting {
    /// The set these names stand for; an unknown name is an error that lists the known ones.
    pub fn resolve(&self) -> anyhow::Result<Permissions> {
        match self {
            PermissionsSetting::Preset(name) => Permissions::preset(name).with_context(|| {
                let presets: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
                format!(
                    "{name:?} is not a preset ({}); or give a list such as [\"upload\"]",
                    presets.join(", ")
                )
            }),
            PermissionsSetting::List(names) => names
                .iter()
                .map(|name| {
                    Permission::from_name(name).with_context(|| {
                        let known: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
                        format!("{name:?} is not a permission ({})", known.join(", "))
                    })
                })
                .collect(),
        }
    }
}

/// Abuse limits: failed-login bans, connection caps, timeouts, channels, sessions, open handles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Failed logins from one address within `login_failure_window_secs` that get it banned;
    /// 0 turns banning off.
    pub max_login_failures: u32,
    pub login_failure_window_secs: u64,
    /// How long a banned address is refused.
    pub ban_secs: u64,
    /// Connections open at once, over all addresses.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// A connection that has not logged in by then is closed.
    pub auth_timeout_secs: u64,
    /// Open files and folders per SFTP session.
    pub max_handles_per_session: usize,
    /// Channels open at once on one SSH connection (each can run an SFTP session).
    pub max_channels_per_connection: usize,
    /// SFTP sessions one user may run at once, over all their connections.
    pub max_sftp_sessions_per_user: usize,
    /// Open files and folders one user may hold at once, over all their sessions (every file
    /// being uploaded holds a spool file).
    pub max_handles_per_user: usize,

    // Before login: what a client that has not logged in can hold.
    /// IPv6 clients count by network of this prefix length, for bans and every per-address
    /// cap: one host usually holds a whole /64. 128 counts each address on its own.
    pub ipv6_prefix_len: u8,
    /// Connections open at once that have not logged in yet, over all addresses (like sshd's
    /// MaxStartups); beyond it new connections are closed, those logged in are not affected.
    pub max_unauthenticated_connections: usize,
    /// Of those, from one address (one IPv6 network).
    pub max_unauthenticated_per_address: usize,
    /// Password checks running at once; each argon2id check takes about 19 MiB and a CPU for
    /// a moment, and the rest wait their turn.
    pub max_concurrent_password_checks: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_login_failures: 5,
            login_failure_window_secs: 300,
            ban_secs: 900,
            max_connections: 1000,
            max_connections_per_address: 20,
            auth_timeout_secs: 30,
            max_handles_per_session: 256,
            max_channels_per_connection: 10,
            max_sftp_sessions_per_user: 64,
            max_handles_per_user: 1024,

            ipv6_prefix_len: 64,
            max_unauthenticated_connections: 100,
            max_unauthenticated_per_address: 10,
            max_concurrent_password_checks: 4,
        }
    }
}

impl LimitsConfig {
    pub fn login_failure_window(&self) -> Duration {
        Duration::from_secs(self.login_failure_window_secs)
    }

    pub fn ban(&self) -> Duration {
        Duration::from_secs(self.ban_secs)
    }

    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.auth_timeout_secs)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("max_handles_per_session", self.max_handles_per_session),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection,
            ),
            (
                "max_sftp_sessions_per_user",
                self.max_sftp_sessions_per_user,
            ),
            ("max_handles_per_user", self.max_handles_per_user),
            ("auth_timeout_secs", self.auth_timeout_secs as usize),
            (
                "max_unauthenticated_connections",
                self.max_unauthenticated_connections,
            ),
            (
                "max_unauthenticated_per_address",
                self.max_unauthenticated_per_address,
            ),
            (
                "max_concurrent_password_checks",
                self.max_concurrent_password_checks,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("limits.{key} must be at least 1");
            }
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            bail!("limits.ipv6_prefix_len must be from 1 to 128");
        }
        if self.max_login_failures > 0 && self.login_failure_window_secs == 0 {
            bail!("limits.login_failure_window_secs must be at least 1 when banning is on");
        }
        Ok(())
    }
}

/// The audit log: one JSON line per login, operation and disconnect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `"stderr"`, or a file the lines are appended to; no audit log when unset.
    pub output: Option<String>,
}

/// The operators' HTTP listener: `/metrics` (Prometheus text) and `/healthz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where it listens (a private address); no listener when unset.
    pub listen: Option<SocketAddr>,
}

fn default_root() -> String {
    "/".to_string()
}

impl Config {
    /// Reads, parses and validates a config file, with the environment's overrides
    /// (`DROPGATE_<SECTION>__<KEY>`) and the secrets of `*_file` settings; relative paths in
    /// it become absolute, from the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        Config::load_with(path, &Overrides::from_env()?)
    }

    /// [`Config::load`] with these overrides instead of the environment's.
    pub fn load_with(path: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
        let config = Self::load_except_users_with(path, overrides)?;
        config
            .validate_users()
            .map_err(|e| overrides.explain(e))
            .with_context(|| format!("in config file {}", shown(path).display()))?;
        Ok(config)
    }

    /// [`Config::load`] without checking the users, for `check-config`, which checks and
    /// reports each user on its own ([`Config::resolve_user`]).
    pub fn load_except_users(path: &Path) -> anyhow::Result<Config> {
        Self::load_except_users_with(path, &Overrides::from_env()?)
    }

    fn load_except_users_with(path: &Path, overrides: &Overrides) -> anyhow::Result<Config> {
        let shown = shown(path);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", shown.display()))?;
        let context = || format!("in config file {}", shown.display());
        let mut config = overrides.parse(&text).with_context(context)?;
        // Before the secret files are read: their paths are from the config's folder too.
        paths::make_absolute(&mut config, &paths::folder_of(path).with_context(context)?);
        config
            .read_secret_files()
            .and_then(|()| config.add_accounts_connected_by_admin())
            .and_then(|()| config.validate_settings())
            .map_err(|e| overrides.explain(e))
            .with_context(context)?;
        config.source = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(config)
    }

    /// Accounts connected from the admin page (`[admin] accounts_dir`) that the file does not
    /// name itself: each one's token file says its team settings; the API URL is the page's.
    fn add_accounts_connected_by_admin(&mut self) -> anyhow::Result<()> {
        if !self.admin.enabled() {
            return Ok(());
        }
        for (name, path) in self.admin.connected_accounts()? {
            if self.account(&name).is_some() {
                continue;
            }
            let file = crate::backend::dropbox::token_file::TokenFile::read(&path)
                .with_context(|| format!("admin.accounts_dir: account {name:?}"))?;
            self.accounts.push(AccountConfig {
                api_url: self.admin.api_url.clone(),
                token_file: Some(path),
                team_member_email: file.team_member_email,
                team_space: file.team_space,
                ..AccountConfig::named(&name)
            });
        }
        Ok(())
    }

    /// Each `*_file` secret of an account read into its setting (see `crate::secret_file`).
    fn read_secret_files(&mut self) -> anyhow::Result<()> {
        for account in &mut self.accounts {
            let name = account.name.clone();
            let pairs = [
                (
                    "app_secret",
                    &mut account.app_secret,
                    &account.app_secret_file,
                ),
                (
                    "refresh_token",
                    &mut account.refresh_token,
                    &account.refresh_token_file,
                ),
                (
                    "access_token",
                    &mut account.access_token,
                    &account.access_token_file,
                ),
            ];
            for (key, value, file) in pairs {
                let Some(file) = file else { continue };
                if value.is_some() {
                    bail!("accounts.{name}: set only one of {key} and {key}_file");
                }
                let setting = format!("accounts.{name}.{key}_file");
                *value = Some(crate::secret_file::read(&setting, file)?);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    fn validate(&self) -> anyhow::Result<()> {
        self.validate_settings()?;
        self.validate_users()
    }

    /// Every user checked (names unique, account, permissions, networks); the error lists
    /// every failing user, not only the first.
    fn validate_users(&self) -> anyhow::Result<()> {
        let mut user_names = HashSet::new();
        for user in &self.users {
            if !user_names.insert(user.name.as_str()) {
                bail!("users: the name {:?} is used twice", user.name);
            }
        }
        let failures: Vec<String> = self
            .users
            .iter()
            .filter_map(|user| self.check_user(user).err())
            .map(|e| format!("{e:#}"))
            .collect();
        if !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(())
    }

    /// What can be checked of a user from the config's text alone.
    fn check_user(&self, user: &UserConfig) -> anyhow::Result<()> {
        if self.account(&user.account).is_none() {
            bail!(
                "users.{}.account: no account named {:?}",
                user.name,
                user.account
            );
        }
        if let Some(permissions) = &user.permissions {
            permissions
                .resolve()
                .with_context(|| format!("users.{}.permissions", user.name))?;
        }
        allowed_networks(user.allowed_networks.as_deref())
            .with_context(|| format!("users.{}.allowed_networks", user.name))?;
        Ok(())
    }

    fn validate_settings(&self) -> anyhow::Result<()> {
        let chunk = self.upload.chunk_size;
        if chunk == 0 || !chunk.is_multiple_of(FOUR_MIB) || chunk > MAX_SINGLE_UPLOAD {
            bail!("upload.chunk_size must be a multiple of 4 MiB (4194304) up to 150 MiB");
        }
        if self.upload.single_upload_limit > MAX_SINGLE_UPLOAD {
            bail!("upload.single_upload_limit may not exceed 150 MiB (157286400), Dropbox's limit");
        }
        if !(1..=MAX_UPLOAD_CONNECTIONS).contains(&self.upload.connections) {
            bail!("upload.connections must be 1 to {MAX_UPLOAD_CONNECTIONS}");
        }
        self.download.validate()?;
        let mut account_names = HashSet::new();
        for account in &self.accounts {
            if !account_names.insert(account.name.as_str()) {
                bail!("accounts: the name {:?} is used twice", account.name);
            }
            account
                .validate()
                .with_context(|| format!("accounts.{}", account.name))?;
        }
        if let Some(proxy) = &self.server.proxy {
            check_proxy(proxy).context("server.proxy")?;
        }
        parse_authorized_keys(&self.server.trusted_user_ca_keys)
            .context("server.trusted_user_ca_keys")?;
        let proxies = self.server.trusted_proxies()?;
        if self.server.proxy_protocol && proxies == Networks::default() {
            bail!(
                "server.proxy_protocol is on but server.trusted_proxies is empty: list the \
                 load balancers' addresses"
            );
        }
        self.limits.validate()?;
        allowed_networks(self.server.allowed_networks.as_deref())
            .context("server.allowed_networks")?;
        crate::hooks::settings::validate(&self.hooks)?;
        self.admin.validate()?;
        Ok(())
    }

    /// The trusted user CA keys, inline and from `trusted_user_ca_keys_file`.
    pub fn trusted_user_cas(&self) -> anyhow::Result<Vec<PublicKey>> {
        let mut lines = self.server.trusted_user_ca_keys.clone();
        if let Some(file) = &self.server.trusted_user_ca_keys_file {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!(
                    "server.trusted_user_ca_keys_file: cannot read {}",
                    file.display()
                )
            })?;
            lines.extend(text.lines().map(str::to_string));
        }
        parse_authorized_keys(&lines).context("server.trusted_user_ca_keys")
    }

    pub fn account(&self, name: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// Users with their keys read and parsed; the error names every failing user.
    pub fn resolve_users(&self) -> anyhow::Result<Vec<User>> {
        let mut users = Vec::new();
        let mut failures = Vec::new();
        for user in &self.users {
            match self.resolve_user(user) {
                Ok(user) => users.push(user),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        if !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(users)
    }

    /// One user checked and with their keys read and parsed.
    pub fn resolve_user(&self, user: &UserConfig) -> anyhow::Result<User> {
        self.check_user(user)?;
        resolve_user(user, &self.server)
    }
}

impl AccountConfig {
    /// One way to authenticate, and settings that make sense together.
    fn validate(&self) -> anyhow::Result<()> {
        let inline_refresh = self.refresh_token.is_some();
        let ways = [
            self.token_file.is_some(),
            inline_refresh,
            self.access_token.is_some(),
        ];
        match ways.iter().filter(|w| **w).count() {
            0 => bail!(
                "set token_file (written by dropgate auth), or app_key + app_secret + \
                 refresh_token, or access_token"
            ),
            1 => {}
            _ => bail!("set only one of token_file, refresh_token and access_token"),
        }
        if inline_refresh && (self.app_key.is_none() || self.app_secret.is_none()) {
            bail!("refresh_token needs app_key and app_secret too");
        }
        if let Some(email) = &self.team_member_email {
            if !email.contains('@') {
                bail!("team_member_email {email:?} is not an email address");
            }
        }
        if let Some(proxy) = &self.proxy {
            check_proxy(proxy).context("proxy")?;
        }
        Ok(())
    }

    /// The proxy this account uses: its own, else the server's; None = the environment's.
    pub fn effective_proxy<'a>(&'a self, server: &'a ServerConfig) -> Option<&'a str> {
        self.proxy.as_deref().or(server.proxy.as_deref())
    }

    /// The CAs this account trusts: the system's plus its own `ca_file`, else the server's.
    pub fn trust(&self, server: &ServerConfig) -> anyhow::Result<Trust> {
        match (&self.ca_file, &server.ca_file) {
            (Some(own), _) => Trust::with_ca_file(Some(own)).context("ca_file"),
            (None, shared) => Trust::with_ca_file(shared.as_deref()).context("server.ca_file"),
        }
    }
}

/// A proxy setting is `"none"` or an http(s)/socks URL with a host.
fn check_proxy(proxy: &str) -> anyhow::Result<()> {
    if proxy == crate::backend::dropbox::api::NO_PROXY {
        return Ok(());
    }
    let shown = crate::backend::dropbox::api::scrub(proxy);
    let url = url::Url::parse(proxy)
        .map_err(|_| anyhow::anyhow!("{shown:?} is not a URL (e.g. http://proxy.example:3128)"))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") || url.host().is_none() {
        bail!("{shown:?} must be an http:// or https:// proxy URL with a host, or \"none\"");
    }
    Ok(())
}

fn resolve_user(user: &UserConfig, server: &ServerConfig) -> anyhow::Result<User> {
    let mut keys = parse_user_keys(&user.authorized_keys)
        .with_context(|| format!("users.{}.authorized_keys", user.name))?;
    if let Some(file) = &user.authorized_keys_file {
        let context = || {
            format!(
                "users.{}.authorized_keys_file {}",
                user.name,
                file.display()
            )
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read it", context()))?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        keys.extend(parse_user_keys(&lines).with_context(context)?);
    }
    Ok(User {
        name: user.name.clone(),
        account: user.account.clone(),
        dropbox_root: dropbox_root(&user.root)
            .with_context(|| format!("users.{}.root", user.name))?,
        keys,
        permissions: user_permissions(user)?,
        password_hash: user.password_hash.clone(),
        allowed_networks: user_networks(user, server)?,
        mtime_change: user.mtime_change,
    })
}

/// The user's own `allowed_networks`, else the server's default; None = from anywhere.
fn user_networks(user: &UserConfig, server: &ServerConfig) -> anyhow::Result<Option<Networks>> {
    match &user.allowed_networks {
        Some(own) => allowed_networks(Some(own))
            .with_context(|| format!("users.{}.allowed_networks", user.name)),
        None => {
            allowed_networks(server.allowed_networks.as_deref()).context("server.allowed_networks")
        }
    }
}

/// An `allowed_networks` list parsed. An empty list is refused rather than read as "nowhere"
/// or "anywhere": either reading would surprise someone.
fn allowed_networks(entries: Option<&[String]>) -> anyhow::Result<Option<Networks>> {
    let Some(entries) = entries else {
        return Ok(None);
    };
    if entries.is_empty() {
        bail!(
            "the list is empty: leave it out to allow every address, or list ranges \
             (\"0.0.0.0/0\" and \"::/0\" are everywhere)"
        );
    }
    Networks::parse(entries.iter().map(String::as_str))
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

/// A user's authorized_keys lines with their options; the error names the line (counted from
/// 1, blank lines and comments included) and what is wrong with it.
fn parse_user_keys(lines: &[String]) -> anyhow::Result<Vec<AuthorizedKey>> {
    let mut keys = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key =
            AuthorizedKey::parse(line).map_err(|e| anyhow::anyhow!("line {}: {e}", index + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// The user's permissions; all of them when the setting is absent.
pub fn user_permissions(user: &UserConfig) -> anyhow::Result<Permissions> {
    match &user.permissions {
        Some(setting) => setting
            .resolve()
            .with_context(|| format!("users.{}.permissions", user.name)),
        None => Ok(Permissions::all()),
    }
}

/// Parses OpenSSH public key lines (CA keys; options before a key are allowed and ignored).
pub fn parse_authorized_keys(lines: &[String]) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = russh::keys::ssh_key::authorized_keys::Entry::from_str_checked(line)?;
        keys.push(entry.public_key().clone());
    }
    Ok(keys)
}

/// Normalises a configured root folder to Dropbox's spelling: "" or "/a/b".
fn dropbox_root(root: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = root.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("{root:?} may not contain . or .. components");
    }
    // NFC, the form Dropbox stores, as for every client path (see `vfs::path`).
    Ok(parts
        .iter()
        .map(|p| format!("/{}", p.nfc().collect::<String>()))
        .collect())
}

/// Extension trait: parse one authorized_keys line with a useful error.
trait EntryExt: Sized {
    fn from_str_checked(line: &str) -> anyhow::Result<Self>;
}

impl EntryExt for russh::keys::ssh_key::authorized_keys::Entry {
    fn from_str_checked(line: &str) -> anyhow::Result<Self> {
        line.parse().map_err(|e| {
            let shown: String = line.chars().take(40).collect();
            anyhow::anyhow!("cannot parse key line {shown:?}...: {e}")
        })
    }
}

/// Parses the config's TOML without ever echoing its text.
///
/// toml's own message quotes the offending line, and serde's quote the offending value; in a
/// config file that line can be an unquoted token or secret, and this message is printed at
/// start and logged on SIGHUP. So the error names the place (line and column) and what was
/// wrong, with any quoted value left out.
/// The config file's path as messages name it: absolute.
fn shown(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn parse_toml(text: &str) -> anyhow::Result<Config> {
    toml::from_str(text).map_err(|error| {
        let message = without_values(error.message());
        match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                anyhow::anyhow!("line {line}, column {column}: {message}")
            }
            None => anyhow::anyhow!("{message}"),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// A parser message on one line, with the values serde quotes replaced by their kind:
/// `invalid type: string "sl.AbC...", expected u64` becomes `invalid type: string, expected u64`.
fn without_values(message: &str) -> String {
    let one_line = message
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        if let Some(rest) = one_line.strip_prefix(prefix) {
            let kind = match prefix {
                "unknown variant " => "",
                _ => rest.split([' ', ',']).next().unwrap_or(""),
            };
            let expected = rest.find(", expected").map_or("", |at| &rest[at..]);
            return format!("{prefix}{kind}{expected}").replace(" ,", ",");
        }
    }
    one_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice";

    fn parse(text: &str) -> anyhow::Result<Config> {
        let config = parse_toml(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn a_syntax_error_names_its_place_but_never_echoes_the_line() {
        let secret = "sl.u.AbCdEf0123456789SECRET";
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:2222\"\n[[accounts]]\nname = \"main\"\n\
             access_token = {secret}\n"
        );
        let message = format!("{:#}", parse(&text).unwrap_err());
        assert!(message.contains("line 5, column 16"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_kind_not_by_value() {
        let text = "[server]\nlisten = \"127.0.0.1:2222\"\nmtime_change = \"sl.SECRET\"\n";
        let message = format!("{:#}", parse(text).unwrap_err());
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("unknown variant"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
        assert_eq!(
            without_values("invalid type: string \"sl.SECRET\", expected u64"),
            "invalid type: string, expected u64"
        );
    }

    #[test]
    fn a_minimal_config_parses_with_defaults() {
        let config = parse(&format!(
            r#"
            [server]
            listen = "127.0.0.1:2222"
            [[accounts]]
            name = "main"
            access_token = "t"
            [[users]]
            name = "alice"
            account = "main"
            root = "/partners/alice/"
            authorized_keys = ["{KEY}"]
            "#
        ))
        .unwrap();
        assert_eq!(config.upload.single_upload_limit, MAX_SINGLE_UPLOAD);
        assert_eq!(config.server.mtime_change, MtimeChange::Reject);
        let users = config.resolve_users().unwrap();
        assert_eq!(users[0].dropbox_root, "/partners/alice");
        assert_eq!(users[0].keys.len(), 1);
    }

    /// A config with user alice whose `authorized_keys` are `inline` and, if given, whose
    /// `authorized_keys_file` is `file` in `dir`.
    fn alice_with_keys(inline: &[&str], file: Option<(&Path, &str)>) -> anyhow::Result<Vec<User>> {
        let quoted: Vec<String> = inline.iter().map(|l| format!("{l:?}")).collect();
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:2222\"\n[[accounts]]\nname = \"main\"\n\
             access_token = \"t\"\n[[users]]\nname = \"alice\"\naccount = \"main\"\n\
             authorized_keys = [{}]\n",
            quoted.join(", ")
        );
        let mut config = parse(&text)?;
        if let Some((dir, lines)) = file {
            std::fs::write(dir.join("alice.keys"), lines).unwrap();
            text.push_str("authorized_keys_file = \"alice.keys\"\n");
            config = parse(&text)?;
            paths::make_absolute(&mut config, dir);
        }
        config.resolve_users()
    }

    #[test]
    fn key_options_are_kept_and_unsupported_ones_refuse_the_line() {
        let from = format!("from=\"10.9.9.9\",expiry-time=\"20000101Z\" {KEY}");
        let users = alice_with_keys(&[&from], None).unwrap();
        let key = &users[0].keys[0];
        assert!(key.check("127.0.0.1".parse().unwrap(), 0).is_err());
        assert_eq!(key.expires, Some(946_684_800));

        let forced = format!("command=\"/bin/sh\" {KEY}");
        let err = alice_with_keys(&["# mine", &forced], None).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("users.alice.authorized_keys: line 2"), "{err}");
        assert!(err.contains("option command is not supported"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let lines = format!("{KEY}\n\ncert-authority {KEY}\n");
        let err = alice_with_keys(&[KEY], Some((dir.path(), &lines))).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("users.alice.authorized_keys_file"), "{err}");
        assert!(err.contains("alice.keys: line 3"), "{err}");
        assert!(err.contains("cert-authority"), "{err}");
        assert!(
            !err.contains("AAAAC3"),
            "the key itself is not quoted: {err}"
        );
    }

    #[test]
    fn allowed_networks_default_to_the_servers_and_bad_entries_are_named() {
        let config = |server: &str, alice: &str| {
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:2222\"\n{server}\n[[accounts]]\nname = \"main\"\n\
                 access_token = \"t\"\n[[users]]\nname = \"alice\"\naccount = \"main\"\n{alice}\n\
                 [[users]]\nname = \"bob\"\naccount = \"main\"\nmtime_change = \"ignore\"\n"
            ))
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let users = config(
            "allowed_networks = [\"10.0.0.0/8\"]",
            "allowed_networks = [\"203.0.113.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]",
        )
        .unwrap()
        .resolve_users()
        .unwrap();
        let (alice, bob) = (&users[0], &users[1]);
        assert!(alice.check_address(ip("203.0.113.9")).is_ok());
        assert!(alice.check_address(ip("2001:db8::1")).is_ok());
        assert!(alice.check_address(ip("::ffff:198.51.100.7")).is_ok());
        let refused = alice.check_address(ip("10.1.1.1")).unwrap_err();
        assert_eq!(
            refused,
            "address 10.1.1.1 not in the user's allowed_networks"
        );
        assert!(bob.check_address(ip("10.1.1.1")).is_ok(), "the default");
        assert!(bob.check_address(ip("203.0.113.9")).is_err());
        assert_eq!(
            (alice.mtime_change, bob.mtime_change),
            (None, Some(MtimeChange::Ignore))
        );

        let anywhere = config("", "").unwrap().resolve_users().unwrap();
        assert!(anywhere[0].check_address(ip("192.0.2.1")).is_ok());

        let err = format!(
            "{:#}",
            config("", "allowed_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]").unwrap_err()
        );
        assert!(
            err.contains("users.alice.allowed_networks") && err.contains("\"10.0.0.0/33\""),
            "{err}"
        );
        let err = format!(
            "{:#}",
            config("allowed_networks = [\"office\"]", "").unwrap_err()
        );
        assert!(
            err.contains("server.allowed_networks") && err.contains("\"office\""),
            "{err}"
        );
        let err = format!("{:#}", config("", "allowed_networks = []").unwrap_err());
        assert!(
            err.contains("users.alice.allowed_networks") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn a_user_naming_a_missing_account_is_refused() {
        let err = parse(
            r#"
            [server]
            listen = "127.0.0.1:2222"
            [[users]]
            name = "bob"
            account = "nope"
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("users.bob.account"), "{err}");
    }

    #[test]
    fn every_failing_user_is_named_not_only_the_first() {
        let err = parse(
            r#"
            [server]
            listen = "127.0.0.1:2222"
            [[accounts]]
            name = "main"
            access_token = "t"
            [[users]]
            name = "bob"
            account = "nope"
            [[users]]
            name = "carol"
            account = "main"
            permissions = ["fly"]
            "#,
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("users.bob.account: no account named"), "{err}");
        assert!(err.contains("users.carol.permissions: \"fly\""), "{err}");
    }

    #[test]
    fn chunk_size_must_be_a_multiple_of_4_mib() {
        let err = parse(
            r#"
            [server]
            listen = "127.0.0.1:2222"
            [upload]
            chunk_size = 5000000
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("chunk_size"), "{err}");
    }

    #[test]
    fn upload_connections_are_1_to_16_and_4_by_default() {
        let upload = |connections: &str| {
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:2222\"\n[upload]\n{connections}\n"
            ))
        };
        assert_eq!(upload("").unwrap().upload.connections, 4);
        assert_eq!(upload("connections = 1").unwrap().upload.connections, 1);
        assert_eq!(upload("connections = 16").unwrap().upload.connections, 16);
        for refused in ["connections = 0", "connections = 17"] {
            let err = upload(refused).unwrap_err();
            assert!(err.to_string().contains("upload.connections"), "{err}");
        }
    }

    #[test]
    fn download_settings_have_defaults_and_sane_bounds() {
        let download = |lines: &str| {
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:2222\"\n[download]\n{lines}"
            ))
        };
        let defaults = download("").unwrap().download.settings();
        assert_eq!(defaults.connections, 4);
        assert_eq!(defaults.range_size, 8 * MIB);
        let one = download("connections = 1").unwrap().download.settings();
        assert_eq!((one.connections, one.range_size), (1, 32 * MIB));
        // Ranges are whole MiB: 10 MiB over 3 connections gives ranges of 3 MiB.
        let odd = download("connections = 3\nread_ahead = 10485760").unwrap();
        assert_eq!(odd.download.settings().range_size, 3 * MIB);
        for wrong in [
            "connections = 0",
            "connections = 17",
            "connections = 4\nread_ahead = 3145728",
            "read_ahead = 2147483648",
        ] {
            let err = format!("{:#}", download(wrong).unwrap_err());
            assert!(err.contains("download."), "{wrong}: {err}");
        }
    }

    #[test]
    fn proxy_protocol_needs_trusted_proxies_and_ca_keys_must_parse() {
        let server =
            |lines: &str| parse(&format!("[server]\nlisten = \"127.0.0.1:2222\"\n{lines}"));
        let err = server("proxy_protocol = true").unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
        let err = server("proxy_protocol = true\ntrusted_proxies = [\"lb.example\"]").unwrap_err();
        assert!(err.to_string().contains("lb.example"), "{err}");
        let ok = server("proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]").unwrap();
        assert!(ok
            .server
            .trusted_proxies()
            .unwrap()
            .contains([10, 1, 2, 3].into()));
        let err = server("trusted_user_ca_keys = [\"ssh-ed25519 nonsense\"]").unwrap_err();
        assert!(
            format!("{err:#}").contains("trusted_user_ca_keys"),
            "{err:#}"
        );
        let ok = server(&format!("trusted_user_ca_keys = [\"{KEY}\"]")).unwrap();
        assert_eq!(ok.trusted_user_cas().unwrap().len(), 1);
    }

    #[test]
    fn channel_session_and_handle_caps_have_defaults_and_must_be_positive() {
        let limits = |lines: &str| {
            parse(&format!(
                "[server]\nlisten = \"127.0.0.1:2222\"\n[limits]\n{lines}"
            ))
        };
        let defaults = limits("").unwrap().limits;
        assert_eq!(defaults.max_channels_per_connection, 10);
        assert_eq!(defaults.max_sftp_sessions_per_user, 64);
        assert_eq!(defaults.max_handles_per_user, 1024);
        for key in [
            "max_channels_per_connection",
            "max_sftp_sessions_per_user",
            "max_handles_per_user",
        ] {
            let err = limits(&format!("{key} = 0")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn roots_are_normalised() {
        assert_eq!(dropbox_root("/").unwrap(), "");
        assert_eq!(dropbox_root("a//b/").unwrap(), "/a/b");
        assert!(dropbox_root("/a/../b").is_err());
        assert_eq!(dropbox_root("/Cafe\u{301}").unwrap(), "/Caf\u{e9}", "NFC");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let account = AccountConfig {
            name: "a".into(),
            api_url: None,
            token_file: None,
            app_key: Some("key".into()),
            app_secret: Some("very-secret".into()),
            app_secret_file: None,
            refresh_token: Some("refresh-secret".into()),
            refresh_token_file: None,
            access_token: None,
            access_token_file: None,
            team_member_email: None,
            team_space: false,
            proxy: Some("http://u:proxy-secret@proxy:3128".into()),
            ca_file: None,
        };
        let shown = format!("{account:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("refresh-secret"));
        assert!(!shown.contains("proxy-secret"), "{shown}");
    }

    fn account_error(lines: &str) -> String {
        let err = parse(&format!(
            "[server]\nlisten = \"127.0.0.1:2222\"\n[[accounts]]\nname = \"a\"\n{lines}"
        ))
        .unwrap_err();
        format!("{err:#}")
    }

    #[test]
    fn an_account_needs_exactly_one_way_to_authenticate() {
        assert!(account_error("").contains("token_file"));
        let err = account_error("token_file = \"t\"\naccess_token = \"x\"");
        assert!(err.contains("only one"), "{err}");
        let err = account_error("refresh_token = \"r\"");
        assert!(err.contains("app_key"), "{err}");
    }

    #[test]
    fn team_and_proxy_settings_are_checked() {
        let ok = parse(
            r#"
            [server]
            listen = "127.0.0.1:2222"
            proxy = "http://proxy.example:3128"
            [[accounts]]
            name = "team"
            token_file = "keys/team.token"
            team_member_email = "alice@team.example"
            team_space = true
            [[accounts]]
            name = "direct"
            access_token = "t"
            proxy = "none"
            "#,
        )
        .unwrap();
        let server = &ok.server;
        assert_eq!(
            ok.accounts[0].effective_proxy(server),
            Some("http://proxy.example:3128")
        );
        assert_eq!(ok.accounts[1].effective_proxy(server), Some("none"));
        assert!(ok.accounts[0].team_space);
        let err = account_error("access_token = \"t\"\nteam_member_email = \"alice\"");
        assert!(err.contains("not an email"), "{err}");
        let err = account_error("access_token = \"t\"\nproxy = \"proxy:3128\"");
        assert!(err.contains("proxy"), "{err}");
    }

    #[test]
    fn an_accounts_ca_file_replaces_the_servers_and_errors_name_which() {
        let config = parse(
            "[server]\nlisten = \"127.0.0.1:2222\"\nca_file = \"/nonexistent/server-ca.pem\"\n\
             [[accounts]]\nname = \"shared\"\naccess_token = \"t\"\n\
             [[accounts]]\nname = \"own\"\naccess_token = \"t\"\n\
             ca_file = \"/nonexistent/own-ca.pem\"\n",
        )
        .unwrap();
        let shared = format!(
            "{:#}",
            config.accounts[0].trust(&config.server).unwrap_err()
        );
        assert!(
            shared.starts_with("server.ca_file: ca_file /nonexistent/server-ca.pem"),
            "{shared}"
        );
        let own = format!(
            "{:#}",
            config.accounts[1].trust(&config.server).unwrap_err()
        );
        assert!(own.contains("/nonexistent/own-ca.pem"), "{own}");
        assert!(!own.contains("server"), "{own}");
    }

    #[test]
    fn algorithms_are_a_policy_name_or_lists_and_a_misspelt_list_is_named() {
        let server = |line: &str| format!("[server]\nlisten = \"127.0.0.1:2222\"\n{line}\n");
        let default = parse(&server("")).unwrap();
        assert_eq!(
            default.server.algorithms,
            AlgorithmsConfig::Named("modern".into())
        );
        let named = parse(&server("algorithms = \"compatible\"")).unwrap();
        assert_eq!(
            named.server.algorithms,
            AlgorithmsConfig::Named("compatible".into())
        );
        let lists = parse(&server("algorithms = { kex = [\"ecdh-sha2-nistp256\"] }")).unwrap();
        assert_eq!(
            lists.server.algorithms,
            AlgorithmsConfig::Lists(AlgorithmLists {
                kex: Some(vec!["ecdh-sha2-nistp256".into()]),
                ..AlgorithmLists::default()
            })
        );
        let err = format!(
            "{:#}",
            parse(&server("algorithms = { cipher = [\"aes256-ctr\"] }")).unwrap_err()
        );
        assert!(err.contains("unknown field `cipher`"), "{err}");
        let with_paths = parse(&server("host_key_rsa = \"/etc/dropgate/rsa\"")).unwrap();
        assert_eq!(
            with_paths.server.host_key_rsa.as_deref(),
            Some(Path::new("/etc/dropgate/rsa"))
        );
    }
}
