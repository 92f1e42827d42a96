//! SIGHUP reload end to end (issue 5): `dropgate serve` as a real process; a key added to a
//! user in the config file can log in once the process has had SIGHUP, and an upload that was
//! running when the signal came finishes and commits (sessions are not dropped).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    config_with, dropgate_binary, free_port, output_text, poll_until, ssh_keygen, start_emulator,
    write_random_file,
};
use dropgate::ssh::host_key;
use tokio::io::AsyncBufReadExt;

/// `sftp` as alice with `key`; `rate` limits it (Kbit/s) so that it is
/// still running later.
fn sftp(
    dir: &Path,
    port: u16,
    key: &Path,
    commands: &str,
    rate: Option<u32>,
) -> tokio::process::Command {
    let batch = dir.join(format!(
        "batch-{}",
        key.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&batch, commands).unwrap();
    let mut command = tokio::process::Command::new("sftp");
    command
        .arg("-i")
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(rate.map(|rate| format!("-l{rate}")))
        .args(["-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice@127.0.0.1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Collects the server's log lines as they come.
fn collect_log(stderr: tokio::process::ChildStderr) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_lets_a_new_key_in_and_keeps_running_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(dir.path()).await;
    for name in ["alice", "bob"] {
        host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
    }
    let new_key: PathBuf = dir.path().join("alice-laptop");
    ssh_keygen(&new_key);
    let port = free_port();
    let config = config_with(Vec::new(), String::new())(dir.path(), &emulator.base_url()).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let config_path = dir.path().join("dropgate.toml");
    std::fs::write(&config_path, &config).unwrap();

    let mut server = dropgate_binary("dropgate=info")
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = collect_log(server.stderr.take().unwrap());
    let listening = poll_until(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(listening, "dropgate serve did not start listening");
    let host_public = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    std::fs::write(
        dir.path().join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", host_public.trim()),
    )
    .unwrap();

    // The new key is not alice's yet.
    let out = sftp(dir.path(), port, &new_key, "ls\n", None)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        common::stderr(&out).contains("Permission denied"),
        "{}",
        output_text(&out)
    );

    // An upload as alice (her old key) that is still running when the signal comes.
    let hash = write_random_file(&dir.path().join("big.bin"), 8 * 1024 * 1024);
    let alice_key = dir.path().join("alice");
    let mut upload = sftp(
        dir.path(),
        port,
        &alice_key,
        "put big.bin big.bin\n",
        Some(16_000),
    )
    .spawn()
    .unwrap();
    let started = poll_until(Duration::from_secs(30), || {
        std::future::ready(log.lock().unwrap().contains("sftp session started"))
    })
    .await;
    assert!(started, "the upload never started");

    let key_line = std::fs::read_to_string(new_key.with_extension("pub")).unwrap();
    let alice_table = "name = \"alice\"\n";
    let updated = config.replacen(
        alice_table,
        &format!("{alice_table}authorized_keys = [\"{}\"]\n", key_line.trim()),
        1,
    );
    assert_ne!(updated, config);
    std::fs::write(&config_path, updated).unwrap();
    let pid = server.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let reloaded = poll_until(Duration::from_secs(10), || {
        std::future::ready(log.lock().unwrap().contains("reloaded users and keys"))
    })
    .await;
    assert!(reloaded, "no reload in the log:\n{}", log.lock().unwrap());
    assert!(
        upload.try_wait().unwrap().is_none(),
        "the upload ended before the reload; the test proves nothing"
    );

    let out = sftp(dir.path(), port, &new_key, "ls\n", None)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the new key after SIGHUP: {}",
        output_text(&out)
    );

    let out = tokio::time::timeout(Duration::from_secs(120), upload.wait_with_output())
        .await
        .expect("the upload did not finish")
        .unwrap();
    assert!(
        out.status.success(),
        "the running upload: {}",
        output_text(&out)
    );
    let stored =
        common::content_hash(&reqwest_download(&emulator.base_url(), "/alice/big.bin").await);
    assert_eq!(stored, hash);
    assert!(server.try_wait().unwrap().is_none(), "the server exited");
}

async fn reqwest_download(base_url: &str, path: &str) -> Vec<u8> {
    let arg = serde_json::json!({ "path": path }).to_string();
    let response = reqwest::Client::new()
        .post(format!("{base_url}/2/files/download"))
        .bearer_auth(dropbox_emulator::demo_credentials::ACCESS_TOKEN)
        .header("Dropbox-API-Arg", arg)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}
