//! Uploads the Dropbox way, checked end to end with OpenSSH `sftp -b` and `scp`: one
//! `files/upload` up to the single-upload limit, an upload session above it, mtimes kept, and a
//! failed commit that fails the client's CLOSE and leaves the old file in place.
//!
//! Which path an upload took (one `files/upload`, or an upload session) is proven by the
//! emulator's request counts; what Dropbox holds is read back from the emulator's own API.

use std::time::Duration;

use crate::common::{
    content_hash, insufficient_space_fault, output_text, random_bytes, set_local_mtime, stderr,
    write_random_file, Bench, UploadRequests,
};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
/// Dropbox's (and the gateway's default) single-upload limit.
const SINGLE_UPLOAD_LIMIT: u64 = 150 * MIB;
/// The gateway's default upload-session chunk size.
const DEFAULT_CHUNK: u64 = 32 * MIB;
/// The gateway's default connections per upload.
const DEFAULT_CONNECTIONS: u64 = 4;
/// 2001-02-03T04:05:06Z
const PAST_MTIME: u64 = 981_173_106;
const PAST_MTIME_TEXT: &str = "2001-02-03T04:05:06Z";

/// A bench whose uploads switch to a session above 4 MiB and send 4 MiB chunks.
async fn small_chunk_bench() -> Bench {
    Bench::with_upload_sessions(4 * MIB, 4 * MIB).await
}

fn assert_single_upload(requests: UploadRequests, what: &str) {
    assert_eq!(
        requests.upload, 1,
        "{what}: expected exactly one files/upload, got {requests:?}"
    );
    assert_eq!(
        requests.session_requests(),
        0,
        "{what}: expected no upload-session requests, got {requests:?}"
    );
}

/// One upload session whose data went in pieces of at most `chunk` bytes.
fn assert_session_upload(requests: UploadRequests, size: u64, chunk: u64, what: &str) {
    assert_eq!(
        requests.upload, 0,
        "{what}: expected no files/upload, got {requests:?}"
    );
    assert_eq!(
        (requests.session_start, requests.session_finish),
        (1, 1),
        "{what}: expected one session start and one finish, got {requests:?}"
    );
    // Each piece is at most `chunk` bytes, so at least this many requests carried data. At most:
    // the whole chunks, what was left at CLOSE cut into one piece per connection (so that they
    // carry it at once) and the closing piece, plus the start and the finish.
    let pieces = size.div_ceil(chunk);
    let most = size / chunk + DEFAULT_CONNECTIONS + 1 + 2;
    let total = requests.session_requests();
    assert!(
        (pieces..=most).contains(&total),
        "{what}: {size} bytes in {chunk}-byte chunks should take {pieces}..={most} session \
         requests, got {requests:?}"
    );
}

/// `sftp` exited 1 and reported a failed CLOSE ("close remote ...: Failure"): `what` failed the
/// put, as it must.
fn assert_failed_close(out: &std::process::Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} must fail the put:\n{}",
        output_text(out)
    );
    assert!(
        stderr(out).contains("close remote") && stderr(out).contains("Failure"),
        "expected OpenSSH's report of a failed CLOSE (\"close remote ...: Failure\"):\n{}",
        output_text(out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_put_is_one_files_upload() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(100_000);
    std::fs::write(bench.path("small.bin"), &data).unwrap();
    bench.reset_emulator_stats().await;

    bench.sftp_ok(&alice, "put small.bin\n").await;

    let meta = bench.dropbox_stored("/alice/small.bin").await;
    assert_eq!(meta["size"], data.len() as u64);
    assert_eq!(meta["content_hash"], content_hash(&data));
    assert_eq!(bench.dropbox_download("/alice/small.bin").await, data);
    assert_single_upload(bench.upload_requests().await, "100 kB put");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_of_exactly_150_mib_is_one_files_upload() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let hash = write_random_file(&bench.path("limit.bin"), SINGLE_UPLOAD_LIMIT);
    bench.reset_emulator_stats().await;

    bench.sftp_ok(&alice, "put limit.bin\n").await;

    let meta = bench.dropbox_stored("/alice/limit.bin").await;
    assert_eq!(meta["size"], SINGLE_UPLOAD_LIMIT);
    assert_eq!(meta["content_hash"], hash);
    assert_single_upload(bench.upload_requests().await, "150 MiB put");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_one_byte_over_150_mib_goes_as_an_upload_session() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let size = SINGLE_UPLOAD_LIMIT + 1;
    let hash = write_random_file(&bench.path("huge.bin"), size);
    bench.reset_emulator_stats().await;

    bench.sftp_ok(&alice, "put huge.bin\n").await;

    let meta = bench.dropbox_stored("/alice/huge.bin").await;
    assert_eq!(meta["size"], size);
    assert_eq!(meta["content_hash"], hash);
    assert_session_upload(
        bench.upload_requests().await,
        size,
        DEFAULT_CHUNK,
        "150 MiB + 1 byte put",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_single_upload_limit_itself_is_one_upload_and_one_byte_more_a_session() {
    let bench = small_chunk_bench().await;
    let alice = bench.user("alice");
    let at_limit = write_random_file(&bench.path("at.bin"), 4 * MIB);
    let over_limit = write_random_file(&bench.path("over.bin"), 4 * MIB + 1);

    bench.reset_emulator_stats().await;
    bench.sftp_ok(&alice, "put at.bin\n").await;
    assert_single_upload(bench.upload_requests().await, "put of exactly the limit");
    assert_eq!(
        bench.dropbox_stored("/alice/at.bin").await["content_hash"],
        at_limit
    );

    bench.reset_emulator_stats().await;
    bench.sftp_ok(&alice, "put over.bin\n").await;
    assert_session_upload(
        bench.upload_requests().await,
        4 * MIB + 1,
        4 * MIB,
        "put of the limit + 1 byte",
    );
    let meta = bench.dropbox_stored("/alice/over.bin").await;
    assert_eq!(meta["size"], 4 * MIB + 1);
    assert_eq!(meta["content_hash"], over_limit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_chunk_put_goes_as_a_session_in_chunk_size_pieces() {
    let bench = small_chunk_bench().await;
    let alice = bench.user("alice");
    let size = 5 * 4 * MIB + 12_345;
    let data = random_bytes(size as usize);
    std::fs::write(bench.path("chunks.bin"), &data).unwrap();
    bench.reset_emulator_stats().await;

    bench.sftp_ok(&alice, "put chunks.bin\n").await;

    let meta = bench.dropbox_stored("/alice/chunks.bin").await;
    assert_eq!(meta["size"], size);
    assert_eq!(meta["content_hash"], content_hash(&data));
    assert_eq!(bench.dropbox_download("/alice/chunks.bin").await, data);
    assert_session_upload(
        bench.upload_requests().await,
        size,
        4 * MIB,
        "put of 5 chunks + a tail",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn put_p_keeps_the_mtime_as_client_modified() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(50_000);
    std::fs::write(bench.path("dated.txt"), &data).unwrap();
    set_local_mtime(&bench.path("dated.txt"), PAST_MTIME);

    bench.sftp_ok(&alice, "put -p dated.txt\n").await;

    let meta = bench.dropbox_stored("/alice/dated.txt").await;
    assert_eq!(meta["client_modified"], PAST_MTIME_TEXT, "{meta}");
    assert_eq!(meta["content_hash"], content_hash(&data));
}

#[tokio::test(flavor = "multi_thread")]
async fn put_p_keeps_the_mtime_of_a_session_upload_too() {
    let bench = small_chunk_bench().await;
    let alice = bench.user("alice");
    let hash = write_random_file(&bench.path("dated.bin"), 9 * MIB + 7);
    set_local_mtime(&bench.path("dated.bin"), PAST_MTIME);
    bench.reset_emulator_stats().await;

    bench.sftp_ok(&alice, "put -p dated.bin\n").await;

    let meta = bench.dropbox_stored("/alice/dated.bin").await;
    assert_eq!(meta["client_modified"], PAST_MTIME_TEXT, "{meta}");
    assert_eq!(meta["content_hash"], hash);
    assert_session_upload(
        bench.upload_requests().await,
        9 * MIB + 7,
        4 * MIB,
        "put -p of 9 MiB",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reput_and_put_a_are_refused_and_leave_the_remote_file_unchanged() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    // A partial earlier upload: the first 1 MiB of the local file.
    let data = random_bytes(3 * MIB as usize);
    let partial = data[..MIB as usize].to_vec();
    std::fs::write(bench.path("part.bin"), &data).unwrap();
    bench
        .dropbox_upload("/alice/part.bin", partial.clone())
        .await;
    let before = bench.dropbox_stored("/alice/part.bin").await;

    for command in ["reput part.bin\n", "put -a part.bin\n"] {
        bench.reset_emulator_stats().await;
        let out = bench.sftp(&alice, command).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{command:?} must fail with exit 1:\n{}",
            output_text(&out)
        );
        assert!(
            stderr(&out).contains("Operation unsupported"),
            "{command:?}: expected SSH_FX_OP_UNSUPPORTED (OpenSSH: \"Operation unsupported\"):\n{}",
            output_text(&out)
        );
        bench
            .assert_unchanged("/alice/part.bin", &before, &partial)
            .await;
        let requests = bench.upload_requests().await;
        assert_eq!(requests.commits(), 0, "{command:?} committed: {requests:?}");
    }
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scp_overwriting_a_larger_file_leaves_exactly_the_new_bytes() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/over.bin", random_bytes(2 * MIB as usize))
        .await;
    let data = random_bytes(100_003);
    std::fs::write(bench.path("over.bin"), &data).unwrap();

    let out = bench
        .scp(
            &alice,
            &["over.bin".into(), bench.remote(&alice, "over.bin")],
        )
        .await;
    assert!(out.status.success(), "scp:\n{}", output_text(&out));

    let meta = bench.dropbox_stored("/alice/over.bin").await;
    assert_eq!(meta["size"], data.len() as u64, "{meta}");
    assert_eq!(meta["content_hash"], content_hash(&data));
    assert_eq!(bench.dropbox_download("/alice/over.bin").await, data);
}

/// `files/upload`'s error for a full Dropbox (UploadError.path: UploadWriteFailed).
fn insufficient_space_on_upload() -> Value {
    insufficient_space_fault()[0]["body"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_that_dropbox_rejects_fails_the_close_and_keeps_the_old_file() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let old = random_bytes(40_000);
    bench.dropbox_upload("/alice/doc.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/doc.bin").await;
    let new = random_bytes(90_000);
    std::fs::write(bench.path("doc.bin"), &new).unwrap();
    // No count: a retried commit is refused as well.
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/upload", "status": 409,
            "body": insufficient_space_on_upload()
        }]))
        .await;
    bench.reset_emulator_stats().await;

    let out = bench.sftp(&alice, "put doc.bin\n").await;

    assert_failed_close(&out, "the failed commit");
    assert!(
        bench.upload_requests().await.upload >= 1,
        "the commit never reached Dropbox"
    );
    bench
        .assert_unchanged("/alice/doc.bin", &before, &old)
        .await;
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;

    // Nothing stays broken: once Dropbox accepts again, the same put goes through.
    bench.clear_emulator_faults().await;
    bench.sftp_ok(&alice, "put doc.bin\n").await;
    assert_eq!(bench.dropbox_download("/alice/doc.bin").await, new);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_finish_that_dropbox_rejects_fails_the_close_and_keeps_the_old_file() {
    let bench = small_chunk_bench().await;
    let alice = bench.user("alice");
    let old = random_bytes(1_000_000);
    bench.dropbox_upload("/alice/big.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/big.bin").await;
    write_random_file(&bench.path("big.bin"), 10 * MIB + 3);
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/upload_session/finish", "status": 409,
            "body": {
                "error_summary": "path/insufficient_space/..",
                "error": { ".tag": "path", "path": { ".tag": "insufficient_space" } }
            }
        }]))
        .await;
    bench.reset_emulator_stats().await;

    let out = bench.sftp(&alice, "put big.bin\n").await;

    assert_failed_close(&out, "the failed finish");
    let requests = bench.upload_requests().await;
    assert!(
        requests.session_finish >= 1 && requests.upload == 0,
        "expected the session path to reach finish: {requests:?}"
    );
    bench
        .assert_unchanged("/alice/big.bin", &before, &old)
        .await;
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_append_that_dropbox_rejects_fails_the_upload_and_keeps_the_old_file() {
    let bench = small_chunk_bench().await;
    let alice = bench.user("alice");
    let old = random_bytes(1_000_000);
    bench.dropbox_upload("/alice/big.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/big.bin").await;
    write_random_file(&bench.path("big.bin"), 14 * MIB + 5);
    // Every append fails (no count), so neither a retry nor a fresh session can succeed.
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/upload_session/append_v2", "status": 409,
            "body": { "error_summary": "closed/..", "error": { ".tag": "closed" } }
        }]))
        .await;
    bench.reset_emulator_stats().await;

    let out = bench.sftp(&alice, "put big.bin\n").await;

    assert_eq!(
        out.status.code(),
        Some(1),
        "a session whose appends all fail must fail the put:\n{}",
        output_text(&out)
    );
    let requests = bench.upload_requests().await;
    assert!(
        requests.session_append >= 1,
        "expected the session path: {requests:?}"
    );
    bench
        .assert_unchanged("/alice/big.bin", &before, &old)
        .await;
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

/// Starts a slow `sftp put` of a large file over an existing one, waits until the gateway has
/// spooled at least `spooled` bytes, then kills the client (`whole_group`: sftp and its ssh
/// child at once, a client machine gone; otherwise sftp alone, so ssh closes the channel).
/// Then: nothing is committed, the old file is intact, and the spool empties.
async fn interrupted_upload_commits_nothing(bench: &Bench, spooled: u64, whole_group: bool) {
    let alice = bench.user("alice");
    let old = random_bytes(500_000);
    bench.dropbox_upload("/alice/movie.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/movie.bin").await;
    write_random_file(&bench.path("movie.bin"), 64 * MIB);
    bench.reset_emulator_stats().await;

    // -l: 16 Mbit/s, so the 64 MiB take about half a minute: the kill comes long before the end.
    let mut child = bench
        .sftp_command(&alice, "put movie.bin\n", &["-l", "16384"])
        .spawn()
        .expect("cannot run sftp");
    let pid = child.id().expect("sftp has a pid");

    let started = tokio::time::Instant::now();
    let seen = loop {
        let seen = bench.spool_files();
        if seen.iter().any(|(_, len)| *len >= spooled) {
            break seen;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "sftp ended ({status}) before {spooled} bytes were spooled (spool: {seen:?}):\n{}",
                output_text(&out)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not spool {spooled} bytes within 60 s (spool: {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    if whole_group {
        let killed = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .unwrap();
        assert!(killed.success(), "kill of process group {pid} failed");
    } else {
        child.start_kill().unwrap();
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("sftp did not end within 30 s of being killed")
        .unwrap();
    assert!(
        !status.success(),
        "sftp finished the upload before it was killed"
    );

    let spool_emptied = crate::common::poll_until(Duration::from_secs(30), || {
        std::future::ready(bench.spool_files().is_empty())
    })
    .await;
    if !whole_group {
        // sftp's ssh child is in the same group; make sure it is gone whatever happened.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
    assert!(
        spool_emptied,
        "spool files still there 30 s after the client was killed: {:?}",
        bench.spool_files()
    );
    let requests = bench.upload_requests().await;
    assert_eq!(
        requests.commits(),
        0,
        "an interrupted upload was committed (spooled {seen:?} when killed): {requests:?}"
    );
    bench
        .assert_unchanged("/alice/movie.bin", &before, &old)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_killed_mid_upload_commits_nothing() {
    let bench = Bench::start().await;
    interrupted_upload_commits_nothing(&bench, 2 * MIB, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_upload_cut_off_after_some_chunks_commits_nothing() {
    // Chunks of 4 MiB go to Dropbox while the client is still sending; killing sftp (its ssh
    // then closes the channel) after 10 MiB must still commit nothing.
    let bench = small_chunk_bench().await;
    interrupted_upload_commits_nothing(&bench, 10 * MIB, false).await;
}
