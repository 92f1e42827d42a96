//! Fault soak: many real `sftp` uploads while the emulator misbehaves, and not one silent loss.
//!
//! The emulator throttles (429), fails (503), drops connections before and after applying a
//! request, and expires access tokens, on about one request in five, the token endpoint
//! included. 200 files of mixed sizes (most small, one in eight a multi-chunk upload session)
//! go up through 8 parallel workers, one `sftp -b` session per file, so its exit status says
//! whether the client saw that file succeed. Then, with the faults cleared, the emulator's own
//! API is the judge: every upload the client saw succeed must be there with its content_hash.
//! An upload the client saw fail is allowed (it was reported); one reported as done but missing
//! or different is a silent loss and fails the test. No spool file may remain, and the gateway
//! must still serve a clean upload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const FILES: usize = 200;
const WORKERS: usize = 8;
const MIB: u64 = 1024 * 1024;
/// Each fault kind's share; five kinds make about one faulty request in five.
const FAULT_PROBABILITY: f64 = 0.045;
/// The whole soak must end within this (it takes well under a minute on 2 cores).
const SOAK_LIMIT: Duration = Duration::from_secs(240);

struct Planned {
    local: PathBuf,
    remote: String,
    len: u64,
    content_hash: String,
}

struct Outcome {
    succeeded: bool,
    output: String,
}

/// Sizes: 1 in 8 files spans 2–4 chunks of 4 MiB (5–13 MiB); the others are 0 bytes to 1 MiB.
fn size_of(index: usize) -> u64 {
    if index % 8 == 3 {
        5 * MIB + (index as u64 * 7919) % (8 * MIB)
    } else {
        match index % 5 {
            0 => index as u64 % 3,
            1 => 1000 + index as u64 * 37,
            _ => (index as u64 * 104_729) % MIB,
        }
    }
}

fn fault_rules() -> Value {
    let kinds = [
        "status_429",
        "status_503",
        "drop_before",
        "drop_after",
        "expired_token",
    ];
    let rules: Vec<Value> = kinds
        .iter()
        .map(|kind| json!({ "kind": kind, "probability": FAULT_PROBABILITY, "retry_after": 1 }))
        .collect();
    Value::Array(rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_injected_faults_with_no_silent_loss() {
    tokio::time::timeout(SOAK_LIMIT, soak())
        .await
        .expect("the soak did not finish in time");
}

async fn soak() {
    let bench = Arc::new(
        Bench::start_with(BenchOptions {
            reads_process_counters: true,
            ..BenchOptions::configured(|config, _| config.upload.sessions_above(4 * MIB, 4 * MIB))
        })
        .await,
    );
    let alice = bench.user("alice");
    let plan: Vec<Planned> = (0..FILES)
        .map(|i| {
            let local = bench.path(&format!("soak-{i:03}.bin"));
            let len = size_of(i);
            let content_hash = write_random_file(&local, len);
            Planned {
                local,
                remote: format!("soak-{i:03}.bin"),
                len,
                content_hash,
            }
        })
        .collect();
    let plan = Arc::new(plan);

    bench.set_emulator_faults(fault_rules()).await;
    let retries_before = retries_made();
    let requests_before = total_requests(&bench.emulator_stats().await);
    let started = Instant::now();

    let next = Arc::new(Mutex::new(0usize));
    let outcomes: Arc<Mutex<Vec<Option<Outcome>>>> =
        Arc::new(Mutex::new((0..FILES).map(|_| None).collect()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (bench, plan, next, outcomes) =
                (bench.clone(), plan.clone(), next.clone(), outcomes.clone());
            tokio::spawn(async move {
                let alice = bench.user("alice");
                loop {
                    let index = {
                        let mut next = next.lock().unwrap();
                        let index = *next;
                        *next += 1;
                        index
                    };
                    let Some(file) = plan.get(index) else { return };
                    let batch = format!("put {} {}\n", file.local.display(), file.remote);
                    let command = bench.sftp_command(&alice, &batch, &[]);
                    let out = run_bounded(command, "sftp put").await;
                    outcomes.lock().unwrap()[index] = Some(Outcome {
                        succeeded: out.status.success(),
                        output: output_text(&out),
                    });
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let retries = retries_made() - retries_before;
    let requests = total_requests(&bench.emulator_stats().await) - requests_before;
    bench.clear_emulator_faults().await;

    // The judge: the emulator's own API, faults off.
    let outcomes: Vec<Outcome> = std::mem::take(&mut *outcomes.lock().unwrap())
        .into_iter()
        .map(|o| o.expect("every file was tried"))
        .collect();
    let mut silent_losses = Vec::new();
    let mut failed = 0;
    let mut failed_but_stored = 0;
    for (file, outcome) in plan.iter().zip(&outcomes) {
        let stored = bench
            .dropbox_metadata(&format!("{}/{}", alice.root, file.remote))
            .await;
        let stored_hash = stored
            .as_ref()
            .and_then(|m| m["content_hash"].as_str().map(str::to_string));
        let intact = stored_hash.as_deref() == Some(file.content_hash.as_str());
        if outcome.succeeded && !intact {
            silent_losses.push(format!(
                "{} ({} bytes): sftp succeeded, Dropbox holds {:?}\n{}",
                file.remote, file.len, stored, outcome.output
            ));
        }
        if !outcome.succeeded {
            failed += 1;
            failed_but_stored += intact as usize;
        }
    }
    let succeeded = FILES - failed;
    let big = plan.iter().filter(|f| f.len > 4 * MIB).count();
    println!(
        "soak: attempted {FILES} ({big} multi-chunk), succeeded {succeeded}, reported failed \
         {failed} (of which {failed_but_stored} had in fact landed), retries {retries}, \
         emulator requests {requests}, {:.1} s",
        elapsed.as_secs_f64()
    );
    for (file, outcome) in plan.iter().zip(&outcomes) {
        if !outcome.succeeded {
            println!("reported failure: {}\n{}", file.remote, outcome.output);
        }
    }
    assert!(
        silent_losses.is_empty(),
        "{} silent losses:\n{}",
        silent_losses.len(),
        silent_losses.join("\n")
    );
    assert!(
        retries > 0,
        "faults were injected, so the client must have retried"
    );
    // Failures are allowed but must stay rare: the retry policy rides out one fault in five.
    assert!(
        failed <= FILES / 10,
        "{failed} of {FILES} uploads failed; the retry policy should ride these faults out"
    );

    bench.wait_for_empty_spool(Duration::from_secs(10)).await;

    // Still serving.
    let data = random_bytes(3000);
    std::fs::write(bench.path("after.bin"), &data).unwrap();
    bench.sftp_ok(&alice, "put after.bin\n").await;
    let stored = bench
        .dropbox_metadata(&format!("{}/after.bin", alice.root))
        .await
        .expect("the clean upload after the soak is stored");
    assert_eq!(stored["content_hash"], json!(content_hash(&data)));
}
