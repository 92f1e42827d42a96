//! Large uploads over several connections: above the single-upload limit a file goes up as a
//! concurrent upload session whose chunks are appended up to `[upload] connections` at once,
//! while the client is still sending; `connections = 1` keeps the sequential session.
//!
//! Driven by OpenSSH `sftp` (and paramiko where a client must write into bytes already sent);
//! the emulator's statistics say which kind of session it saw and how many appends of one
//! session it had in flight at once, and its own API says what it holds.

use crate::common::{
    content_hash, output_text, paramiko_as_alice, random_bytes, request_count, Bench,
    UploadRequests,
};
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;
const CHUNK: u64 = 4 * MIB;
const APPEND: &str = "files/upload_session/append_v2";

/// A bench whose uploads above 4 MiB go as sessions of 4 MiB chunks, `connections` at once.
async fn bench_with_connections(connections: u64) -> Bench {
    Bench::configured(move |config, _| {
        config.upload.sessions_above(CHUNK, CHUNK);
        config.upload.connections = Some(connections);
    })
    .await
}

/// Writes `len` random bytes to `name` in the bench dir; returns them.
fn local_file(bench: &Bench, name: &str, len: u64) -> Vec<u8> {
    let data = random_bytes(len as usize);
    std::fs::write(bench.path(name), &data).unwrap();
    data
}

/// Every answer of an append is held back this long: appends take time as across a distance,
/// so chunks spooled meanwhile overlap with them if the gateway lets them.
async fn slow_appends(bench: &Bench) {
    bench
        .set_emulator_faults(json!([{ "kind": "delay_after", "route": APPEND, "delay_ms": 300 }]))
        .await;
}

fn stat(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("the emulator's stats have no {name}: {stats}"))
}

/// `sftp` puts `name` to alice's root; the stored file must be exactly `data`.
async fn put_and_check(bench: &Bench, name: &str, data: &[u8]) {
    bench
        .sftp_ok(&bench.user("alice"), &format!("put {name}\n"))
        .await;
    let path = format!("/alice/{name}");
    assert_eq!(
        bench.dropbox_stored(&path).await["content_hash"],
        content_hash(data)
    );
    assert!(
        bench.dropbox_download(&path).await == data,
        "{path} differs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_of_chunks_and_a_tail_is_one_concurrent_session_with_overlapping_appends() {
    let bench = bench_with_connections(4).await;
    let data = local_file(&bench, "wide.bin", 6 * CHUNK + 12_345);
    bench.reset_emulator_stats().await;
    slow_appends(&bench).await;

    put_and_check(&bench, "wide.bin", &data).await;

    let stats = bench.emulator_stats().await;
    assert_eq!(stat(&stats, "concurrent_sessions"), 1, "{stats}");
    let peak = stat(&stats, "peak_appends_in_flight");
    assert!(
        (2..=4).contains(&peak),
        "appends must overlap, at most 4 at once: {stats}"
    );
    let requests = UploadRequests::from_stats(&stats);
    // Six chunks while the client sent, the tail as the closing append; no data at start or
    // finish.
    assert_eq!(
        (
            requests.session_start,
            requests.session_append,
            requests.session_finish
        ),
        (1, 7, 1),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_of_an_exact_multiple_of_the_chunk_closes_with_its_last_chunk() {
    let bench = bench_with_connections(4).await;
    let data = local_file(&bench, "even.bin", 5 * CHUNK);
    bench.reset_emulator_stats().await;

    put_and_check(&bench, "even.bin", &data).await;

    let stats = bench.emulator_stats().await;
    assert_eq!(stat(&stats, "concurrent_sessions"), 1, "{stats}");
    // Four chunks while the client sent; the fifth, held back, closes the session (never an
    // empty closing append).
    assert_eq!(request_count(&stats, APPEND), 5, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_keeps_the_sequential_session() {
    let bench = bench_with_connections(1).await;
    let data = local_file(&bench, "narrow.bin", 3 * CHUNK + 77);
    bench.reset_emulator_stats().await;
    slow_appends(&bench).await;

    put_and_check(&bench, "narrow.bin", &data).await;

    let stats = bench.emulator_stats().await;
    assert_eq!(stat(&stats, "concurrent_sessions"), 0, "{stats}");
    assert_eq!(stat(&stats, "peak_appends_in_flight"), 1, "{stats}");
}

/// A lost answer, or a refusal that proves nothing happened, on an append in the middle and
/// on the closing one: the piece is sent again, its repeat's refusal (the emulator holds the
/// piece already) is taken as its landing, and the file lands whole, in the same session.
#[tokio::test(flavor = "multi_thread")]
async fn an_append_whose_answer_is_lost_is_repeated_and_the_file_lands_once() {
    let bench = bench_with_connections(4).await;
    let data = local_file(&bench, "faulty.bin", 6 * CHUNK + 999);
    for kind in ["drop_after", "drop_before", "status_503"] {
        // The third append is a chunk sent while the client sends; the seventh closes.
        for (skip, piece) in [(2, "a middle chunk"), (6, "the closing append")] {
            bench.reset_emulator_stats().await;
            bench
                .set_emulator_faults(
                    json!([{ "kind": kind, "route": APPEND, "skip": skip, "count": 1 }]),
                )
                .await;
            let name = format!("{kind}-{skip}.bin");
            let out = bench
                .sftp(&bench.user("alice"), &format!("put faulty.bin {name}\n"))
                .await;
            bench.clear_emulator_faults().await;
            assert!(
                out.status.success(),
                "{kind} on {piece}: {}",
                output_text(&out)
            );
            let stored = bench.dropbox_download(&format!("/alice/{name}")).await;
            assert!(stored == data, "{kind} on {piece}: the stored file differs");
            let stats = bench.emulator_stats().await;
            assert_eq!(
                stats["faults_injected"][kind], 1,
                "{kind} on {piece}: {stats}"
            );
            assert_eq!(
                (
                    stat(&stats, "concurrent_sessions"),
                    request_count(&stats, APPEND)
                ),
                (1, 8),
                "{kind} on {piece}: one session, the faulty append sent twice: {stats}"
            );
        }
    }
}

/// Appends Dropbox refuses for good fail the CLOSE, and nothing is stored. So does a repeat of
/// the closing append that is refused as `closed` although its first try never arrived: it is
/// taken as landed, but Dropbox refuses to finish a session that is not closed, so a wrong
/// inference cannot store anything.
#[tokio::test(flavor = "multi_thread")]
async fn appends_that_cannot_land_fail_the_close_and_store_nothing() {
    let bench = bench_with_connections(4).await;
    local_file(&bench, "refused.bin", 6 * CHUNK + 5);
    let too_large = json!({ "error_summary": "too_large/..", "error": { ".tag": "too_large" } });
    let closed = json!({ "error_summary": "closed/..", "error": { ".tag": "closed" } });
    let cases = [
        (
            "refused",
            json!([{ "kind": "error", "status": 409, "body": too_large, "route": APPEND }]),
        ),
        (
            "misread",
            json!([
                { "kind": "drop_before", "route": APPEND, "skip": 6, "count": 1 },
                { "kind": "error", "status": 409, "body": closed, "route": APPEND, "count": 1 },
            ]),
        ),
    ];
    for (name, faults) in cases {
        bench.reset_emulator_stats().await;
        bench.set_emulator_faults(faults).await;
        let out = bench
            .sftp(
                &bench.user("alice"),
                &format!("put refused.bin {name}.bin\n"),
            )
            .await;
        bench.clear_emulator_faults().await;
        assert!(!out.status.success(), "{name}: the put succeeded");
        assert!(
            output_text(&out).contains("close remote"),
            "{name}: expected a failed CLOSE:\n{}",
            output_text(&out)
        );
        assert_eq!(
            bench.dropbox_metadata(&format!("/alice/{name}.bin")).await,
            None,
            "{name}: something was stored"
        );
    }
}

/// A write into bytes already appended, and a truncation that leaves no byte for the closing
/// append, make the session stale: a fresh one is appended from the spool, and Dropbox holds
/// exactly what the client wrote.
#[tokio::test(flavor = "multi_thread")]
async fn changing_bytes_already_sent_starts_a_fresh_session() {
    let bench = bench_with_connections(4).await;
    let data = local_file(&bench, "changed.bin", 3 * CHUNK + 100);
    bench.reset_emulator_stats().await;
    let result = paramiko_as_alice(
        &bench,
        r#"
data = open("changed.bin", "rb").read()
with sftp.open("rewritten.bin", "w") as f:
    f.write(data)
    f.flush()
    f.seek(10)
    f.write(b"REWRITTEN")
with sftp.open("cut.bin", "w") as f:
    f.write(data[:2 * 4194304 + 100])
    f.flush()
    f.truncate(2 * 4194304)
result["done"] = True
"#,
    )
    .await;
    assert_eq!(result["done"], true, "{result}");

    let mut rewritten = data.clone();
    rewritten[10..19].copy_from_slice(b"REWRITTEN");
    assert!(bench.dropbox_download("/alice/rewritten.bin").await == rewritten);
    let cut = &data[..2 * CHUNK as usize];
    assert!(bench.dropbox_download("/alice/cut.bin").await == cut);
    let stats = bench.emulator_stats().await;
    // Each file: the session appended while it was sent, abandoned, and a fresh one (an
    // abandoned one may be cut off before its start reached Dropbox).
    let sessions = stat(&stats, "concurrent_sessions");
    assert!((3..=4).contains(&sessions), "{stats}");
    assert_eq!(
        request_count(&stats, "files/upload_session/finish"),
        2,
        "{stats}"
    );
}
