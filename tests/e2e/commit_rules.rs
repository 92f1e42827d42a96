//! The rules about what an upload may do to Dropbox hold at the commit, not only at
//! OPEN. A file that appears while an upload is open is not replaced by a user who may not
//! replace files (or by O_EXCL); a handle opened without TRUNC never silently drops bytes of the
//! file it replaces; extending by SIZE counts like written bytes; a user without "mkdir" cannot
//! make Dropbox create folders by uploading into them; and a plain `put` costs one Dropbox
//! request.
//!
//! Clients are paramiko (which shows the server's message; CLOSE is sent by hand because
//! paramiko's own `close()` swallows its error) and OpenSSH `sftp`/`scp`. The other writer
//! stores its file through the emulator's own API while the paramiko handle is open, and what
//! Dropbox holds is read back from the emulator, never through the gateway.

use std::time::Duration;

use crate::common::{
    content_hash, output_text, paramiko_as_alice, random_bytes, stderr, Bench, Permission,
    Permissions,
};
use dropbox_emulator::demo_credentials;
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;

/// Python for the scripts below: `dropbox_put(path, data)` stores a file through the emulator's
/// API (the other writer), and `close_reporting(f)` sends CLOSE and raises its error.
fn helpers(bench: &Bench) -> String {
    format!(
        r#"
import json as _json, urllib.request
from paramiko.sftp import CMD_CLOSE
def dropbox_put(path, data):
    request = urllib.request.Request(
        "{url}/2/files/upload", data=data, method="POST",
        headers={{"Authorization": "Bearer {token}", "Content-Type": "application/octet-stream",
                 "Dropbox-API-Arg": _json.dumps({{"path": path, "mode": "overwrite"}})}})
    urllib.request.urlopen(request).read()
def close_reporting(f):
    f.flush()
    f._closed = True
    sftp._request(CMD_CLOSE, f.handle)
"#,
        url = bench.emulator.base_url(),
        token = demo_credentials::ACCESS_TOKEN,
    )
}

async fn run(bench: &Bench, script: &str) -> Value {
    paramiko_as_alice(bench, &format!("{}\n{script}", helpers(bench))).await
}

/// A bench whose alice has `permissions` (a TOML value) and bob has all.
async fn bench_where_alice_has(permissions: Permissions) -> Bench {
    Bench::configured(move |config, _| config.user("alice").permissions = Some(permissions)).await
}

async fn stored_bytes(bench: &Bench, path: &str) -> Vec<u8> {
    bench.dropbox_download(path).await
}

/// Opens `name` with `mode`, writes "mine", lets another writer store "theirs" at the same path,
/// then closes; returns what the CLOSE answered.
async fn race_with_another_writer(bench: &Bench, name: &str, mode: &str) -> String {
    let result = run(
        bench,
        &format!(
            r#"
f = sftp.open("{name}", "{mode}")
f.write(b"mine")
f.flush()
dropbox_put("/alice/{name}", b"theirs")
result["close"] = attempt(lambda: close_reporting(f))
"#
        ),
    )
    .await;
    result["close"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_appears_during_an_upload_only_users_upload_is_left_alone() {
    let bench = bench_where_alice_has(Permissions::preset("upload-only")).await;
    let close = race_with_another_writer(&bench, "race.txt", "w").await;
    assert!(
        close.starts_with("PermissionError") && close.contains("\"overwrite\""),
        "the CLOSE must fail naming the missing permission: {close}"
    );
    assert_eq!(stored_bytes(&bench, "/alice/race.txt").await, b"theirs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_appears_during_an_exclusive_upload_is_left_alone() {
    let bench = Bench::start().await;
    let close = race_with_another_writer(&bench, "excl.txt", "wx").await;
    assert!(
        close.contains("already exists"),
        "the CLOSE must fail: {close}"
    );
    assert_eq!(stored_bytes(&bench, "/alice/excl.txt").await, b"theirs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_may_overwrite_is_the_last_writer_and_wins() {
    let bench = Bench::start().await;
    let close = race_with_another_writer(&bench, "last.txt", "w").await;
    assert_eq!(close, "ok");
    assert_eq!(stored_bytes(&bench, "/alice/last.txt").await, b"mine");
}

/// An upload-only user's commit goes in `add` mode, which the client does not simply repeat;
/// when its answer is lost after Dropbox applied it, a look finds our own file (our
/// content_hash) and the CLOSE succeeds, for a single upload and for an upload session.
#[tokio::test(flavor = "multi_thread")]
async fn an_add_upload_whose_answer_was_lost_still_succeeds() {
    let bench = bench_where_alice_has(Permissions::preset("upload-only")).await;
    let small = random_bytes(10_000);
    std::fs::write(bench.path("small.bin"), &small).unwrap();
    bench
        .set_emulator_faults(json!([{"kind": "drop_after", "route": "files/upload", "count": 1}]))
        .await;
    let out = bench.sftp(&bench.user("alice"), "put small.bin\n").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let meta = bench.dropbox_metadata("/alice/small.bin").await.unwrap();
    assert_eq!(meta["content_hash"], content_hash(&small));
    assert_eq!(
        crate::common::request_count(&bench.emulator_stats().await, "files/upload"),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_add_session_finish_whose_answer_was_lost_still_succeeds() {
    // Upload sessions from 4 MiB on.
    let bench = Bench::configured(|config, _| {
        config.user("alice").permissions = Some(Permissions::preset("upload-only"));
        config.upload.sessions_above(4 * MIB, 4 * MIB);
    })
    .await;
    let data = random_bytes(5 * MIB as usize);
    std::fs::write(bench.path("big.bin"), &data).unwrap();
    bench
        .set_emulator_faults(json!([
            {"kind": "drop_after", "route": "files/upload_session/finish", "count": 1}
        ]))
        .await;
    let out = bench.sftp(&bench.user("alice"), "put big.bin\n").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let meta = bench.dropbox_metadata("/alice/big.bin").await.unwrap();
    assert_eq!(meta["content_hash"], content_hash(&data));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_write_into_a_file_opened_without_trunc_fails_and_keeps_the_file() {
    let bench = Bench::start().await;
    let original = random_bytes(1000);
    for name in ["short.bin", "whole.bin", "truncated.bin"] {
        bench
            .dropbox_upload(&format!("/alice/{name}"), original.clone())
            .await;
    }
    let before = bench.dropbox_metadata("/alice/short.bin").await.unwrap();
    let result = run(
        &bench,
        r#"
f = sftp.open("short.bin", "r+")
f.write(b"XY")
result["short"] = attempt(lambda: close_reporting(f))
# Every byte written again: the new content replaces the file.
f = sftp.open("whole.bin", "r+")
f.write(b"Z" * 1000)
result["whole"] = attempt(lambda: close_reporting(f))
# The rest truncated away by the client itself.
f = sftp.open("truncated.bin", "r+")
f.write(b"XY")
f.flush()
f.truncate(2)
result["truncated"] = attempt(lambda: close_reporting(f))
"#,
    )
    .await;
    let short = result["short"].as_str().unwrap();
    assert!(
        short.contains("Dropbox cannot change part of a file; upload the whole file"),
        "{result}"
    );
    let after = bench.dropbox_metadata("/alice/short.bin").await.unwrap();
    assert_eq!(after["rev"], before["rev"], "short.bin was replaced");
    assert_eq!(stored_bytes(&bench, "/alice/short.bin").await, original);

    assert_eq!(result["whole"], "ok", "{result}");
    assert_eq!(
        stored_bytes(&bench, "/alice/whole.bin").await,
        vec![b'Z'; 1000]
    );
    assert_eq!(result["truncated"], "ok", "{result}");
    assert_eq!(stored_bytes(&bench, "/alice/truncated.bin").await, b"XY");
}

/// `truncate` to more than the spool's file system can take (past the free-space floor) is
/// refused like the same bytes written, and nothing reaches Dropbox. Should the SIZE be taken
/// (the code before this rule), the script drops the connection instead of closing, so that
/// the test cannot commit a giant file of zeros.
#[tokio::test(flavor = "multi_thread")]
async fn extending_by_size_past_the_free_space_floor_is_refused_and_commits_nothing() {
    let bench = Bench::configured(|config, _| config.upload.max_file_size = Some(1 << 50)).await;
    std::fs::create_dir_all(bench.spool_dir()).unwrap();
    let stat = rustix::fs::statvfs(bench.spool_dir()).unwrap();
    let free = stat.f_bavail * stat.f_frsize;
    let beyond = free + 64 * 1024 * MIB;
    bench.reset_emulator_stats().await;
    let result = run(
        &bench,
        &format!(
            r#"
import os
f = sftp.open("grown.bin", "w")
f.write(b"x" * 1024)
f.flush()
result["truncate"] = attempt(lambda: f.truncate({beyond}))
if result["truncate"] == "ok":
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)
result["close"] = attempt(lambda: close_reporting(f))
"#
        ),
    )
    .await;
    let truncate = result["truncate"].as_str().unwrap();
    assert!(truncate.contains("low on spool space"), "{result}");
    assert!(bench.dropbox_metadata("/alice/grown.bin").await.is_none());
    let requests = bench.upload_requests().await;
    assert_eq!(
        requests.upload + requests.session_requests(),
        0,
        "{requests:?}"
    );
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_mkdir_cannot_upload_into_a_folder_that_does_not_exist() {
    let bench = bench_where_alice_has(Permissions::all_but(Permission::Mkdir)).await;
    bench
        .dropbox_upload("/alice/folder/inside.txt", b"x".to_vec())
        .await;
    std::fs::write(bench.path("f.txt"), b"payload").unwrap();
    let alice = bench.user("alice");

    let out = bench
        .sftp(&alice, "put f.txt newdir/sub/deep/f.txt\n")
        .await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("No such file or directory"),
        "{}",
        output_text(&out)
    );
    assert!(bench.dropbox_metadata("/alice/newdir").await.is_none());
    // paramiko shows the message, which names the permission: at the WRITE if the look at the
    // folder has answered by then, else at the CLOSE.
    let result = run(
        &bench,
        r#"
def upload():
    f = sftp.open("newdir/f.txt", "w")
    f.write(b"payload")
    close_reporting(f)
result["close"] = attempt(upload)
"#,
    )
    .await;
    let close = result["close"].as_str().unwrap();
    assert!(
        close.starts_with("FileNotFoundError") && close.contains("\"mkdir\""),
        "{result}"
    );
    assert!(bench.dropbox_metadata("/alice/newdir").await.is_none());

    // Into a folder that exists, and into the home folder: fine.
    bench
        .sftp_ok(&alice, "put f.txt folder/f.txt\nput f.txt f.txt\n")
        .await;
    assert_eq!(
        stored_bytes(&bench, "/alice/folder/f.txt").await,
        b"payload"
    );
    assert_eq!(stored_bytes(&bench, "/alice/f.txt").await, b"payload");
}

/// A plain `put` by a user who may replace files and create folders: the commit is the only
/// Dropbox request (before this rule, a lookup at OPEN made it two round trips per file).
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_put_is_one_dropbox_request_per_file() {
    let bench = Bench::start().await;
    let mut batch = String::new();
    for i in 0..20 {
        std::fs::write(bench.path(&format!("f{i}.txt")), format!("file {i}")).unwrap();
        batch.push_str(&format!("put f{i}.txt\n"));
    }
    bench.reset_emulator_stats().await;
    bench.sftp_ok(&bench.user("alice"), &batch).await;
    let stats = bench.emulator_stats().await;
    let total: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(
        crate::common::request_count(&stats, "files/upload"),
        20,
        "{stats}"
    );
    assert_eq!(total, 20, "every request but the commits: {stats}");
}

/// A client that sends CLOSE and disconnects while the commit runs has handed over the whole
/// file: the commit goes on without it. Dropbox answers the first attempt with a 429 (retry
/// after 2 s), and the client is gone before the gateway tries again.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_in_progress_is_finished_after_its_client_disconnects() {
    let bench = Bench::start().await;
    bench
        .set_emulator_faults(json!([
            {"kind": "status_429", "route": "files/upload", "count": 1, "retry_after": 2}
        ]))
        .await;
    let data = random_bytes(200_000);
    std::fs::write(bench.path("whole.bin"), &data).unwrap();
    let result = run(
        &bench,
        r#"
import time
f = sftp.open("whole.bin", "w")
with open("whole.bin", "rb") as src:
    f.write(src.read())
f.flush()
f._closed = True
sftp._async_request(type(None), CMD_CLOSE, f.handle)
time.sleep(0.5)
client.close()
result["closed"] = True
"#,
    )
    .await;
    assert_eq!(result["closed"], true);
    let stored = crate::common::poll_until(Duration::from_secs(20), || async {
        bench
            .dropbox_metadata("/alice/whole.bin")
            .await
            .is_some_and(|meta| meta["content_hash"] == content_hash(&data).as_str())
    })
    .await;
    assert!(
        stored,
        "the file whose CLOSE was sent never reached Dropbox"
    );
}
