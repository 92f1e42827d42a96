//! Graceful shutdown end to end (issue 5): `dropgate serve` as a real process gets SIGTERM in
//! the middle of an OpenSSH upload; it stops accepting connections at once, lets the upload
//! finish and commit, and only then exits, with status 0.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{
    config_with, dropgate_binary, free_port, output_text, poll_until, start_emulator,
    write_random_file,
};
use dropbox_emulator::demo_credentials;
use dropgate::ssh::host_key;
use serde_json::json;

/// Bytes of every file below the spool folder.
fn spooled_bytes(spool: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(meta) if meta.is_dir() => spooled_bytes(&e.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_an_upload_lets_it_commit_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(dir.path()).await;
    for name in ["alice", "bob"] {
        host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
    }
    let port = free_port();
    let config = config_with(Vec::new(), String::new())(dir.path(), &emulator.base_url()).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nshutdown_timeout_secs = 60"),
    );
    let config_path = dir.path().join("dropgate.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut server = dropgate_binary("dropgate=info")
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let listening = poll_until(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(listening, "dropgate serve did not start listening");
    let host_public = std::fs::read_to_string(dir.path().join("host_key.pub")).unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}\n", host_public.trim()),
    )
    .unwrap();

    // 24 MiB at about 40 Mbit/s: the upload takes about five seconds.
    let local = dir.path().join("big.bin");
    let hash = write_random_file(&local, 24 * 1024 * 1024);
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "put big.bin big.bin\n").unwrap();
    let upload = tokio::process::Command::new("sftp")
        .arg("-i")
        .arg(dir.path().join("alice"))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-l", "40000", "-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg("alice@127.0.0.1")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let spool = dir.path().join("spool");
    let started = poll_until(Duration::from_secs(30), || {
        std::future::ready(spooled_bytes(&spool) > 1024 * 1024)
    })
    .await;
    assert!(started, "the upload never started");
    let pid = server.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // No new connections once the signal is in.
    let refused = poll_until(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
    assert!(refused, "the listener still accepts after SIGTERM");

    let out = tokio::time::timeout(Duration::from_secs(120), upload.wait_with_output())
        .await
        .expect("the upload did not finish")
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let status = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("dropgate did not exit after the upload")
        .unwrap();
    assert!(status.success(), "dropgate exited with {status}");

    // The file is in Dropbox, whole (read from the emulator itself).
    let response = reqwest::Client::new()
        .post(format!("{}/2/files/get_metadata", emulator.base_url()))
        .bearer_auth(demo_credentials::ACCESS_TOKEN)
        .json(&json!({ "path": "/alice/big.bin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let meta: serde_json::Value = response.json().await.unwrap();
    assert_eq!(meta["content_hash"], hash.as_str(), "{meta}");
}
