//! Uploads through other real SFTP clients: lftp and paramiko.
//!
//! Both must be installed (`.ci/run` installs them); a missing client fails the test with a
//! message that says how to install it, it never skips.

use crate::common::{
    content_hash, insufficient_space_fault, lftp, output_text, paramiko_as, paramiko_json,
    random_bytes, set_local_mtime, write_random_file, Bench,
};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// 2001-02-03T04:05:06Z
const PAST_MTIME: u64 = 981_173_106;
const PAST_MTIME_TEXT: &str = "2001-02-03T04:05:06Z";

// ---- lftp ----

#[tokio::test(flavor = "multi_thread")]
async fn lftp_put_uploads_new_and_overwritten_files() {
    let bench = Bench::start().await;
    let new = random_bytes(300_000);
    std::fs::write(bench.path("new.bin"), &new).unwrap();
    set_local_mtime(&bench.path("new.bin"), PAST_MTIME);
    // Overwriting a larger file with a smaller one leaves exactly the new bytes.
    bench
        .dropbox_upload("/alice/old.bin", random_bytes(1_000_000))
        .await;
    let smaller = random_bytes(12_345);
    std::fs::write(bench.path("old.bin"), &smaller).unwrap();

    let out = lftp(&bench, "put new.bin\nput old.bin\n").await;

    assert!(out.status.success(), "lftp put:\n{}", output_text(&out));
    let meta = bench.dropbox_stored("/alice/new.bin").await;
    assert_eq!(meta["content_hash"], content_hash(&new), "{meta}");
    assert_eq!(bench.dropbox_download("/alice/new.bin").await, new);
    // lftp sends the local mtime in its FSETSTAT before CLOSE.
    assert_eq!(meta["client_modified"], PAST_MTIME_TEXT, "{meta}");
    let meta = bench.dropbox_stored("/alice/old.bin").await;
    assert_eq!(meta["size"], smaller.len() as u64, "{meta}");
    assert_eq!(bench.dropbox_download("/alice/old.bin").await, smaller);
}

#[tokio::test(flavor = "multi_thread")]
async fn lftp_put_c_on_an_existing_file_is_refused_with_the_servers_message() {
    let bench = Bench::start().await;
    // An earlier partial upload: the first 64 KiB of the local file.
    let data = random_bytes(400_000);
    let partial = data[..65_536].to_vec();
    std::fs::write(bench.path("part.bin"), &data).unwrap();
    bench
        .dropbox_upload("/alice/part.bin", partial.clone())
        .await;
    let before = bench.dropbox_stored("/alice/part.bin").await;
    bench.reset_emulator_stats().await;

    let out = lftp(&bench, "put -c part.bin\n").await;

    assert!(
        !out.status.success(),
        "lftp put -c succeeded:\n{}",
        output_text(&out)
    );
    assert!(
        output_text(&out)
            .contains("Dropbox does not support resuming uploads; upload the whole file again"),
        "lftp should show the server's message:\n{}",
        output_text(&out)
    );
    bench
        .assert_unchanged("/alice/part.bin", &before, &partial)
        .await;
    let requests = bench.upload_requests().await;
    assert_eq!(requests.commits(), 0, "put -c committed: {requests:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lftp_shows_why_dropbox_rejected_a_commit() {
    let bench = Bench::start().await;
    let old = random_bytes(20_000);
    bench.dropbox_upload("/alice/doc.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/doc.bin").await;
    std::fs::write(bench.path("doc.bin"), random_bytes(70_000)).unwrap();
    bench.set_emulator_faults(insufficient_space_fault()).await;

    let out = lftp(&bench, "put doc.bin\n").await;

    assert!(
        !out.status.success(),
        "lftp put succeeded although the commit failed:\n{}",
        output_text(&out)
    );
    let text = output_text(&out);
    assert!(
        text.contains("the upload was not stored in Dropbox")
            && text.contains("insufficient_space"),
        "lftp should show Dropbox's reason:\n{text}"
    );
    bench
        .assert_unchanged("/alice/doc.bin", &before, &old)
        .await;
}

// ---- paramiko ----

/// Connects as the given user, `put`s local → remote (paramiko's own put: pipelined writes,
/// CLOSE errors ignored, then a STAT to confirm the size), STATs the remote again, and prints
/// one JSON line with what happened.
const PARAMIKO_PUT: &str = r#"
host, port, user, key, known_hosts, local, remote = sys.argv[1:8]
client = connect(host, port, user, known_hosts, key=key)
sftp = client.open_sftp()
result = {}
try:
    attrs = sftp.put(local, remote)
    result["put"] = "ok"
    result["put_size"] = attrs.st_size
except Exception as e:
    result["put"] = "error"
    result["put_error"] = "%s: %s" % (type(e).__name__, e)
try:
    st = sftp.stat(remote)
    result["stat_size"] = st.st_size
except Exception as e:
    result["stat_error"] = "%s: %s" % (type(e).__name__, e)
    result["stat_errno"] = getattr(e, "errno", None)
sftp.close()
client.close()
print(json.dumps(result))
"#;

/// Runs [`PARAMIKO_PUT`] as alice; returns its JSON result.
async fn paramiko_put(bench: &Bench, local: &str, remote: &str) -> Value {
    let mut command = paramiko_as(bench, &bench.user("alice"), PARAMIKO_PUT);
    command.arg(bench.path(local)).arg(remote);
    paramiko_json(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn paramiko_put_uploads_small_and_multi_chunk_files() {
    let bench = Bench::with_upload_sessions(4 * MIB, 4 * MIB).await;
    let small = random_bytes(200_000);
    std::fs::write(bench.path("small.bin"), &small).unwrap();
    let big_size = 3 * 4 * MIB + 999;
    let big_hash = write_random_file(&bench.path("big.bin"), big_size);

    bench.reset_emulator_stats().await;
    let result = paramiko_put(&bench, "small.bin", "small.bin").await;
    assert_eq!(result["put"], "ok", "{result}");
    assert_eq!(result["stat_size"], small.len() as u64, "{result}");
    assert_eq!(bench.dropbox_download("/alice/small.bin").await, small);
    let requests = bench.upload_requests().await;
    assert_eq!(
        (requests.upload, requests.session_requests()),
        (1, 0),
        "a small paramiko put should be one files/upload: {requests:?}"
    );

    bench.reset_emulator_stats().await;
    let result = paramiko_put(&bench, "big.bin", "big.bin").await;
    assert_eq!(result["put"], "ok", "{result}");
    assert_eq!(result["stat_size"], big_size, "{result}");
    let meta = bench.dropbox_stored("/alice/big.bin").await;
    assert_eq!(meta["size"], big_size, "{meta}");
    assert_eq!(meta["content_hash"], big_hash, "{meta}");
    let requests = bench.upload_requests().await;
    assert_eq!(
        (
            requests.upload,
            requests.session_start,
            requests.session_finish
        ),
        (0, 1, 1),
        "a 12 MiB paramiko put should be one upload session: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paramiko_does_not_see_a_commit_that_failed() {
    let bench = Bench::start().await;
    let old = random_bytes(30_000);
    bench.dropbox_upload("/alice/doc.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/doc.bin").await;
    let new = random_bytes(80_000);
    std::fs::write(bench.path("doc.bin"), &new).unwrap();
    std::fs::write(bench.path("fresh.bin"), &new).unwrap();
    bench.set_emulator_faults(insufficient_space_fault()).await;

    // Over an existing file: paramiko ignores the failed CLOSE, and its STAT must show the old
    // file (so its size check fails the put), never the bytes that were not committed.
    let result = paramiko_put(&bench, "doc.bin", "doc.bin").await;
    assert_eq!(result["put"], "error", "{result}");
    assert_eq!(result["stat_size"], old.len() as u64, "{result}");
    bench
        .assert_unchanged("/alice/doc.bin", &before, &old)
        .await;

    // A new file whose commit failed does not exist at all (paramiko: ENOENT from
    // SSH_FX_NO_SUCH_FILE).
    let result = paramiko_put(&bench, "fresh.bin", "fresh.bin").await;
    assert_eq!(result["put"], "error", "{result}");
    assert_eq!(result["stat_errno"], 2, "{result}");
    assert!(bench.dropbox_metadata("/alice/fresh.bin").await.is_none());
}
