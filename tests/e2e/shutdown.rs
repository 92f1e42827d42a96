//! Graceful shutdown end to end: `dropgate serve` as a real process gets SIGTERM in the middle
//! of an OpenSSH upload; it stops accepting connections at once, lets the upload finish and
//! commit, and only then exits, with status 0. An upload it has to abandon (the shutdown
//! timeout passes first) makes the exit status non-zero, so systemd marks the stop as failed.

use std::path::Path;
use std::time::Duration;

use crate::common::{
    output_text, poll_until, send_signal, wait_for_client, write_random_file, ServeDir,
};

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
    let served = ServeDir::new().await;
    let mut config = served.config();
    config.server.shutdown_timeout_secs = Some(60);
    let log = std::fs::File::create(served.path("gateway.log")).unwrap();
    let mut server = served.serve(&config, "dropgate=info", log.into()).await;
    let log = || std::fs::read_to_string(served.path("gateway.log")).unwrap_or_default();
    let port = served.port;

    // 24 MiB at about 40 Mbit/s: the upload takes about five seconds.
    let hash = write_random_file(&served.path("big.bin"), 24 * 1024 * 1024);
    let rate = vec!["-l".to_string(), "40000".to_string()];
    let upload = served
        .sftp_as_alice(&served.path("alice"), "put big.bin big.bin\n", &rate)
        .spawn()
        .unwrap();

    let spool = served.path("spool");
    let started = poll_until(Duration::from_secs(30), || {
        std::future::ready(spooled_bytes(&spool) > 1024 * 1024)
    })
    .await;
    assert!(started, "the upload never started");
    send_signal(&server, "TERM");

    // No new connections once the signal is in.
    let refused = poll_until(Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
    assert!(refused, "the listener still accepts after SIGTERM");

    let out = wait_for_client(upload, "the upload").await;
    assert!(
        out.status.success(),
        "{}\ngateway:\n{}",
        output_text(&out),
        log()
    );
    let status = tokio::time::timeout(Duration::from_secs(60), server.wait())
        .await
        .expect("dropgate did not exit after the upload")
        .unwrap();
    assert!(status.success(), "dropgate exited with {status}");

    // The file is in Dropbox, whole (read from the emulator itself).
    let meta = served.dropbox().metadata("/alice/big.bin").await.unwrap();
    assert_eq!(meta["content_hash"], hash.as_str(), "{meta}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_that_abandons_an_upload_exits_non_zero() {
    let served = ServeDir::new().await;
    let mut config = served.config();
    config.server.shutdown_timeout_secs = Some(1);
    let log = std::fs::File::create(served.path("gateway.log")).unwrap();
    let mut server = served.serve(&config, "dropgate=info", log.into()).await;
    let log = || std::fs::read_to_string(served.path("gateway.log")).unwrap_or_default();

    // 24 MiB at about 4 Mbit/s: nearly a minute, far beyond the one-second timeout.
    write_random_file(&served.path("big.bin"), 24 * 1024 * 1024);
    let rate = vec!["-l".to_string(), "4000".to_string()];
    let upload = served
        .sftp_as_alice(&served.path("alice"), "put big.bin big.bin\n", &rate)
        .spawn()
        .unwrap();
    let spool = served.path("spool");
    let started = poll_until(Duration::from_secs(30), || {
        std::future::ready(spooled_bytes(&spool) > 256 * 1024)
    })
    .await;
    assert!(started, "the upload never started");
    send_signal(&server, "TERM");

    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("dropgate did not exit after its shutdown timeout")
        .unwrap();
    assert!(
        !status.success(),
        "exited {status} although an upload was abandoned"
    );
    assert!(
        log().contains("1 open upload(s) abandoned, not stored in Dropbox"),
        "{}",
        log()
    );
    let out = wait_for_client(upload, "the cut-off upload").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    // Nothing of it reached Dropbox.
    assert!(served.dropbox().metadata("/alice/big.bin").await.is_none());
}
