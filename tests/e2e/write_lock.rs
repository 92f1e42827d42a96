//! The namespace write lock: parallel changes into one folder while the emulator refuses
//! overlapping commits (`too_many_write_operations`, its `write_lock` model) all succeed, because
//! the gateway tries a refused change again after a backoff, and only a refused one. Folders
//! are made here: parallel uploads are committed in batches instead (`batch_commits`).

use std::sync::Arc;

use crate::common::{output_text, request_count, run_bounded, Bench};
use serde_json::json;

const FOLDERS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn parallel_mkdirs_into_one_folder_all_land_through_the_write_lock() {
    let bench = Arc::new(Bench::start().await);
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "mkdir inbox\n").await;
    // Each commit holds the lock long enough that commits started together overlap.
    bench
        .dropbox()
        .set_realism(json!({ "write_lock": { "hold_ms": 500, "shape": "alternate" } }))
        .await;
    bench.reset_emulator_stats().await;

    let runs: Vec<_> = (0..FOLDERS)
        .map(|i| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let batch = format!("mkdir inbox/d{i}\n");
                let command = bench.sftp_command(&bench.user("alice"), &batch, &[]);
                run_bounded(command, "sftp mkdir").await
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.await.unwrap();
        assert!(out.status.success(), "mkdir {i}: {}", output_text(&out));
    }
    let stats = bench.emulator_stats().await;
    bench.dropbox().set_realism(json!({})).await;

    for i in 0..FOLDERS {
        let made = bench
            .dropbox_metadata(&format!("/alice/inbox/d{i}"))
            .await
            .unwrap_or_else(|| panic!("d{i} is missing"));
        assert_eq!(made[".tag"], "folder", "d{i}");
    }
    let refused = stats["write_lock_refusals"].as_u64().unwrap();
    assert!(refused > 0, "no commit overlapped: {stats}");
    // Every refused change was sent again, and nothing else was.
    let made = request_count(&stats, "files/create_folder_v2");
    assert_eq!(made, FOLDERS as u64 + refused, "{stats}");
}
