//! Commit coalescing: parallel uploads into one account are committed together with
//! `files/upload_session/finish_batch_v2` while the emulator refuses overlapping commits (its
//! `write_lock` model), and every CLOSE answers for its own file, truthfully, also when the
//! answer of a batch is lost.
//!
//! Many OpenSSH `sftp` sessions (users alice and bob share the bench's one account, so one
//! namespace) put at once; what Dropbox holds is read back from the emulator, and its
//! statistics say which routes carried the commits.

use std::sync::Arc;

use crate::common::{
    content_hash, output_text, random_bytes, request_count, run_bounded, set_local_mtime, Bench,
};
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// 2001-02-03T04:05:06Z, the mtime `put -p` carries for one of the files.
const PAST_MTIME: u64 = 981_173_106;

/// A bench whose files above 1 MiB go up as upload sessions of 4 MiB chunks, that takes all
/// the sessions at once from one address, with an `inbox` folder for alice and bob.
async fn bench() -> Arc<Bench> {
    let bench = Bench::configured(|config, _| {
        config.upload.sessions_above(MIB as u64, 4 * MIB as u64);
        config.limits.max_connections_per_address = Some(64);
        config.limits.max_unauthenticated_per_address = Some(64);
        config.limits.max_sftp_sessions_per_user = Some(64);
    })
    .await;
    for user in ["alice", "bob"] {
        bench.sftp_ok(&bench.user(user), "mkdir inbox\n").await;
    }
    Arc::new(bench)
}

/// The user who puts file `i`, and where Dropbox keeps it.
fn owner(i: usize) -> (&'static str, String) {
    let user = if i.is_multiple_of(2) { "bob" } else { "alice" };
    (user, format!("/{user}/inbox/f{i}.bin"))
}

/// Writes `files` locally as f0.bin, f1.bin, ... and puts each into `inbox/` from its own
/// sftp session (alternately as alice and bob, `put -p` for f0), all at once. Each
/// session's output, in order.
async fn put_in_parallel(bench: &Arc<Bench>, files: &[Vec<u8>]) -> Vec<std::process::Output> {
    for (i, data) in files.iter().enumerate() {
        std::fs::write(bench.path(&format!("f{i}.bin")), data).unwrap();
    }
    set_local_mtime(&bench.path("f0.bin"), PAST_MTIME);
    let runs: Vec<_> = (0..files.len())
        .map(|i| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let (user, _) = owner(i);
                let flag = if i == 0 { "-p " } else { "" };
                let batch = format!("put {flag}f{i}.bin inbox/f{i}.bin\n");
                let command = bench.sftp_command(&bench.user(user), &batch, &[]);
                run_bounded(command, "sftp put").await
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for run in runs {
        outputs.push(run.await.unwrap());
    }
    outputs
}

/// Sizes: mostly small files (one files/upload, or one closed session start), two that go up
/// as (concurrent, by default) sessions of a chunk and a tail, and one of exactly a chunk (the
/// chunk itself is its closing append).
fn files(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| match i {
            3 | 8 => random_bytes(5 * MIB + i),
            5 => random_bytes(4 * MIB),
            _ => random_bytes(20_000 + i),
        })
        .collect()
}

async fn assert_all_stored(bench: &Bench, files: &[Vec<u8>]) {
    for (i, data) in files.iter().enumerate() {
        let (_, path) = owner(i);
        let meta = bench.dropbox_stored(&path).await;
        assert_eq!(meta["content_hash"], content_hash(data), "{path}: {meta}");
        assert_eq!(&bench.dropbox_download(&path).await, data, "{path}");
    }
}

/// Each file was committed once: as its own files/upload or finish, or as an entry of a
/// batch that Dropbox applied.
fn commits(stats: &Value) -> u64 {
    request_count(stats, "files/upload")
        + request_count(stats, "files/upload_session/finish")
        + stats["batch_entries"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_into_one_namespace_are_committed_in_batches_and_all_land() {
    let bench = bench().await;
    // Each commit holds the namespace long enough that commits started together overlap.
    let realism = json!({ "write_lock": { "hold_ms": 400, "shape": "alternate" } });
    bench.dropbox().set_realism(realism).await;
    let files = files(12);
    bench.reset_emulator_stats().await;

    let outputs = put_in_parallel(&bench, &files).await;
    let stats = bench.emulator_stats().await;
    bench.dropbox().set_realism(json!({})).await;

    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "upload {i}: {}", output_text(out));
    }
    assert_all_stored(&bench, &files).await;
    let dated = bench.dropbox_stored("/bob/inbox/f0.bin").await;
    assert_eq!(dated["client_modified"], "2001-02-03T04:05:06Z", "{dated}");
    let batches = request_count(&stats, "files/upload_session/finish_batch_v2");
    let entries = stats["batch_entries"].as_u64().unwrap();
    assert!(batches > 0, "no batch was sent: {stats}");
    assert_eq!(
        stats["concurrent_sessions"], 3,
        "large files' sessions: {stats}"
    );
    assert!(
        entries > batches,
        "no batch held more than one file: {stats}"
    );
    let refused = stats["write_lock_refusals"].as_u64().unwrap();
    // Every file committed once, plus the commits Dropbox refused and that were sent again.
    assert!(commits(&stats) >= files.len() as u64, "{stats}");
    assert!(commits(&stats) <= files.len() as u64 + refused, "{stats}");
}

/// Parallel puts with the first batch's answer lost by `fault` (after Dropbox applied it, or
/// before it got there); every CLOSE must still report OK, and every file be there once. The
/// first commit's answer is held back for a while, so the puts that close meanwhile are
/// batched (the lock model stays off: no refusal blurs the count of commits).
async fn a_lost_batch_answer(fault: &str) -> Value {
    let bench = bench().await;
    let held = |route: &str| json!({ "kind": "delay_after", "route": route, "count": 1, "delay_ms": 2000 });
    bench
        .set_emulator_faults(json!([
            held("files/upload"),
            held("files/upload_session/finish"),
            { "kind": fault, "route": "files/upload_session/finish_batch_v2", "count": 1 },
        ]))
        .await;
    let files = files(10);
    bench.reset_emulator_stats().await;

    let outputs = put_in_parallel(&bench, &files).await;
    let stats = bench.emulator_stats().await;
    bench.clear_emulator_faults().await;

    for (i, out) in outputs.iter().enumerate() {
        assert!(out.status.success(), "upload {i}: {}", output_text(out));
    }
    assert_all_stored(&bench, &files).await;
    assert!(
        request_count(&stats, "files/upload_session/finish_batch_v2") > 0,
        "no batch was sent: {stats}"
    );
    // Each file committed exactly once: an entry of the lost batch sent again after it had
    // been applied would count twice (Dropbox counts each entry of every batch it applies).
    assert_eq!(commits(&stats), files.len() as u64, "{stats}");
    stats
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_applied_but_unanswered_is_not_sent_again() {
    a_lost_batch_answer("drop_after").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_lost_before_dropbox_saw_it_is_sent_again() {
    let stats = a_lost_batch_answer("drop_before").await;
    // The dropped batch was never applied, so its entries were committed by a later one.
    assert!(
        request_count(&stats, "files/upload_session/finish_batch_v2") >= 2,
        "{stats}"
    );
}
