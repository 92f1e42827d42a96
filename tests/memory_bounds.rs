//! paramiko's `get` prefetches a whole file at once (thousands of READs in flight); the
//! gateway must answer them with bounded memory, not by buffering the file.
//!
//! A test binary of its own, not a module of tests/e2e: it measures the test process's
//! resident memory (the emulator and the gateway run in it), which must belong to this download
//! alone.

mod common;

use std::time::Duration;

use common::{paramiko_as_alice, resident_kib, write_random_file, Bench};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_prefetching_get_of_a_large_file_keeps_memory_bounded() {
    let bench = Bench::start().await;
    // As large as one files/upload can store, so that it is well above the bound below.
    let size = 144 * MIB;
    let hash = write_random_file(&bench.path("source.bin"), size);
    let data = std::fs::read(bench.path("source.bin")).unwrap();
    bench.dropbox_upload("/alice/big.bin", data).await;
    assert_eq!(
        bench.dropbox_metadata("/alice/big.bin").await.unwrap()["content_hash"],
        hash
    );

    let before = resident_kib("self");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident_kib("self"), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let result = paramiko_as_alice(
        &bench,
        r#"
f = sftp.open("big.bin", "r")
requests = f.stat().st_size // 32768 + 1
f.close()
result["requests"] = requests
result["get"] = attempt(lambda: sftp.get("big.bin", "copy.bin"))
"#,
    )
    .await;
    sampler.abort();

    assert_eq!(result["get"], "ok", "{result}");
    assert!(result["requests"].as_u64().unwrap() > 3000, "{result}");
    assert_eq!(
        std::fs::read(bench.path("copy.bin")).unwrap(),
        std::fs::read(bench.path("source.bin")).unwrap()
    );
    // The gateway's read-ahead window (32 MiB by default) and the emulator's four range
    // answers live in this process: measured 61-64 MiB for a 96 or a 144 MiB file alike. A
    // gateway that buffered the file would pass the file's size.
    let grew_mib = (peak.load(std::sync::atomic::Ordering::Relaxed) - before) / 1024;
    assert!(
        grew_mib < 96,
        "serving a {} MiB prefetching get grew the gateway's memory by {grew_mib} MiB",
        size / MIB
    );
}
