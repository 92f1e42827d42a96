//! SIGHUP reload end to end: `dropgate serve` as a real process; a key added to a user in the
//! config file can log in once the process has had SIGHUP, and an upload that was running when
//! the signal came finishes and commits (sessions are not dropped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{
    content_hash, output_text, poll_until, send_signal, ssh_keygen, stderr, wait_for_client,
    write_random_file, ServeDir,
};
use tokio::io::AsyncBufReadExt;

/// `sftp` as alice with `key`; `rate` limits it (Kbit/s) so that it is still running later.
fn sftp(
    served: &ServeDir,
    key: &Path,
    commands: &str,
    rate: Option<u32>,
) -> tokio::process::Command {
    let limit: Vec<String> = rate.map(|rate| format!("-l{rate}")).into_iter().collect();
    served.sftp_as_alice(key, commands, &limit)
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
    let served = ServeDir::new().await;
    let new_key: PathBuf = served.path("alice-laptop");
    ssh_keygen(&new_key);
    let mut config = served.config();
    let mut server = served.serve(&config, "dropgate=info", Stdio::piped()).await;
    let log = collect_log(server.stderr.take().unwrap());

    // The new key is not alice's yet.
    let out = sftp(&served, &new_key, "ls\n", None)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        output_text(&out)
    );

    // An upload as alice (her old key) that is still running when the signal comes.
    let hash = write_random_file(&served.path("big.bin"), 8 * 1024 * 1024);
    let alice_key = served.path("alice");
    let mut upload = sftp(&served, &alice_key, "put big.bin big.bin\n", Some(16_000))
        .spawn()
        .unwrap();
    let started = poll_until(Duration::from_secs(30), || {
        std::future::ready(log.lock().unwrap().contains("sftp session started"))
    })
    .await;
    assert!(started, "the upload never started");

    let key_line = std::fs::read_to_string(new_key.with_extension("pub")).unwrap();
    config
        .user("alice")
        .authorized_keys
        .push(key_line.trim().to_string());
    config.write(&served.config_path());
    send_signal(&server, "HUP");
    let reloaded = poll_until(Duration::from_secs(10), || {
        std::future::ready(log.lock().unwrap().contains("reloaded users and keys"))
    })
    .await;
    assert!(reloaded, "no reload in the log:\n{}", log.lock().unwrap());
    assert!(
        upload.try_wait().unwrap().is_none(),
        "the upload ended before the reload; the test proves nothing"
    );

    let out = sftp(&served, &new_key, "ls\n", None)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the new key after SIGHUP: {}",
        output_text(&out)
    );

    let out = wait_for_client(upload, "the upload").await;
    assert!(
        out.status.success(),
        "the running upload: {}",
        output_text(&out)
    );
    let stored = content_hash(&served.dropbox().download("/alice/big.bin").await);
    assert_eq!(stored, hash);
    assert!(server.try_wait().unwrap().is_none(), "the server exited");
}
