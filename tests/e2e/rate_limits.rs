//! Dropbox's rate limit as clients meet it: a request Dropbox refuses with 429 is sent again
//! after its `Retry-After`, however long, so the client sees a slower operation; only beyond
//! `rate_limit_wait_secs` does the operation fail, with a message that says why, and nothing
//! is stored.
//!
//! The emulator refuses either through its `rate_limit` model (every route, once the account's
//! budget is spent) or through a `status_429` fault rule on one route. The model limits the
//! bench's own account, which the test reads Dropbox back with too, so it is switched off
//! before anything is read back.

use std::time::Duration;

use dropbox_emulator::demo_credentials as demo;
use serde_json::{json, Value};

use crate::common::{lftp, output_text, random_bytes, request_count, Bench};

/// The account's budget: ten calls at once, ten more a second, and a caller who overdraws it
/// is refused for twenty seconds.
fn strict_rate_limit() -> Value {
    json!({"rate_limit": {"burst": 10, "per_second": 10.0, "retry_after_secs": 20}})
}

/// Spends the bench account's budget with calls of its own, until Dropbox refuses one: from
/// then on the account is refused for the model's `retry_after_secs`.
async fn spend_the_budget(bench: &Bench) {
    let http = reqwest::Client::new();
    let url = format!("{}/2/users/get_current_account", bench.emulator.base_url());
    for _ in 0..1000 {
        let response = http
            .post(&url)
            .bearer_auth(demo::ACCESS_TOKEN)
            .header("Content-Type", "application/json")
            .body("null")
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "20");
            return;
        }
    }
    panic!("the emulator's rate limit never refused a call");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_waits_out_a_retry_after_longer_than_half_a_minute_and_stores_the_file() {
    let bench = Bench::start().await;
    bench
        .dropbox_upload("/alice/big.bin", random_bytes(50_000))
        .await;
    // Small enough to be sent whole before the 429 comes back: the fault answers without reading
    // the body, and a body larger than the socket buffers would meet a broken pipe instead of
    // the 429 (a lost answer, which the gateway checks and sends again at once, without a wait).
    let data = random_bytes(20_000);
    std::fs::write(bench.path("big.bin"), &data).unwrap();
    bench.reset_emulator_stats().await;
    // Longer than the 30 s the gateway used to give up at.
    bench
        .set_emulator_faults(json!([{
            "kind": "status_429", "route": "files/upload", "count": 1, "retry_after": 35
        }]))
        .await;

    let alice = bench.user("alice");
    let put = bench.sftp(&alice, "put big.bin\n");
    let spool_kept = async {
        // Well inside the wait: the CLOSE is waiting, and its spool file must still be there.
        tokio::time::sleep(Duration::from_secs(15)).await;
        bench.spool_files()
    };
    let (out, spool_during_wait) = tokio::join!(put, spool_kept);

    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        spool_during_wait
            .iter()
            .any(|(_, size)| *size == data.len() as u64),
        "the upload's spool file was gone while its commit waited: {spool_during_wait:?}"
    );
    let stats = bench.emulator_stats().await;
    assert_eq!(
        request_count(&stats, "files/upload"),
        2,
        "refused once, then sent again: {stats}"
    );
    assert_eq!(bench.dropbox_download("/alice/big.bin").await, data);
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_reads_and_uploads_wait_out_the_rate_limit_model() {
    let bench = Bench::start().await;
    let stored = random_bytes(300_000);
    bench
        .dropbox_upload("/alice/stored.bin", stored.clone())
        .await;
    let new = random_bytes(200_000);
    std::fs::write(bench.path("new.bin"), &new).unwrap();
    bench.dropbox().set_realism(strict_rate_limit()).await;
    spend_the_budget(&bench).await;

    let alice = bench.user("alice");
    let out = bench
        .sftp(&alice, "ls -l\nget stored.bin got.bin\nput new.bin\n")
        .await;

    bench.dropbox().set_realism(json!({})).await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stored.bin"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read(bench.path("got.bin")).unwrap(), stored);
    assert_eq!(bench.dropbox_download("/alice/new.bin").await, new);
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_rate_limit_wait_a_put_fails_with_a_rate_limit_message_and_stores_nothing() {
    let bench = Bench::configured(|config, _| config.server.rate_limit_wait_secs = Some(5)).await;
    let old = random_bytes(40_000);
    bench.dropbox_upload("/alice/doc.bin", old.clone()).await;
    let before = bench.dropbox_stored("/alice/doc.bin").await;
    std::fs::write(bench.path("doc.bin"), random_bytes(90_000)).unwrap();
    std::fs::write(bench.path("fresh.bin"), random_bytes(10_000)).unwrap();
    bench
        .set_emulator_faults(json!([{
            "kind": "status_429", "route": "files/upload", "retry_after": 20
        }]))
        .await;

    let out = lftp(&bench, "put doc.bin\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("Dropbox rate limit"),
        "lftp should show why:\n{}",
        output_text(&out)
    );
    let out = bench.sftp(&bench.user("alice"), "put fresh.bin\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));

    bench.clear_emulator_faults().await;
    bench
        .assert_unchanged("/alice/doc.bin", &before, &old)
        .await;
    assert_eq!(bench.dropbox_metadata("/alice/fresh.bin").await, None);
    let names = bench.dropbox_list("/alice").await;
    assert_eq!(names, ["doc.bin"], "something else appeared");
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}
