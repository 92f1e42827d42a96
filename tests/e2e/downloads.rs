//! Downloads over several connections (`[download]`): OpenSSH `sftp` and paramiko get a large
//! file byte-identical from ranges fetched at once, through connections that break, with
//! random access, and with a file replaced on Dropbox half way; one connection keeps one
//! stream.

use serde_json::{json, Value};

use crate::common::{paramiko_as_alice, random_bytes, request_count, stderr, Bench, Download};

const MIB: usize = 1024 * 1024;
/// Five ranges of 1 MiB and a tail, with 4 × 1 MiB of read-ahead.
const FILE_LEN: usize = 5 * MIB + 12_345;
const RANGES: u64 = 6;

/// A bench whose downloads use `connections` and `read_ahead`, with alice's `big.bin` in
/// Dropbox and on disk in the bench dir (`big.bin`).
async fn bench_with_big_file(connections: u64, read_ahead: u64) -> (Bench, Vec<u8>) {
    let bench = Bench::configured(move |config, _| {
        config.download = Some(Download {
            connections,
            read_ahead,
        })
    })
    .await;
    let data = random_bytes(FILE_LEN);
    std::fs::write(bench.path("big.bin"), &data).unwrap();
    bench.dropbox_upload("/alice/big.bin", data.clone()).await;
    bench.reset_emulator_stats().await;
    (bench, data)
}

/// Every download answer held back a moment, as the distance to Dropbox does: ranges that are
/// fetched at once are then seen in flight together.
fn downloads_take_a_moment() -> Value {
    json!({"kind": "delay_after", "route": "files/download", "delay_ms": 150})
}

async fn sftp_get(bench: &Bench) -> Vec<u8> {
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "get big.bin back.bin\n").await;
    std::fs::read(bench.path("back.bin")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_comes_down_over_several_connections_byte_identical() {
    let (bench, data) = bench_with_big_file(4, 4 * MIB as u64).await;
    bench
        .set_emulator_faults(json!([downloads_take_a_moment()]))
        .await;

    assert!(sftp_get(&bench).await == data, "the file came back changed");

    let stats = bench.emulator_stats().await;
    assert_eq!(request_count(&stats, "files/download"), RANGES, "{stats}");
    let peak = stats["peak_downloads_in_flight"].as_u64().unwrap();
    assert!((2..=4).contains(&peak), "ranges in flight at once: {stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_keeps_one_stream() {
    let (bench, data) = bench_with_big_file(1, 4 * MIB as u64).await;
    bench
        .set_emulator_faults(json!([downloads_take_a_moment()]))
        .await;

    assert!(sftp_get(&bench).await == data, "the file came back changed");

    let stats = bench.emulator_stats().await;
    assert_eq!(request_count(&stats, "files/download"), 1, "{stats}");
    assert_eq!(stats["peak_downloads_in_flight"], 1, "{stats}");
}

/// Requests dropped before an answer are sent again by the client; bodies cut half way are
/// asked again from where they stopped; the file arrives whole and unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn broken_connections_are_ridden_through() {
    let (bench, data) = bench_with_big_file(4, 4 * MIB as u64).await;
    bench
        .set_emulator_faults(json!([
            {"kind": "drop_after", "route": "files/download", "count": 2},
            {"kind": "cut_body", "route": "files/download", "count": 3, "after_bytes": 300_000},
        ]))
        .await;

    assert!(sftp_get(&bench).await == data, "the file came back changed");

    let stats = bench.emulator_stats().await;
    assert_eq!(stats["faults_injected"]["drop_after"], 2, "{stats}");
    assert_eq!(stats["faults_injected"]["cut_body"], 3, "{stats}");
    assert_eq!(
        request_count(&stats, "files/download"),
        RANGES + 2 + 3,
        "each failure costs one more request: {stats}"
    );
}

/// A range that keeps breaking fails the READ with a message, for sftp and paramiko alike:
/// never a short file reported as complete. (The first range comes whole, so sftp's failure
/// comes half way through the file.)
#[tokio::test(flavor = "multi_thread")]
async fn a_download_that_keeps_breaking_fails_clearly() {
    let (bench, _) = bench_with_big_file(4, 4 * MIB as u64).await;
    bench
        .set_emulator_faults(json!([
            {"kind": "cut_body", "route": "files/download", "skip": 1, "after_bytes": 100_000},
        ]))
        .await;

    let alice = bench.user("alice");
    let out = bench.sftp(&alice, "get big.bin back.bin\n").await;
    assert!(!out.status.success(), "sftp reported success");
    assert!(stderr(&out).contains("big.bin"), "{}", stderr(&out));

    let result = paramiko_as_alice(
        &bench,
        r#"
with sftp.open("big.bin", "r") as f:
    try:
        f.read()
        result["read"] = "ok"
    except IOError as e:
        result["read"] = str(e)
"#,
    )
    .await;
    let read = result["read"].as_str().unwrap();
    assert!(read.contains("download of /big.bin failed"), "{read}");
}

/// paramiko seeks and reads: inside a range, across two, ending on a range's last byte, at and
/// past the end; then `get` (many reads in flight) and an empty file.
#[tokio::test(flavor = "multi_thread")]
async fn random_access_and_prefetched_gets_read_the_right_bytes() {
    let (bench, data) = bench_with_big_file(4, 4 * MIB as u64).await;
    bench.dropbox_upload("/alice/empty.bin", Vec::new()).await;
    let result = paramiko_as_alice(
        &bench,
        r#"
data = open("big.bin", "rb").read()
MIB = 1024 * 1024
wrong = []
with sftp.open("big.bin", "r") as f:
    for offset, length in [(3 * MIB - 100, 300), (17, 1000), (MIB, MIB), (2 * MIB - 1, 1),
                           (len(data) - 10, 10), (len(data) - 10, 100), (len(data), 10),
                           (4 * MIB + 5, 65536), (0, 70000), (5 * MIB - 50, 50000)]:
        f.seek(offset)
        got = f.read(length)
        if got != data[offset:offset + length]:
            wrong.append([offset, length, len(got)])
result["wrong"] = wrong
sftp.get("big.bin", "prefetched.bin")
result["prefetched"] = open("prefetched.bin", "rb").read() == data
sftp.get("empty.bin", "empty.bin")
result["empty"] = open("empty.bin", "rb").read() == b""
"#,
    )
    .await;
    assert_eq!(result["wrong"], json!([]), "{result}");
    assert_eq!(result["prefetched"], true, "{result}");
    assert_eq!(result["empty"], true, "{result}");
    drop(data);
}

/// The file is replaced through the gateway while a handle reads it: the handle goes on
/// reading the version it opened, or fails saying the version is gone; never the new bytes.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_replaced_while_read_gives_the_old_bytes_or_a_clear_error() {
    let (bench, _) = bench_with_big_file(4, 4 * MIB as u64).await;
    std::fs::write(bench.path("new.bin"), random_bytes(FILE_LEN)).unwrap();
    let result = paramiko_as_alice(
        &bench,
        r#"
old = open("big.bin", "rb").read()
with sftp.open("big.bin", "r") as f:
    first = f.read(65536)
    send("new.bin", "big.bin")
    try:
        rest = f.read()
        result["outcome"] = "old" if first + rest == old else "changed"
    except IOError as e:
        result["outcome"] = str(e)
"#,
    )
    .await;
    let outcome = result["outcome"].as_str().unwrap();
    assert!(
        outcome == "old" || outcome.contains("changed on Dropbox since it was opened"),
        "{outcome}"
    );
    let new = std::fs::read(bench.path("new.bin")).unwrap();
    assert!(bench.dropbox_download("/alice/big.bin").await == new);
}
