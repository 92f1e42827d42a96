//! Processes: the `dropgate` binary run as a process of its own (for what only a real process
//! shows: signals, its own memory and descriptors, its own log), what a process holds (read
//! from /proc), and the lock that keeps the test process's own process-wide counters honest.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use dropbox_emulator::Emulator;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::config::GatewayConfig;
use super::dropbox::{start_emulator, DropboxView};
use super::{host_key, poll_until, USERS};

/// A loopback port nothing listens on right now, for a process that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `dropgate` binary under test, logging at `rust_log`, its output piped, killed with the
/// test.
pub fn dropgate_binary(rust_log: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropgate"));
    command
        .env("RUST_LOG", rust_log)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits (at most 30 s) until something accepts connections on loopback `port`.
pub async fn wait_until_listening(port: u16) -> bool {
    poll_until(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await
}

/// Everything `dropgate serve` needs as a process of its own: a temp dir with the bench users'
/// keys, an emulator, and a free port for it to listen on.
pub struct ServeDir {
    pub dir: tempfile::TempDir,
    /// None once [`ServeDir::stop_dropbox`] stopped it.
    emulator: Option<Emulator>,
    pub port: u16,
}

impl ServeDir {
    pub async fn new() -> ServeDir {
        let dir = tempfile::tempdir().unwrap();
        let emulator = start_emulator(dir.path()).await;
        for (name, _) in USERS {
            host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
        }
        ServeDir {
            dir,
            emulator: Some(emulator),
            port: free_port(),
        }
    }

    fn emulator(&self) -> &Emulator {
        self.emulator
            .as_ref()
            .expect("the emulator was stopped (ServeDir::stop_dropbox)")
    }

    /// Stops the emulator: to a gateway already started on it, Dropbox is gone (connections
    /// refused), as when the network to Dropbox fails.
    pub async fn stop_dropbox(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown().await;
        }
    }

    /// `name` in the dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bench's usual config, listening on [`ServeDir::port`].
    pub fn config(&self) -> GatewayConfig {
        let mut config = GatewayConfig::bench(self.dir.path(), &self.emulator().base_url());
        config.listen_on(self.port);
        config
    }

    /// Where [`ServeDir::serve`] writes the config.
    pub fn config_path(&self) -> PathBuf {
        self.path("dropgate.toml")
    }

    /// Writes `config` and starts `dropgate serve` on it, logging at `rust_log` to `stderr`;
    /// returns once it listens, with its host key in `known_hosts`.
    pub async fn serve(
        &self,
        config: &GatewayConfig,
        rust_log: &str,
        stderr: Stdio,
    ) -> tokio::process::Child {
        let process = self
            .serve_command(config, rust_log)
            .stderr(stderr)
            .spawn()
            .unwrap();
        assert!(
            wait_until_listening(self.port).await,
            "dropgate serve did not start listening"
        );
        self.trust_host_key();
        process
    }

    /// Writes `config`; `dropgate serve` on it, logging at `rust_log`, not yet started (for a
    /// test that sets its environment or watches it start).
    pub fn serve_command(&self, config: &GatewayConfig, rust_log: &str) -> tokio::process::Command {
        config.write(&self.config_path());
        let mut command = dropgate_binary(rust_log);
        command
            .args(["serve", "--config"])
            .arg(self.config_path())
            .stdout(Stdio::null());
        command
    }

    /// Puts the host key a started `dropgate serve` created into `known_hosts`.
    pub fn trust_host_key(&self) {
        let host_public = std::fs::read_to_string(self.path("host_key.pub")).unwrap();
        std::fs::write(
            self.known_hosts(),
            format!("[127.0.0.1]:{} {}\n", self.port, host_public.trim()),
        )
        .unwrap();
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.path("known_hosts")
    }

    /// The emulator's API and hooks.
    pub fn dropbox(&self) -> DropboxView {
        DropboxView::of(self.emulator())
    }

    /// `sftp -b BATCH` as alice with the private key `key`, `extra` options before the
    /// destination; not yet started, output piped, killed with the test.
    pub fn sftp_as_alice(
        &self,
        key: &Path,
        commands: &str,
        extra: &[String],
    ) -> tokio::process::Command {
        self.sftp_as("alice", key, commands, extra)
    }

    /// `sftp -b BATCH` as `user` with the private key `key`, `extra` options before the
    /// destination; not yet started, output piped, killed with the test.
    pub fn sftp_as(
        &self,
        user: &str,
        key: &Path,
        commands: &str,
        extra: &[String],
    ) -> tokio::process::Command {
        let batch = self.path(&format!("batch-{}", rand::random::<u32>()));
        std::fs::write(&batch, commands).unwrap();
        let mut command = tokio::process::Command::new("sftp");
        command
            .arg("-i")
            .arg(key)
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(extra)
            .args(["-P", &self.port.to_string(), "-b"])
            .arg(&batch)
            .arg(format!("{user}@127.0.0.1"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// Waits (at most 30 s) for a `dropgate` command whose stdout is read as `lines`, reading
/// the rest of its output first; returns (success, the rest of stdout, stderr).
pub async fn finish_command(
    mut child: tokio::process::Child,
    mut lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> (bool, String, String) {
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push_str(&line);
        rest.push('\n');
    }
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("dropgate did not exit")
        .unwrap();
    (status.success(), rest, stderr)
}

/// Sends `signal` (`"TERM"`, `"HUP"`) to `process`.
pub fn send_signal(process: &tokio::process::Child, signal: &str) {
    let pid = process.id().expect("the process is running").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

// ---- what a process holds, for the tests that bound memory and file descriptors ----

/// Resident memory of process `pid` ("self" for the test process), in KiB.
pub fn resident_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Open file descriptors of process `pid` ("self" for the test process).
pub fn open_fds(pid: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64
}

// ---- the process-wide counters ----

/// The gateway's metrics and its Dropbox retry count are process-wide, and every in-process
/// gateway moves them. Each bench holds this lock shared; a test that reads those counters
/// holds it alone, so that what moved them during the test was its own bench.
static PROCESS_COUNTERS: LazyLock<Arc<RwLock<()>>> = LazyLock::new(|| Arc::new(RwLock::new(())));

/// Held while an in-process gateway may move the process-wide counters.
pub enum CountersGuard {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] OwnedRwLockWriteGuard<()>),
}

/// For a gateway that may move the counters. A test must not wait for this while it holds a
/// guard already (a bench still alive): a test waiting to be alone would queue between them.
pub async fn share_process_counters() -> CountersGuard {
    CountersGuard::Shared(PROCESS_COUNTERS.clone().read_owned().await)
}

/// For a test that reads the counters: it waits until no other gateway runs in the process.
pub async fn use_process_counters_alone() -> CountersGuard {
    CountersGuard::Alone(PROCESS_COUNTERS.clone().write_owned().await)
}
