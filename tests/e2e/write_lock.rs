//! The namespace write lock: parallel uploads into one folder while the emulator refuses
//! overlapping commits (`too_many_write_operations`, its `write_lock` model) all succeed, because
//! the gateway tries a refused commit again after a backoff, and only a refused one.

use std::sync::Arc;

use crate::common::{output_text, random_bytes, request_count, run_bounded, Bench};
use serde_json::json;

const UPLOADS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_into_one_folder_all_land_through_the_write_lock() {
    let bench = Arc::new(Bench::start().await);
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "mkdir inbox\n").await;
    let files: Vec<Vec<u8>> = (0..UPLOADS).map(|i| random_bytes(10_000 + i)).collect();
    for (i, data) in files.iter().enumerate() {
        std::fs::write(bench.path(&format!("f{i}.bin")), data).unwrap();
    }
    // Each commit holds the lock long enough that commits started together overlap.
    bench
        .dropbox()
        .set_realism(json!({ "write_lock": { "hold_ms": 500, "shape": "alternate" } }))
        .await;
    bench.reset_emulator_stats().await;

    let runs: Vec<_> = (0..UPLOADS)
        .map(|i| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let batch = format!("put f{i}.bin inbox/f{i}.bin\n");
                let command = bench.sftp_command(&bench.user("alice"), &batch, &[]);
                run_bounded(command, "sftp put").await
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.await.unwrap();
        assert!(out.status.success(), "upload {i}: {}", output_text(&out));
    }
    let stats = bench.emulator_stats().await;
    bench.dropbox().set_realism(json!({})).await;

    for (i, data) in files.iter().enumerate() {
        let stored = bench
            .dropbox_download(&format!("/alice/inbox/f{i}.bin"))
            .await;
        assert_eq!(&stored, data, "f{i}.bin");
    }
    let refused = stats["write_lock_refusals"].as_u64().unwrap();
    assert!(refused > 0, "no commit overlapped: {stats}");
    // Every refused commit was sent again, and nothing else was.
    let uploads = request_count(&stats, "files/upload");
    assert_eq!(uploads, UPLOADS as u64 + refused, "{stats}");
}
