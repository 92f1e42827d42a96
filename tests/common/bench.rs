//! The bench: a real emulator and a real gateway, in the test process, on free loopback ports,
//! with generated user keys and a known_hosts file for the gateway's host key, all in a
//! temporary directory of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dropbox_emulator::Emulator;
use serde_json::Value;

use super::config::GatewayConfig;
use super::dropbox::{
    content_hash, start_emulator_at, start_emulator_paged, DropboxView, UploadRequests,
};
use super::process::{share_process_counters, use_process_counters_alone, CountersGuard};
use super::{host_key, poll_until, Config, Gateway};

/// The bench's users with a key pair (`dir/{name}`, `dir/{name}.pub`) and their Dropbox roots.
pub const USERS: [(&str, &str); 2] = [("alice", "/alice"), ("bob", "/bob")];

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub emulator: Emulator,
    pub gateway: Gateway,
    dropbox: DropboxView,
    page_size: usize,
    _counters: CountersGuard,
}

/// One SFTP user of the bench: name, private key file, Dropbox root.
pub struct TestUser {
    pub name: &'static str,
    pub key: PathBuf,
    pub root: &'static str,
}

/// Changes a bench's config, given the bench dir (where keys, spool and logs live).
pub type Configure = Box<dyn FnOnce(&mut GatewayConfig, &Path) + Send>;

pub struct BenchOptions {
    /// Entries per page of the emulator's folder listings.
    pub page_size: usize,
    /// Changes to [`GatewayConfig::bench`] before the gateway starts.
    pub configure: Option<Configure>,
    /// The test reads the process-wide counters (metrics, retries) and needs them moved by its
    /// own bench alone: it waits until no other bench runs in this process, and none starts
    /// until it is done.
    pub reads_process_counters: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            page_size: 500,
            configure: None,
            reads_process_counters: false,
        }
    }
}

impl BenchOptions {
    /// The default options with `configure` applied to the config.
    pub fn configured(configure: impl FnOnce(&mut GatewayConfig, &Path) + Send + 'static) -> Self {
        BenchOptions {
            configure: Some(Box::new(configure)),
            ..BenchOptions::default()
        }
    }
}

impl Bench {
    pub async fn start() -> Bench {
        Bench::start_with(BenchOptions::default()).await
    }

    /// A bench whose config is the usual one changed by `configure`.
    pub async fn configured(
        configure: impl FnOnce(&mut GatewayConfig, &Path) + Send + 'static,
    ) -> Bench {
        Bench::start_with(BenchOptions::configured(configure)).await
    }

    /// A bench whose files above `single_upload_limit` go up as upload sessions of
    /// `chunk_size` chunks.
    pub async fn with_upload_sessions(single_upload_limit: u64, chunk_size: u64) -> Bench {
        Bench::configured(move |config, _| {
            config
                .upload
                .sessions_above(single_upload_limit, chunk_size)
        })
        .await
    }

    pub async fn start_with(options: BenchOptions) -> Bench {
        let counters = if options.reads_process_counters {
            use_process_counters_alone().await
        } else {
            share_process_counters().await
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter("dropgate=debug")
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let emulator = start_emulator_paged(dir.path(), options.page_size).await;
        for (name, _) in USERS {
            host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
        }
        let mut config = GatewayConfig::bench(dir.path(), &emulator.base_url());
        if let Some(configure) = options.configure {
            configure(&mut config, dir.path());
        }
        let config_path = dir.path().join("dropgate.toml");
        config.write(&config_path);
        let config = Config::load(&config_path).unwrap();
        let gateway = Gateway::start(&config).await.unwrap();
        let bench = Bench {
            dropbox: DropboxView::of(&emulator),
            dir,
            emulator,
            gateway,
            page_size: options.page_size,
            _counters: counters,
        };
        bench.write_known_hosts();
        bench
    }

    /// Stops the emulator and starts it again on the same port and storage, as a Dropbox
    /// outage would: the files stay, every access token it issued is forgotten, every
    /// connection to it is cut.
    pub async fn restart_emulator(&mut self) {
        let addr = self.emulator.addr();
        // Something must stand in the field while the old one stops and the new one starts.
        let stand_in = start_emulator_paged(&self.path("stand-in"), 1).await;
        std::mem::replace(&mut self.emulator, stand_in)
            .shutdown()
            .await;
        let restarted = start_emulator_at(self.dir.path(), addr, self.page_size).await;
        std::mem::replace(&mut self.emulator, restarted)
            .shutdown()
            .await;
    }

    /// Trusts the gateway's host key on its current port (again, after a new gateway).
    pub fn write_known_hosts(&self) {
        let host_key = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        let line = format!("[127.0.0.1]:{} {}\n", self.port(), host_key.trim());
        std::fs::write(self.known_hosts(), line).unwrap();
    }

    pub fn user(&self, name: &'static str) -> TestUser {
        let root = USERS.iter().find(|(n, _)| *n == name).unwrap().1;
        TestUser {
            name,
            key: self.dir.path().join(name),
            root,
        }
    }

    /// `name` in the bench dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The gateway's SSH port.
    pub fn port(&self) -> u16 {
        self.gateway.addr().port()
    }

    /// The known_hosts file that holds the gateway's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.path("known_hosts")
    }

    /// A bench whose gateway writes its audit log to `audit.log` in the bench dir (see
    /// [`Bench::audit_lines`]), its config otherwise changed by `configure`.
    pub async fn audited(
        configure: impl FnOnce(&mut GatewayConfig, &Path) + Send + 'static,
    ) -> Bench {
        Bench::configured(|config, dir| {
            config.audit_to(&dir.join("audit.log"));
            configure(config, dir);
        })
        .await
    }

    /// The audit log's lines so far, parsed (none before the first is written).
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    // ---- the spool ----

    /// The spool folder of the gateway (`[upload] spool_dir`).
    pub fn spool_dir(&self) -> PathBuf {
        self.path("spool")
    }

    /// Every file below the spool folder, with its size (none if the folder does not exist).
    pub fn spool_files(&self) -> Vec<(PathBuf, u64)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    walk(&entry.path(), out);
                } else {
                    out.push((entry.path(), meta.len()));
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.spool_dir(), &mut files);
        files
    }

    /// Polls (for at most `limit`) until no file is left in the spool folder.
    pub async fn wait_for_empty_spool(&self, limit: Duration) {
        let mut left = Vec::new();
        let emptied = poll_until(limit, || {
            left = self.spool_files();
            std::future::ready(left.is_empty())
        })
        .await;
        assert!(emptied, "spool files still there after {limit:?}: {left:?}");
    }

    // ---- the emulator's own API, as the source of truth ----

    /// The bench emulator's API and hooks.
    pub fn dropbox(&self) -> &DropboxView {
        &self.dropbox
    }

    /// files/get_metadata in the emulator, or None if the path does not exist.
    pub async fn dropbox_metadata(&self, path: &str) -> Option<Value> {
        self.dropbox.metadata(path).await
    }

    /// The bytes the emulator holds at `path`.
    pub async fn dropbox_download(&self, path: &str) -> Vec<u8> {
        self.dropbox.download(path).await
    }

    /// Stores a file directly in the emulator (test setup that bypasses the gateway).
    pub async fn dropbox_upload(&self, path: &str, data: Vec<u8>) {
        self.dropbox.upload(path, data).await
    }

    /// The emulator's metadata of a file that must exist.
    pub async fn dropbox_stored(&self, path: &str) -> Value {
        self.dropbox_metadata(path)
            .await
            .unwrap_or_else(|| panic!("{path} is not in Dropbox"))
    }

    /// The file at `path` is still exactly the `before` version holding `data`.
    pub async fn assert_unchanged(&self, path: &str, before: &Value, data: &[u8]) {
        let after = self.dropbox_stored(path).await;
        assert_eq!(
            after["rev"], before["rev"],
            "{path} was replaced: before {before}, after {after}"
        );
        assert_eq!(after["content_hash"], content_hash(data), "{path}: {after}");
        assert_eq!(self.dropbox_download(path).await, data, "{path} content");
    }

    /// Names in a Dropbox folder, following every page.
    pub async fn dropbox_list(&self, path: &str) -> Vec<String> {
        self.dropbox.list(path).await
    }

    /// Request counts per route since the emulator started.
    pub async fn emulator_stats(&self) -> Value {
        self.dropbox.stats().await
    }

    /// Upload-related request counts since the emulator started or its stats were reset.
    pub async fn upload_requests(&self) -> UploadRequests {
        UploadRequests::from_stats(&self.emulator_stats().await)
    }

    /// Request counts start again from zero.
    pub async fn reset_emulator_stats(&self) {
        self.dropbox.reset_stats().await
    }

    /// The emulator injects these faults (replacing any earlier ones).
    pub async fn set_emulator_faults(&self, rules: Value) {
        self.dropbox.set_faults(rules).await
    }

    /// The account's refresh token is revoked: every access token the emulator issued expires,
    /// and asking for a new one is refused as Dropbox refuses a revoked token.
    pub async fn revoke_refresh_token(&self) {
        self.set_emulator_faults(serde_json::json!([{
            "kind": "error",
            "route": "oauth2/token",
            "status": 400,
            "body": {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}
        }]))
        .await;
        self.emulator_hook("expire_tokens").await;
    }

    /// Connects to the gateway's SSH port and asserts the connection is closed without a word
    /// (no SSH banner): how a banned address is turned away.
    pub async fn assert_closed_without_banner(&self) {
        use tokio::io::AsyncReadExt;
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.port()))
            .await
            .unwrap();
        let mut banner = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut banner)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a banned address must be closed without a word, got {:?}",
            String::from_utf8_lossy(&banner)
        );
    }

    /// `POST /__emulator/{hook}` (e.g. `expire_tokens`).
    pub async fn emulator_hook(&self, hook: &str) {
        self.dropbox.hook(hook).await
    }

    /// The emulator injects no more faults.
    pub async fn clear_emulator_faults(&self) {
        self.dropbox.clear_faults().await
    }
}
