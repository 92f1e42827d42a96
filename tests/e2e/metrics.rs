//! `/metrics` and `/healthz` end to end: a real OpenSSH session puts and gets a file,
//! and the counters read back from `/metrics` moved by what it did; `/healthz` is 200 while
//! serving and 503 once a shutdown has begun.
//!
//! The counters are process-wide: the bench runs alone in the process while this test reads
//! them (see `BenchOptions::reads_process_counters`), and checks differences.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{poll_until, random_bytes, Bench, BenchOptions, Metrics};

async fn bench() -> Bench {
    Bench::start_with(BenchOptions {
        reads_process_counters: true,
        ..BenchOptions::configured(|config, _| {
            config.metrics = Some(Metrics {
                listen: "127.0.0.1:0".into(),
            })
        })
    })
    .await
}

/// Every sample of the text format: `name{labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("a sample line");
            (key.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

async fn get(bench: &Bench, path: &str) -> (u16, String) {
    let addr = bench.gateway.metrics_addr().expect("metrics are on");
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn samples(bench: &Bench) -> HashMap<String, f64> {
    let (status, text) = get(bench, "/metrics").await;
    assert_eq!(status, 200);
    parse(&text)
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_move_as_operations_happen_and_health_reflects_shutdown() {
    let bench = bench().await;
    assert_eq!(get(&bench, "/healthz").await, (200, "ok\n".to_string()));
    let before = samples(&bench).await;

    let data = random_bytes(200_000);
    std::fs::write(bench.path("up.bin"), &data).unwrap();
    let alice = bench.user("alice");
    bench
        .sftp_ok(
            &alice,
            "put up.bin up.bin\nget up.bin down.bin\n-rm missing.bin\n",
        )
        .await;
    let mut wrong = bench.user("bob");
    wrong.name = "alice";
    assert!(!bench.sftp(&wrong, "ls\n").await.status.success());

    // The disconnect is counted after the client has gone. The gauge is compared with where it
    // was, not with zero: a gateway of an earlier test in this process whose runtime ended with
    // a connection open never counted that one closed.
    let open_before = before["dropgate_connections_open"];
    let settled = poll_until(Duration::from_secs(10), || async {
        samples(&bench).await["dropgate_connections_open"] <= open_before
    })
    .await;
    assert!(settled, "connections still open");
    let after = samples(&bench).await;
    let moved = |key: &str| moved(&before, &after, key);

    assert_eq!(
        moved("dropgate_connections_total{result=\"accepted\"}"),
        2.0
    );
    assert_eq!(
        moved("dropgate_logins_total{method=\"publickey\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        moved("dropgate_logins_total{method=\"publickey\",result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        moved("dropgate_operations_total{op=\"upload\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        moved("dropgate_operations_total{op=\"download\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        moved("dropgate_operations_total{op=\"remove\",result=\"failed\"}"),
        1.0
    );
    assert_eq!(moved("dropgate_uploaded_bytes_total"), data.len() as f64);
    assert_eq!(moved("dropgate_downloaded_bytes_total"), data.len() as f64);
    assert_eq!(moved("dropgate_upload_commit_seconds_count"), 1.0);
    assert!(moved("dropgate_upload_commit_seconds_sum") > 0.0);
    assert_eq!(
        moved("dropgate_dropbox_requests_total{route=\"files/upload\",status=\"200\"}"),
        1.0
    );
    // The missing file is looked up first: Dropbox answers 409 path/not_found.
    let not_found = "dropgate_dropbox_requests_total{route=\"files/get_metadata\",status=\"409\"}";
    assert!(moved(not_found) >= 1.0, "{after:#?}");
    assert!(after.contains_key("dropgate_dropbox_retries_total"));

    let drainer = bench.gateway.drainer();
    assert!(drainer.drain(Duration::from_secs(5)).await);
    assert_eq!(
        get(&bench, "/healthz").await,
        (503, "draining\n".to_string())
    );
}
