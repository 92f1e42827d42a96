//! The gateway's live activity (what the admin page shows) while real OpenSSH clients work:
//! a slow `sftp put` shows its connection (user, client version) and one upload receiving with
//! growing bytes and a rate, and afterwards nothing in progress, its upload and login lines
//! among the recent events and the user's last login; a slow `get` shows as sending until the
//! client is killed, then the transfer and the connection are gone and the download is
//! `interrupted`; a refused login leaves no connection and no last login. The benches write no audit log: the
//! activity does not depend on one.

use std::process::Output;
use std::time::Duration;

use dropgate::activity::{ActivitySnapshot, LiveConnection};
use dropgate::transfers::{Direction, LiveTransfer, State};
use tokio::process::Child;

use crate::common::{
    output_text, poll_until, random_bytes, wait_for_client, write_random_file, Bench, TestUser,
};

const MIB: u64 = 1024 * 1024;
/// `sftp -l` in Kbit/s: about 10 MB/s, so 64 MiB take some 6 s.
const LIMIT_KBIT: &str = "80000";
const LIMIT_BYTES_PER_SEC: u64 = 80_000 * 1024 / 8;

/// Looks at the activity every 20 ms until `wanted` holds, within 30 s; the snapshot that
/// answered, or a panic with the last one.
async fn activity_until(
    bench: &Bench,
    what: &str,
    wanted: impl Fn(&ActivitySnapshot) -> bool,
) -> ActivitySnapshot {
    let activity = bench.gateway.activity();
    let found = poll_until(Duration::from_secs(30), || {
        std::future::ready(wanted(&activity.snapshot()))
    })
    .await;
    let snapshot = activity.snapshot();
    assert!(found, "{what} within 30 s; last seen: {snapshot:#?}");
    snapshot
}

/// The one transfer in progress, once it has moved at least `bytes`.
async fn transfer_past(bench: &Bench, bytes: u64) -> (LiveTransfer, ActivitySnapshot) {
    let snapshot = activity_until(bench, &format!("a transfer past {bytes} bytes"), |s| {
        s.transfers.iter().any(|t| t.bytes >= bytes)
    })
    .await;
    assert_eq!(snapshot.transfers.len(), 1, "{snapshot:#?}");
    (snapshot.transfers[0].clone(), snapshot)
}

fn connection_of<'a>(
    snapshot: &'a ActivitySnapshot,
    transfer: &LiveTransfer,
) -> &'a LiveConnection {
    snapshot
        .connections
        .iter()
        .find(|c| c.conn == transfer.conn)
        .unwrap_or_else(|| panic!("no connection {} in {snapshot:#?}", transfer.conn))
}

fn assert_openssh_alice(connection: &LiveConnection) {
    assert_eq!(connection.user.as_deref(), Some("alice"));
    let version = connection.client_version.as_deref().unwrap_or_default();
    assert!(version.starts_with("SSH-2.0-OpenSSH"), "{connection:?}");
    assert!(
        connection.remote.starts_with("127.0.0.1:"),
        "{connection:?}"
    );
}

fn slow_sftp(bench: &Bench, user: &TestUser, commands: &str) -> Child {
    bench
        .sftp_command(user, commands, &["-l", LIMIT_KBIT])
        .spawn()
        .expect("cannot run sftp")
}

/// Fails the test if the client has already ended: it was meant to be still running.
fn assert_running(child: &mut Child, what: &str) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{what}: sftp ended early ({status})");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upload_shows_receiving_with_a_rate_then_as_a_recent_event() {
    let bench = Bench::start().await;
    write_random_file(&bench.path("movie.bin"), 64 * MIB);
    let mut upload = slow_sftp(&bench, &bench.user("alice"), "put movie.bin\n");

    let (first, snapshot) = transfer_past(&bench, MIB).await;
    assert_running(&mut upload, "the first look");
    assert_eq!(first.direction, Direction::Upload);
    assert_eq!(first.state, State::Receiving);
    assert_eq!(first.user, "alice");
    assert_eq!(first.path, "/movie.bin");
    assert_eq!(first.dropbox_path.as_deref(), Some("/alice/movie.bin"));
    assert_eq!(first.size, None, "an upload's size is not known ahead");
    let connection = connection_of(&snapshot, &first);
    assert_openssh_alice(connection);
    assert_eq!(connection.remote, first.remote);
    assert!(connection.since <= first.started);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (second, _) = transfer_past(&bench, first.bytes + 1).await;
    assert_running(&mut upload, "the second look");
    assert_eq!(second.id, first.id, "the same transfer");
    assert_eq!(second.state, State::Receiving);
    assert!(second.bytes < 64 * MIB, "{second:?}");
    assert!(second.rate > 0, "{second:?}");
    assert!(
        second.rate < 4 * LIMIT_BYTES_PER_SEC,
        "a rate of {} B/s is not that of a client limited to {LIMIT_BYTES_PER_SEC} B/s",
        second.rate
    );

    let out = wait_for_client(upload, "the slow upload").await;
    assert_success(&out);
    // The disconnect line comes once the client has gone.
    let after = activity_until(&bench, "the connection gone", |s| s.connections.is_empty()).await;
    assert!(after.transfers.is_empty(), "{after:#?}");
    let upload_line = after
        .recent
        .iter()
        .find(|e| e.op == Some("upload"))
        .unwrap_or_else(|| panic!("no upload line in {:#?}", after.recent));
    assert_eq!(upload_line.result, Some("ok"));
    assert_eq!(upload_line.bytes, Some(64 * MIB));
    assert_eq!(upload_line.path.as_deref(), Some("/movie.bin"));
    let login = after
        .recent
        .iter()
        .find(|e| e.event == "login")
        .unwrap_or_else(|| panic!("no login line in {:#?}", after.recent));
    assert_eq!(login.result, Some("ok"));
    assert_eq!(login.user.as_deref(), Some("alice"));
    assert_eq!(after.recent[0].event, "disconnect", "newest first");
    assert_eq!(
        bench.dropbox_metadata("/alice/movie.bin").await.unwrap()["size"],
        64 * MIB
    );

    let logins = bench.gateway.activity().last_logins();
    let alice = &logins["alice"];
    assert_eq!(alice.method, "publickey");
    assert!(alice.remote.starts_with("127.0.0.1:"), "{alice:?}");
    assert!(!logins.contains_key("bob"), "{logins:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_download_shows_sending_and_a_killed_client_leaves_nothing_behind() {
    let bench = Bench::start().await;
    let size = 64 * MIB;
    bench
        .dropbox_upload("/alice/movie.bin", random_bytes(size as usize))
        .await;
    let mut download = slow_sftp(&bench, &bench.user("alice"), "get movie.bin back.bin\n");

    let (first, snapshot) = transfer_past(&bench, MIB).await;
    assert_running(&mut download, "the first look");
    assert_eq!(first.direction, Direction::Download);
    assert_eq!(first.state, State::Sending);
    assert_eq!(first.size, Some(size));
    assert_eq!(first.path, "/movie.bin");
    assert_openssh_alice(connection_of(&snapshot, &first));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (second, _) = transfer_past(&bench, first.bytes + 1).await;
    assert_eq!(second.state, State::Sending);
    assert!(second.rate > 0, "{second:?}");
    assert!(second.bytes < size, "{second:?}");

    // The client machine goes away: sftp and its ssh child at once.
    let pid = download.id().expect("sftp has a pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success(), "kill of process group {pid} failed");
    let _ = download.wait().await;

    let after = activity_until(&bench, "the connection and the download gone", |s| {
        s.connections.is_empty() && s.transfers.is_empty()
    })
    .await;
    let line = after
        .recent
        .iter()
        .find(|e| e.op == Some("download"))
        .unwrap_or_else(|| panic!("no download line in {:#?}", after.recent));
    assert_eq!(line.result, Some("interrupted"), "{line:?}");
    assert!(line.bytes.unwrap() < size, "{line:?}");
    assert!(
        after.recent.iter().any(|e| e.event == "disconnect"),
        "{:#?}",
        after.recent
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_leaves_no_connection_and_no_last_login() {
    let bench = Bench::start().await;
    // alice's name with bob's key: the gateway refuses it.
    let impostor = TestUser {
        name: "alice",
        key: bench.user("bob").key,
        root: "/alice",
    };
    let out = bench.sftp(&impostor, "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));

    let after = activity_until(&bench, "the refused connection gone", |s| {
        s.connections.is_empty() && s.recent.iter().any(|e| e.event == "disconnect")
    })
    .await;
    let failed = after
        .recent
        .iter()
        .find(|e| e.event == "login")
        .unwrap_or_else(|| panic!("no login line in {:#?}", after.recent));
    assert_eq!(failed.result, Some("failed"));
    assert!(
        after
            .recent
            .iter()
            .all(|e| e.result != Some("ok") || e.event != "login"),
        "{:#?}",
        after.recent
    );
    assert!(bench.gateway.activity().last_logins().is_empty());
}

fn assert_success(out: &Output) {
    assert!(out.status.success(), "sftp failed:\n{}", output_text(out));
}
