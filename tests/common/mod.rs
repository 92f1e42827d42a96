//! The test bench: a real emulator and a real gateway on free loopback ports, and the real
//! OpenSSH `sftp`/`scp` binaries driving them with generated keys.
//!
//! What a test checks is read back from the emulator's own API (files/get_metadata,
//! files/download), never through the gateway under test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use dropbox_emulator::{demo_credentials, Emulator, EmulatorConfig};
use dropgate::config::Config;
use dropgate::gateway::Gateway;
use dropgate::ssh::host_key;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub emulator: Emulator,
    pub gateway: Gateway,
    http: reqwest::Client,
}

/// One SFTP user of the bench: name, private key file, Dropbox root.
pub struct TestUser {
    pub name: &'static str,
    pub key: PathBuf,
    pub root: &'static str,
}

pub struct BenchOptions {
    pub page_size: usize,
    /// Extra lines for the `[upload]` table of the gateway config.
    pub upload_settings: String,
    /// Extra lines for the `[server]` table of the gateway config.
    pub server_settings: String,
    /// The whole gateway config instead of the default one, made from the bench dir and the
    /// emulator's base URL (see [`bench_server_config`] for the parts the bench relies on).
    pub config: Option<ConfigMaker>,
}

/// Makes a gateway config from the bench dir and the emulator's base URL.
pub type ConfigMaker = Box<dyn Fn(&Path, &str) -> String + Send + Sync>;

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            page_size: 500,
            upload_settings: String::new(),
            server_settings: String::new(),
            config: None,
        }
    }
}

pub const USERS: [(&str, &str); 2] = [("alice", "/alice"), ("bob", "/bob")];

impl Bench {
    pub async fn start() -> Bench {
        Bench::start_with(BenchOptions::default()).await
    }

    pub async fn start_with(options: BenchOptions) -> Bench {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("dropgate=debug")
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(EmulatorConfig {
            root: dir.path().join("dropbox"),
            listen: "127.0.0.1:0".parse().unwrap(),
            page_size: options.page_size,
        })
        .await
        .unwrap();
        for (name, _) in USERS {
            host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
        }
        let config_path = dir.path().join("dropgate.toml");
        let config_text = match &options.config {
            Some(make) => make(dir.path(), &emulator.base_url()),
            None => gateway_config(dir.path(), &emulator, &options),
        };
        std::fs::write(&config_path, config_text).unwrap();
        let config = Config::load(&config_path).unwrap();
        let gateway = Gateway::start(&config).await.unwrap();
        let known_hosts = format!(
            "[127.0.0.1]:{} {}\n",
            gateway.addr().port(),
            std::fs::read_to_string(dir.path().join("host_key.pub"))
                .unwrap()
                .trim()
        );
        std::fs::write(dir.path().join("known_hosts"), known_hosts).unwrap();
        Bench {
            dir,
            emulator,
            gateway,
            http: reqwest::Client::new(),
        }
    }

    pub fn user(&self, name: &'static str) -> TestUser {
        let root = USERS.iter().find(|(n, _)| *n == name).unwrap().1;
        TestUser {
            name,
            key: self.dir.path().join(name),
            root,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ssh_options(&self, user: &TestUser) -> Vec<String> {
        vec![
            "-i".into(),
            user.key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!(
                "UserKnownHostsFile={}",
                self.dir.path().join("known_hosts").display()
            ),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// Runs `sftp -b -` with `commands` as the batch; the working directory is the bench dir.
    pub async fn sftp(&self, user: &TestUser, commands: &str) -> Output {
        let batch = self.dir.path().join("batch");
        std::fs::write(&batch, commands).unwrap();
        let mut args = self.ssh_options(user);
        args.extend([
            "-P".into(),
            self.gateway.addr().port().to_string(),
            "-b".into(),
            batch.display().to_string(),
            format!("{}@127.0.0.1", user.name),
        ]);
        self.run("sftp", &args).await
    }

    /// Like [`Bench::sftp`] but the batch must succeed; returns stdout.
    pub async fn sftp_ok(&self, user: &TestUser, commands: &str) -> String {
        let out = self.sftp(user, commands).await;
        assert!(
            out.status.success(),
            "sftp batch failed:\n{commands}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `scp` with `args` after the connection options (remote paths as `host:path`).
    pub async fn scp(&self, user: &TestUser, args: &[String]) -> Output {
        let mut all = self.ssh_options(user);
        all.extend(["-P".into(), self.gateway.addr().port().to_string()]);
        all.extend(args.iter().cloned());
        self.run("scp", &all).await
    }

    /// `user@127.0.0.1:path` for scp.
    pub fn remote(&self, user: &TestUser, path: &str) -> String {
        format!("{}@127.0.0.1:{path}", user.name)
    }

    pub async fn ssh(&self, user: &TestUser, command: &str) -> Output {
        let mut args = self.ssh_options(user);
        args.extend([
            "-p".into(),
            self.gateway.addr().port().to_string(),
            format!("{}@127.0.0.1", user.name),
            command.into(),
        ]);
        self.run("ssh", &args).await
    }

    async fn run(&self, program: &str, args: &[String]) -> Output {
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(std::time::Duration::from_secs(300), child)
            .await
            .unwrap_or_else(|_| panic!("{program} did not finish within 300 s"))
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    // ---- the emulator's own API, as the source of truth ----

    async fn rpc(&self, route: &str, arg: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/2/{route}", self.emulator.base_url()))
            .bearer_auth(demo_credentials::ACCESS_TOKEN)
            .json(&arg)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// files/get_metadata in the emulator, or None if the path does not exist.
    pub async fn dropbox_metadata(&self, path: &str) -> Option<Value> {
        let (status, body) = self
            .rpc("files/get_metadata", json!({ "path": path }))
            .await;
        match status {
            200 => Some(body),
            409 => None,
            other => panic!("get_metadata {path}: HTTP {other}: {body}"),
        }
    }

    /// The bytes the emulator holds at `path`.
    pub async fn dropbox_download(&self, path: &str) -> Vec<u8> {
        let arg = serde_json::to_string(&json!({ "path": path })).unwrap();
        let response = self
            .http
            .post(format!("{}/2/files/download", self.emulator.base_url()))
            .bearer_auth(demo_credentials::ACCESS_TOKEN)
            .header("Dropbox-API-Arg", ascii_json(&arg))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "download {path}");
        response.bytes().await.unwrap().to_vec()
    }

    /// Stores a file directly in the emulator (test setup that bypasses the gateway).
    pub async fn dropbox_upload(&self, path: &str, data: Vec<u8>) {
        let arg = serde_json::to_string(&json!({ "path": path, "mode": "overwrite" })).unwrap();
        let response = self
            .http
            .post(format!("{}/2/files/upload", self.emulator.base_url()))
            .bearer_auth(demo_credentials::ACCESS_TOKEN)
            .header("Dropbox-API-Arg", ascii_json(&arg))
            .header("Content-Type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "upload {path}");
    }

    /// Names in a Dropbox folder, following every page.
    pub async fn dropbox_list(&self, path: &str) -> Vec<String> {
        let (status, mut page) = self
            .rpc(
                "files/list_folder",
                json!({ "path": path, "recursive": false }),
            )
            .await;
        assert_eq!(status, 200, "list_folder {path}: {page}");
        let mut names = Vec::new();
        loop {
            for entry in page["entries"].as_array().unwrap() {
                names.push(entry["name"].as_str().unwrap().to_string());
            }
            if page["has_more"] != json!(true) {
                return names;
            }
            let cursor = page["cursor"].clone();
            page = self
                .rpc("files/list_folder/continue", json!({ "cursor": cursor }))
                .await
                .1;
        }
    }

    /// Request counts per route since the emulator started.
    pub async fn emulator_stats(&self) -> Value {
        self.http
            .get(format!("{}/__emulator/stats", self.emulator.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn gateway_config(dir: &Path, emulator: &Emulator, options: &BenchOptions) -> String {
    let mut users = String::new();
    for (name, root) in USERS {
        users.push_str(&format!(
            "[[users]]\nname = \"{name}\"\naccount = \"main\"\nroot = \"{root}\"\n\
             authorized_keys_file = \"{}\"\n\n",
            dir.join(format!("{name}.pub")).display()
        ));
    }
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
host_key = "{host_key}"
{server_settings}

[upload]
spool_dir = "{spool}"
{upload_settings}

[[accounts]]
name = "main"
api_url = "{url}"
app_key = "{app_key}"
app_secret = "{app_secret}"
refresh_token = "{refresh_token}"

{users}"#,
        host_key = dir.join("host_key").display(),
        spool = dir.join("spool").display(),
        upload_settings = options.upload_settings,
        server_settings = options.server_settings,
        url = emulator.base_url(),
        app_key = demo_credentials::APP_KEY,
        app_secret = demo_credentials::APP_SECRET,
        refresh_token = demo_credentials::REFRESH_TOKEN,
    )
}

/// JSON for an HTTP header: every non-ASCII character as \uXXXX (UTF-16, surrogate pairs).
/// Written here independently of dropgate's own encoder, which is under test elsewhere.
pub fn ascii_json(json: &str) -> String {
    let mut out = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Dropbox's content_hash, computed independently of dropgate's implementation.
pub fn content_hash(data: &[u8]) -> String {
    let mut overall = Sha256::new();
    for block in data.chunks(4 * 1024 * 1024) {
        overall.update(Sha256::digest(block));
    }
    hex::encode(overall.finalize())
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---- additions for the upload and client tests (issue 3) ----

/// Upload-related request counts, read from `GET /__emulator/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRequests {
    /// `files/upload`: single-request uploads.
    pub upload: u64,
    pub session_start: u64,
    pub session_append: u64,
    pub session_finish: u64,
}

impl UploadRequests {
    pub fn from_stats(stats: &Value) -> UploadRequests {
        UploadRequests {
            upload: request_count(stats, "files/upload"),
            session_start: request_count(stats, "files/upload_session/start"),
            session_append: request_count(stats, "files/upload_session/append_v2")
                + request_count(stats, "files/upload_session/append"),
            session_finish: request_count(stats, "files/upload_session/finish"),
        }
    }

    /// Requests that could have stored a file: files/upload and upload_session/finish.
    pub fn commits(&self) -> u64 {
        self.upload + self.session_finish
    }

    /// Every upload-session request (start, append, finish).
    pub fn session_requests(&self) -> u64 {
        self.session_start + self.session_append + self.session_finish
    }
}

/// How many requests of `route` (e.g. `files/upload`) a stats answer counts.
pub fn request_count(stats: &Value, route: &str) -> u64 {
    stats["requests"][route].as_u64().unwrap_or(0)
}

impl Bench {
    /// The gateway's SSH port.
    pub fn port(&self) -> u16 {
        self.gateway.addr().port()
    }

    /// The known_hosts file that holds the gateway's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The ssh options every OpenSSH client of the bench uses (key, known hosts, batch mode).
    pub fn ssh_args(&self, user: &TestUser) -> Vec<String> {
        self.ssh_options(user)
    }

    /// The spool folder of the gateway (`[upload] spool_dir`).
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
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
    pub async fn wait_for_empty_spool(&self, limit: std::time::Duration) {
        let mut left = Vec::new();
        let emptied = poll_until(limit, || {
            left = self.spool_files();
            std::future::ready(left.is_empty())
        })
        .await;
        assert!(emptied, "spool files still there after {limit:?}: {left:?}");
    }

    /// An `sftp -b BATCH` command with `commands` as the batch and `extra_args` before the
    /// destination, not yet started: the working directory is the bench dir, stdin is null,
    /// output is piped, and it runs in a process group of its own (its pid is the group id), so
    /// that a test can kill sftp together with its ssh child.
    pub fn sftp_command(
        &self,
        user: &TestUser,
        commands: &str,
        extra_args: &[&str],
    ) -> tokio::process::Command {
        let batch = self
            .dir
            .path()
            .join(format!("batch-{}", rand::random::<u32>()));
        std::fs::write(&batch, commands).unwrap();
        let mut command = tokio::process::Command::new("sftp");
        command
            .args(self.ssh_options(user))
            .args(["-P".to_string(), self.port().to_string()])
            .args(extra_args)
            .arg("-b")
            .arg(&batch)
            .arg(format!("{}@127.0.0.1", user.name))
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command
    }

    /// Upload-related request counts since the emulator started or its stats were reset.
    pub async fn upload_requests(&self) -> UploadRequests {
        UploadRequests::from_stats(&self.emulator_stats().await)
    }

    /// `DELETE /__emulator/stats`: request counts start again from zero.
    pub async fn reset_emulator_stats(&self) {
        let response = self
            .http
            .delete(format!("{}/__emulator/stats", self.emulator.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "resetting the emulator's stats");
    }

    /// `POST /__emulator/faults` with these rules (replacing any earlier ones).
    pub async fn set_emulator_faults(&self, rules: Value) {
        let response = self
            .http
            .post(format!("{}/__emulator/faults", self.emulator.base_url()))
            .json(&json!({ "rules": rules }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "setting emulator faults: {text}");
    }

    /// `DELETE /__emulator/faults`.
    pub async fn clear_emulator_faults(&self) {
        let response = self
            .http
            .delete(format!("{}/__emulator/faults", self.emulator.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "clearing emulator faults");
    }
}

/// Calls `check` every 20 ms until it answers true (→ true) or `limit` has passed (→ false).
pub async fn poll_until<F, Fut>(limit: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Writes `len` random bytes to `path` without holding them all in memory; returns their
/// Dropbox content_hash.
pub fn write_random_file(path: &Path, len: u64) -> String {
    use rand::RngCore;
    use std::io::Write;
    const BLOCK: u64 = 4 * 1024 * 1024;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut overall = Sha256::new();
    let mut block = vec![0u8; BLOCK as usize];
    let mut written = 0;
    while written < len {
        let n = BLOCK.min(len - written) as usize;
        rand::thread_rng().fill_bytes(&mut block[..n]);
        overall.update(Sha256::digest(&block[..n]));
        file.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
    hex::encode(overall.finalize())
}

/// Sets a local file's modification time to `unix_secs`.
pub fn set_local_mtime(path: &Path, unix_secs: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Everything a client printed, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

/// How long one client run may take.
pub const CLIENT_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs a client to completion within [`CLIENT_LIMIT`], capturing its output.
pub async fn run_bounded(mut command: tokio::process::Command, what: &str) -> Output {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(CLIENT_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// The python3 that has paramiko: the first `python3` on PATH, else Debian's.
pub fn python_with_paramiko() -> String {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = std::process::Command::new(python)
            .args(["-c", "import paramiko"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.to_string();
        }
    }
    panic!(
        "paramiko is not installed for python3: these tests need it \
         (python3 -m pip install paramiko, or Debian's python3-paramiko; .ci/run installs it)"
    );
}

// ---- additions for the account tests (issue 4) ----

/// The `[server]` and `[upload]` tables every bench config needs (host key, known port, spool),
/// for tests that write the rest of the config themselves.
pub fn bench_server_config(dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nhost_key = \"{}\"\n\n[upload]\nspool_dir = \"{}\"\n\n",
        dir.join("host_key").display(),
        dir.join("spool").display()
    )
}

/// A `[[users]]` table for one of the bench's key pairs ([`USERS`] names).
pub fn bench_user_config(dir: &Path, name: &str, account: &str, root: &str) -> String {
    format!(
        "[[users]]\nname = \"{name}\"\naccount = \"{account}\"\nroot = \"{root}\"\n\
         authorized_keys_file = \"{}\"\n\n",
        dir.join(format!("{name}.pub")).display()
    )
}

// ---- additions for users, permissions, limits and the audit log (issue 5) ----

/// A [`ConfigMaker`] for the bench's usual config (one account, alice and bob with their keys)
/// with `user_lines` added to the named users' tables and `extra` appended at the end (whole
/// tables such as `[limits]` or `[audit]`; `{dir}` in it becomes the bench dir).
pub fn config_with(user_lines: Vec<(&'static str, String)>, extra: String) -> ConfigMaker {
    Box::new(move |dir: &Path, url: &str| {
        let mut text = bench_server_config(dir);
        text.push_str(&format!(
            "[[accounts]]\nname = \"main\"\napi_url = \"{url}\"\napp_key = \"{}\"\n\
             app_secret = \"{}\"\nrefresh_token = \"{}\"\n\n",
            demo_credentials::APP_KEY,
            demo_credentials::APP_SECRET,
            demo_credentials::REFRESH_TOKEN,
        ));
        for (name, root) in USERS {
            text.push_str(&bench_user_config(dir, name, "main", root));
            for (user, line) in &user_lines {
                if *user == name {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            text.push('\n');
        }
        text.push_str(&extra.replace("{dir}", &dir.display().to_string()));
        text
    })
}

/// Runs a paramiko script connected as `user` with `password` (password login only: no keys,
/// no agent). The script's `result` dict is printed as JSON; a failed login sets
/// `result["login"]` to the exception's name.
pub async fn paramiko_with_password(
    bench: &Bench,
    user: &str,
    password: &str,
    script: &str,
) -> Value {
    let program = String::from(
        r#"
import json, sys
import paramiko
host, port, user, password, known_hosts, script = sys.argv[1:7]
result = {}
client = paramiko.SSHClient()
client.load_host_keys(known_hosts)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
try:
    client.connect(host, port=int(port), username=user, password=password, look_for_keys=False,
                   allow_agent=False, timeout=30)
    result["login"] = "ok"
except Exception as e:
    result["login"] = type(e).__name__
if result["login"] == "ok":
    sftp = client.open_sftp()
    exec(script)
print(json.dumps(result))
"#,
    );
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command
        .args(["-c", &program, "127.0.0.1"])
        .arg(bench.port().to_string())
        .arg(user)
        .arg(password)
        .arg(bench.known_hosts())
        .arg(script)
        .current_dir(bench.path(""));
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(
        out.status.success(),
        "paramiko script failed:\n{}",
        output_text(&out)
    );
    serde_json::from_str(stdout(&out).trim()).expect("the script prints JSON")
}

/// Runs `script` (Python, with `sftp` connected as alice) and returns the JSON it prints.
/// `send(local, remote)` uploads without paramiko's pipelining, so a refused WRITE raises at
/// once with the server's message (paramiko's own `put` only reports a size mismatch).
pub async fn paramiko_as_alice(bench: &Bench, script: &str) -> Value {
    let alice = bench.user("alice");
    let program = format!(
        r#"
import json, sys
import paramiko
host, port, user, key, known_hosts = sys.argv[1:6]
client = paramiko.SSHClient()
client.load_host_keys(known_hosts)
client.set_missing_host_key_policy(paramiko.RejectPolicy())
client.connect(host, port=int(port), username=user, key_filename=key, look_for_keys=False,
               allow_agent=False, timeout=30)
sftp = client.open_sftp()
def attempt(action):
    try:
        action()
        return "ok"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
def send(local, remote):
    with open(local, "rb") as src, sftp.open(remote, "w") as dst:
        while True:
            block = src.read(32768)
            if not block:
                break
            dst.write(block)
result = {{}}
{script}
print(json.dumps(result))
"#
    );
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command
        .args(["-c", &program, "127.0.0.1"])
        .arg(bench.port().to_string())
        .arg(alice.name)
        .arg(&alice.key)
        .arg(bench.known_hosts())
        .current_dir(bench.path(""));
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(
        out.status.success(),
        "paramiko script failed:\n{}",
        output_text(&out)
    );
    serde_json::from_str(stdout(&out).trim()).expect("the script prints JSON")
}

// ---- additions for certificates, PROXY protocol and reload (issue 5) ----

/// `maker`'s config with `lines` added to its `[server]` table.
pub fn with_server_lines(maker: ConfigMaker, lines: String) -> ConfigMaker {
    Box::new(move |dir: &Path, url: &str| {
        maker(dir, url).replacen("[server]\n", &format!("[server]\n{lines}\n"), 1)
    })
}

/// `maker`'s config, with `options` (authorized_keys options such as `from="10.0.0.1"`) written
/// before the named users' keys in their authorized_keys files.
pub fn with_key_options(
    maker: ConfigMaker,
    options: Vec<(&'static str, &'static str)>,
) -> ConfigMaker {
    Box::new(move |dir: &Path, url: &str| {
        for (user, user_options) in &options {
            let path = dir.join(format!("{user}.pub"));
            let key = std::fs::read_to_string(&path).unwrap();
            // With a comment, as ssh-keygen writes keys.
            let line = format!("{user_options} {} {user}@test\n", key.trim());
            std::fs::write(&path, line).unwrap();
        }
        maker(dir, url)
    })
}

/// Creates an ed25519 key pair with `ssh-keygen` at `path` and `path.pub`.
pub fn ssh_keygen(path: &Path) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen -f {}", path.display());
}

impl Bench {
    /// Runs `sftp -b -` like [`Bench::sftp`], with `extra` options before the destination.
    pub async fn sftp_with(&self, user: &TestUser, extra: &[String], commands: &str) -> Output {
        let batch = self.dir.path().join("batch");
        std::fs::write(&batch, commands).unwrap();
        let mut args = self.ssh_options(user);
        args.extend(extra.iter().cloned());
        args.extend([
            "-P".into(),
            self.port().to_string(),
            "-b".into(),
            batch.display().to_string(),
            format!("{}@127.0.0.1", user.name),
        ]);
        self.run("sftp", &args).await
    }
}

// ---- for tests that run the `dropgate` binary itself ----

/// A loopback port nothing listens on right now, for a process that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An emulator of its own, storing under `dir/dropbox`, on a free port.
pub async fn start_emulator(dir: &Path) -> Emulator {
    Emulator::start(EmulatorConfig {
        root: dir.join("dropbox"),
        listen: "127.0.0.1:0".parse().unwrap(),
        page_size: 500,
    })
    .await
    .unwrap()
}

/// The `dropgate` binary under test, logging at `rust_log`, its output piped, killed with the
/// test.
pub fn dropgate_binary(rust_log: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropgate"));
    command
        .env("RUST_LOG", rust_log)
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
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
