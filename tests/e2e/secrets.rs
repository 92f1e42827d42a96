//! Secrets stay secret: the real `dropgate` binary, run with debug logging, never prints a
//! token, the app secret or private key material; the files that hold secrets are created
//! 0600; and a host key that others can read is refused at start.
//!
//! The session covers what handles secrets: `dropgate auth` (code exchange, token file),
//! `dropgate keygen` (user key), `dropgate serve` creating its host key, signing in with the
//! refresh token, refreshing again after Dropbox expires the access token, and an SFTP session
//! with put, get and ls. Everything the binaries write to stdout and stderr is searched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use dropbox_emulator::demo_credentials as demo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const SUFFIX: &str = "?command=register_dropbox_api";
/// Every access token the emulator issues starts with this.
const ACCESS_TOKEN_PREFIX: &str = "sl.emu.";

/// The binary under test, logging everything at debug level (all crates, not only ours).
fn dropgate() -> tokio::process::Command {
    let mut command = dropgate_binary("debug");
    command.stdin(Stdio::null());
    command
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `dropgate auth` through the emulator's authorize page and dropgate's redirect listener;
/// returns everything it printed.
async fn register(base: &str, token_file: &Path) -> String {
    let redirect = format!("http://127.0.0.1:{}/{SUFFIX}", free_port());
    let mut child = dropgate()
        .args(["auth", "--account", "main", "--app-key", demo::APP_KEY])
        .args(["--app-secret", demo::APP_SECRET])
        .args(["--redirect-url", &redirect, "--api-url", base])
        .arg("--token-file")
        .arg(token_file)
        .args(["--timeout", "60"])
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("http") {
                return line;
            }
        }
        panic!("dropgate auth printed no authorize URL:\n{printed}");
    })
    .await
    .expect("no authorize URL within 30 s");
    // The browser: the authorize page approves at once and redirects to dropgate's listener.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200, "the redirect was not taken");
    let (ok, rest, stderr) = finish_command(child, stdout).await;
    printed.push_str(&rest);
    assert!(ok, "dropgate auth failed:\n{printed}\n{stderr}");
    printed + &stderr
}

async fn keygen(path: &Path) -> String {
    let out = dropgate().arg("keygen").arg(path).output().await.unwrap();
    assert!(out.status.success(), "keygen: {}", output_text(&out));
    format!("{}{}", stdout(&out), stderr(&out))
}

/// `dropgate serve` on `port` with one account (its credentials in `token_file`) and alice.
fn gateway_config(dir: &Path, port: u16, base: &str, token_file: &Path) -> GatewayConfig {
    let mut config = GatewayConfig::without_accounts(dir);
    config.listen_on(port);
    config
        .accounts
        .push(Account::from_token_file("main", base, token_file));
    config
        .users
        .push(User::with_bench_key(dir, "alice", "main", "/alice"));
    config
}

/// A running `dropgate serve` whose stderr is collected.
struct Served {
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
}

impl Served {
    async fn start(config: &Path, port: u16) -> Served {
        let mut child = dropgate()
            .args(["serve", "--config"])
            .arg(config)
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let listening = wait_until_listening(port).await;
        assert!(listening, "dropgate serve did not listen on {port}");
        Served { child, log }
    }

    /// Stops the server; returns everything it logged.
    async fn stop(mut self) -> String {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out).await;
        }
        out + &self.log.await.unwrap()
    }
}

async fn sftp(dir: &Path, port: u16, commands: &str) -> std::process::Output {
    let batch = dir.join("batch");
    std::fs::write(&batch, commands).unwrap();
    let mut command = tokio::process::Command::new("sftp");
    command
        .arg("-i")
        .arg(dir.join("alice"))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .args(["-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice@127.0.0.1")
        .current_dir(dir);
    run_bounded(command, "sftp").await
}

/// Base64 lines of an OpenSSH private key file: the key material as it sits on disk.
fn key_material(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// The ed25519 private seed, in hex and in base64: the key material in other spellings.
fn key_seed_spellings(path: &Path) -> Vec<String> {
    use base64::Engine;
    let key = russh::keys::PrivateKey::read_openssh_file(path).unwrap();
    let pair = key.key_data().ed25519().expect("an ed25519 key");
    let seed = pair.private.to_bytes();
    vec![
        hex::encode(seed),
        base64::engine::general_purpose::STANDARD.encode(seed),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_with_debug_logging_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let emulator = start_emulator(dir).await;
    let base = emulator.base_url();

    // Registration writes the token file 0600.
    let token_file = dir.join("keys/main.token");
    let mut printed = register(&base, &token_file).await;
    assert_eq!(mode(&token_file), 0o600, "token file");
    let saved: toml::Table =
        toml::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    let refresh_token = saved["refresh_token"].as_str().unwrap().to_string();

    // The user's key pair: private 0600, public 0644.
    printed += &keygen(&dir.join("alice")).await;
    assert_eq!(mode(&dir.join("alice")), 0o600, "user key");
    assert_eq!(mode(&dir.join("alice.pub")), 0o644, "user public key");

    // The server creates its host key 0600 on first start.
    let port = free_port();
    let config = dir.join("dropgate.toml");
    gateway_config(dir, port, &base, &token_file).write(&config);
    let served = Served::start(&config, port).await;
    let host_key = dir.join("host_key");
    assert_eq!(mode(&host_key), 0o600, "host key");
    let public = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", public.trim()),
    )
    .unwrap();

    // A session: put, ls, get; then Dropbox expires the access token and another session runs
    // on a refreshed one.
    let data = random_bytes(100_000);
    std::fs::write(dir.join("up.bin"), &data).unwrap();
    let first = sftp(dir, port, "put up.bin\nls -l\nget up.bin down.bin\n").await;
    assert!(first.status.success(), "{}", output_text(&first));
    assert_eq!(std::fs::read(dir.join("down.bin")).unwrap(), data);
    reqwest::Client::new()
        .post(format!("{base}/__emulator/expire_tokens"))
        .send()
        .await
        .unwrap();
    let second = sftp(dir, port, "ls\nget up.bin again.bin\nput up.bin copy.bin\n").await;
    assert!(second.status.success(), "{}", output_text(&second));
    let log = served.stop().await;
    let everything = format!(
        "{printed}{log}{}{}",
        output_text(&first),
        output_text(&second)
    );

    // Debug logging was on and covered the refreshes and the Dropbox calls.
    assert!(log.contains("DEBUG"), "no debug output:\n{log}");
    assert!(log.contains("dropbox token refresh"), "no refresh logged");
    assert!(log.contains("files/upload"), "no upload logged");
    let refreshes = log.matches("dropbox token refresh").count();
    assert!(refreshes >= 2, "the expired token was not refreshed");

    let mut secrets: Vec<(String, &str)> = vec![
        (refresh_token, "the refresh token"),
        (demo::APP_SECRET.to_string(), "the app secret"),
        (demo::REFRESH_TOKEN.to_string(), "the demo refresh token"),
        (demo::ACCESS_TOKEN.to_string(), "the demo access token"),
        (ACCESS_TOKEN_PREFIX.to_string(), "an access token"),
    ];
    for key in [host_key.clone(), dir.join("alice")] {
        for line in key_material(&key) {
            secrets.push((line, "private key material"));
        }
        for spelling in key_seed_spellings(&key) {
            secrets.push((spelling, "a private key seed"));
        }
    }
    println!(
        "searched {} bytes of output ({} log lines) for {} secrets",
        everything.len(),
        log.lines().count(),
        secrets.len()
    );
    for (secret, what) in &secrets {
        if let Some(at) = everything.find(secret.as_str()) {
            let from = at.saturating_sub(200);
            panic!(
                "{what} appears in the output:\n…{}…",
                &everything[from..(at + 200).min(everything.len())]
            );
        }
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_host_key_that_others_can_read_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let emulator = start_emulator(dir).await;
    keygen(&dir.join("alice")).await;
    keygen(&dir.join("host_key")).await;
    std::fs::set_permissions(dir.join("host_key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let token_file: PathBuf = dir.join("main.token");
    register(&emulator.base_url(), &token_file).await;
    let config = dir.join("dropgate.toml");
    let port = free_port();
    gateway_config(dir, port, &emulator.base_url(), &token_file).write(&config);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        dropgate().args(["serve", "--config"]).arg(&config).output(),
    )
    .await
    .expect("dropgate serve neither started nor stopped")
    .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "it started:\n{text}");
    assert!(text.contains("readable by others"), "{text}");
    assert!(text.contains("chmod 600"), "{text}");
    let printed = key_material(&dir.join("host_key"));
    assert!(printed.iter().all(|line| !text.contains(line.as_str())));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_config_syntax_error_names_its_line_but_never_echoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dropgate.toml");
    // An unquoted token: TOML cannot parse it, and the line is a secret.
    let token = "sl.u.UNQUOTED-TOKEN-0123456789";
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n\n[[accounts]]\nname = \"main\"\n\
             access_token = {token}\n",
            free_port()
        ),
    )
    .unwrap();
    for command in ["serve", "check-config"] {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            dropgate().args([command, "--config"]).arg(&config).output(),
        )
        .await
        .expect("dropgate neither started nor stopped")
        .unwrap();
        let text = output_text(&out);
        assert!(!out.status.success(), "{command} accepted it:\n{text}");
        assert!(text.contains("line 6, column 16"), "{command}:\n{text}");
        assert!(!text.contains("UNQUOTED-TOKEN"), "{command}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_clients_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let emulator = start_emulator(dir).await;
    let base = emulator.base_url();
    let token_file = dir.join("keys/main.token");
    register(&base, &token_file).await;
    keygen(&dir.join("alice")).await;
    let port = free_port();
    let config = dir.join("dropgate.toml");
    gateway_config(dir, port, &base, &token_file).write(&config);
    let served = Served::start(&config, port).await;

    // A file name with a line break (the rest looks like a log line of its own) and a
    // terminal escape, uploaded with paramiko (OpenSSH's sftp cannot type such a name).
    let script = r#"
import sys, paramiko
port, key = sys.argv[1:3]
client = paramiko.SSHClient()
client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
client.connect("127.0.0.1", port=int(port), username="alice", key_filename=key,
               look_for_keys=False, allow_agent=False, timeout=30)
sftp = client.open_sftp()
with sftp.open("x\nFORGED-LINE login accepted user=root \x1b[2Jcleared", "w") as f:
    f.write(b"hello")
client.close()
"#;
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command
        .args(["-c", script, &port.to_string()])
        .arg(dir.join("alice"));
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let log = served.stop().await;

    assert!(
        log.contains("upload committed"),
        "the upload was not logged:\n{log}"
    );
    assert!(
        log.lines().all(|line| !line.starts_with("FORGED-LINE")),
        "a file name started a log line of its own:\n{log}"
    );
    assert!(
        !log.contains("\u{1b}[2Jcleared"),
        "a raw escape reached the log"
    );
    assert!(
        log.contains("x\\nFORGED-LINE login accepted user=root \\u{1b}[2Jcleared"),
        "the name is not in the log, escaped:\n{log}"
    );
    emulator.shutdown().await;
}
