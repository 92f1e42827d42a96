//! The distance model: a round trip on every answer, a paced connection.
//!
//! These check lower bounds only (a delay that must have happened), never that something was
//! fast: a busy machine can always be slower.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::start;

#[tokio::test]
async fn every_answer_comes_a_round_trip_late_and_the_hooks_show_the_setting() {
    let h = start().await;
    h.hook(Method::PUT, "distance", Some(json!({"latency_ms": 300})))
        .await;
    assert_eq!(
        h.hook(Method::GET, "distance", None).await,
        json!({"latency_ms": 300, "connection_bytes_per_sec": null})
    );

    let asked = Instant::now();
    let answer = h.rpc("users/get_current_account", json!(null)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(asked.elapsed() >= Duration::from_millis(300));

    // An error answer travels as far as a success.
    let asked = Instant::now();
    let missing = h
        .rpc("files/get_metadata", json!({"path": "/nowhere"}))
        .await;
    assert_eq!(missing.status, 409);
    assert!(asked.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_connection_carries_no_more_than_its_rate() {
    let h = start().await;
    let body = vec![7u8; 4_000_000];
    assert_eq!(h.upload("/paced.bin", &body).await.status, 200);
    // 2 MB/s: the 4 MB answer needs about 2 s; the socket buffers may take the first
    // half megabyte or so at once.
    h.hook(
        Method::PUT,
        "distance",
        Some(json!({"connection_bytes_per_sec": 2_000_000})),
    )
    .await;
    let asked = Instant::now();
    let (answer, _) = h.download("/paced.bin", None).await;
    assert_eq!(answer.status, 200);
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "4 MB came in {:?} at 2 MB/s",
        asked.elapsed()
    );

    // And the other direction: a 4 MB upload body is read at the same pace.
    let asked = Instant::now();
    assert_eq!(h.upload("/paced-up.bin", &body).await.status, 200);
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "4 MB went up in {:?} at 2 MB/s",
        asked.elapsed()
    );
}
