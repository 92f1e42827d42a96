//! Realistic soak: 20 parallel SFTP sessions × 30 uploads against a Dropbox as unkind as the
//! real one, and not one loss, silent or reported.
//!
//! The emulator runs its realistic models (a per-user rate limit that all sessions share, the
//! namespace write lock, lag after a write, session expiry, name rules), tightened so that a
//! soak of this size meets each of them often, plus about 8 % of requests faulted: 429 with
//! Retry-After 2 s, 503, and connections reset before and after the request was applied. Each
//! session is a paramiko client (a real SFTP client that reads the status of every CLOSE and
//! rename itself), logging in one after the other (the gateway caps unauthenticated
//! connections per address) and making its own folder, then uploading 30 files: most straight to their
//! name, every third to a temporary name renamed into place afterwards (the WinSCP, FileZilla
//! and lftp pattern), one in twenty large enough to be an upload session. Then, with every
//! model and fault off, the emulator's own API is the judge: every file must be there with its
//! content_hash, and no temporary name may be left. All of these faults are ones the gateway
//! can ride through, so not even a reported failure is allowed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const SESSIONS: usize = 20;
const FILES_PER_SESSION: usize = 30;
const MIB: u64 = 1024 * 1024;
/// Each fault kind's share; four kinds make about 8 % of requests.
const FAULT_PROBABILITY: f64 = 0.02;
const FAULT_KINDS: [&str; 4] = ["status_429", "status_503", "drop_before", "drop_after"];
const SOAK_LIMIT: Duration = Duration::from_secs(420);
const WORKERS_LIMIT: Duration = Duration::from_secs(330);

struct Planned {
    local: PathBuf,
    remote: String,
    via_rename: bool,
    len: u64,
    content_hash: String,
}

/// One in twenty files spans two chunks of 4 MiB; the others are 0 bytes to 192 KiB.
fn size_of(index: usize) -> u64 {
    if index % 20 == 7 {
        5 * MIB + (index as u64 * 7919) % (2 * MIB)
    } else {
        (index as u64 * 104_729) % (192 * 1024)
    }
}

/// Every model of the realistic profile, tightened for a soak of this size: the rate limit is
/// one account's budget shared by all 20 sessions, and commits hold the namespace lock long
/// enough to overlap.
fn soak_realism() -> Value {
    let mut realism = serde_json::to_value(dropbox_emulator::Realism::realistic()).unwrap();
    realism["rate_limit"] = json!({ "burst": 40, "per_second": 40.0, "retry_after_secs": 1 });
    realism["write_lock"] = json!({ "hold_ms": 20, "shape": "alternate" });
    realism
}

fn fault_rules() -> Value {
    let rules: Vec<Value> = FAULT_KINDS
        .iter()
        .map(|kind| json!({ "kind": kind, "probability": FAULT_PROBABILITY, "retry_after": 2 }))
        .collect();
    Value::Array(rules)
}

/// Each worker thread logs in on its own connection, makes its folder, and uploads its files,
/// recording for each what the client was told. A CLOSE or rename that fails raises.
const WORKERS_SCRIPT: &str = r#"
import threading
plan = json.load(open(sys.argv[6]))
results = {}
logging_in = threading.Lock()

def upload(sftp, local, remote):
    with open(local, "rb") as src, sftp.open(remote, "w") as dst:
        dst.set_pipelined(True)
        while True:
            block = src.read(32768)
            if not block:
                break
            dst.write(block)

def worker(folder, files):
    try:
        # One login at a time: the gateway caps unauthenticated connections per address.
        with logging_in:
            client = connect(host, port, user, known_hosts, key=key)
        sftp = client.open_sftp()
        sftp.mkdir(folder)
    except Exception as e:
        for f in files:
            results[f["remote"]] = "session: %s: %s" % (type(e).__name__, e)
        return
    for f in files:
        def put():
            if f["via_rename"]:
                temp = f["remote"] + ".filepart"
                upload(sftp, f["local"], temp)
                sftp.posix_rename(temp, f["remote"])
            else:
                upload(sftp, f["local"], f["remote"])
        results[f["remote"]] = attempt(put)
    client.close()

host, port, user, key, known_hosts = sys.argv[1:6]
threads = [threading.Thread(target=worker, args=(w["folder"], w["files"])) for w in plan]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_ride_out_a_realistic_dropbox_with_nothing_lost() {
    tokio::time::timeout(SOAK_LIMIT, soak())
        .await
        .expect("the soak did not finish in time");
}

async fn soak() {
    let bench = Bench::start_with(BenchOptions {
        reads_process_counters: true,
        ..BenchOptions::configured(|config, _| config.upload.sessions_above(4 * MIB, 4 * MIB))
    })
    .await;
    let alice = bench.user("alice");
    let plan = plan_files(&bench);
    let plan_file = bench.path("soak-plan.json");
    std::fs::write(&plan_file, worker_plan(&plan).to_string()).unwrap();

    bench.dropbox().set_realism(soak_realism()).await;
    bench.set_emulator_faults(fault_rules()).await;
    bench.reset_emulator_stats().await;
    let retries_before = retries_made();
    let started = Instant::now();
    let mut command = paramiko_as(&bench, &alice, WORKERS_SCRIPT);
    command.arg(&plan_file);
    // Longer than one client's usual limit: 600 uploads through every fault and wait.
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WORKERS_LIMIT, command.output())
        .await
        .expect("the paramiko workers did not finish in time")
        .unwrap();
    assert!(
        out.status.success(),
        "paramiko workers failed:\n{}",
        output_text(&out)
    );
    let told: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let elapsed = started.elapsed();
    let retries = retries_made() - retries_before;
    let stats = bench.emulator_stats().await;
    bench.clear_emulator_faults().await;
    bench.dropbox().set_realism(json!({})).await;

    // The judge: the emulator's own API, with every model and fault off.
    let mut silent_losses = Vec::new();
    let mut failures = Vec::new();
    for file in &plan {
        let outcome = told[&file.remote].as_str().unwrap_or("no answer recorded");
        let stored = bench
            .dropbox_metadata(&format!("{}/{}", alice.root, file.remote))
            .await;
        let intact = stored.as_ref().and_then(|m| m["content_hash"].as_str())
            == Some(file.content_hash.as_str());
        match (outcome == "ok", intact) {
            (true, true) => {}
            (true, false) => silent_losses.push(format!(
                "{} ({} bytes, via rename: {}): the client was told ok, Dropbox holds {stored:?}",
                file.remote, file.len, file.via_rename
            )),
            (false, _) => failures.push(format!(
                "{} ({} bytes, via rename: {}, stored anyway: {intact}): {outcome}",
                file.remote, file.len, file.via_rename
            )),
        }
    }
    let leftovers = temporary_names_left(&bench, &alice).await;
    println!(
        "realistic soak: {} uploads in {SESSIONS} sessions ({} via rename, {} multi-chunk) in \
         {:.1} s; gateway retries {retries}; emulator: {} requests, faults injected {}, \
         rate-limit refusals {}, write-lock refusals {}; reported failures {}, silent losses {}",
        plan.len(),
        plan.iter().filter(|f| f.via_rename).count(),
        plan.iter().filter(|f| f.len > 4 * MIB).count(),
        elapsed.as_secs_f64(),
        total_requests(&stats),
        stats["faults_injected"],
        stats["rate_limit_refusals"],
        stats["write_lock_refusals"],
        failures.len(),
        silent_losses.len(),
    );
    assert!(
        silent_losses.is_empty(),
        "{} silent losses:\n{}",
        silent_losses.len(),
        silent_losses.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} uploads reported failed, although every fault here can be ridden out:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(leftovers.is_empty(), "temporary names left: {leftovers:?}");
    // The soak met what it claims to have met.
    for kind in FAULT_KINDS {
        let injected = stats["faults_injected"][kind].as_u64().unwrap_or(0);
        assert!(injected > 0, "no {kind} fault was injected: {stats}");
    }
    assert!(
        stats["rate_limit_refusals"].as_u64().unwrap_or(0) > 0,
        "the rate limit never refused a call: {stats}"
    );
    assert!(
        stats["write_lock_refusals"].as_u64().unwrap_or(0) > 0,
        "no commit met the write lock: {stats}"
    );
    assert!(
        retries > 0,
        "faults were met, so the gateway must have retried"
    );
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

fn plan_files(bench: &Bench) -> Vec<Planned> {
    (0..SESSIONS * FILES_PER_SESSION)
        .map(|i| {
            let (session, n) = (i / FILES_PER_SESSION, i % FILES_PER_SESSION);
            let local = bench.path(&format!("soak-{i:03}.bin"));
            let len = size_of(i);
            let content_hash = write_random_file(&local, len);
            Planned {
                local,
                remote: format!("s{session:02}/f{n:02}.bin"),
                via_rename: n % 3 == 1,
                len,
                content_hash,
            }
        })
        .collect()
}

/// The plan as the script reads it: one entry per session, its folder and its files.
fn worker_plan(plan: &[Planned]) -> Value {
    let sessions: Vec<Value> = plan
        .chunks(FILES_PER_SESSION)
        .enumerate()
        .map(|(session, files)| {
            let files: Vec<Value> = files
                .iter()
                .map(
                    |f| json!({ "local": f.local, "remote": f.remote, "via_rename": f.via_rename }),
                )
                .collect();
            json!({ "folder": format!("s{session:02}"), "files": files })
        })
        .collect();
    Value::Array(sessions)
}

/// Names in the session folders that are not planned files (temporary `.filepart` names, the
/// hidden names of a replace).
async fn temporary_names_left(bench: &Bench, alice: &TestUser) -> Vec<String> {
    let mut left = Vec::new();
    for session in 0..SESSIONS {
        let folder = format!("{}/s{session:02}", alice.root);
        // A folder that is missing has already failed its files.
        if bench.dropbox_metadata(&folder).await.is_none() {
            continue;
        }
        for name in bench.dropbox_list(&folder).await {
            if !name.ends_with(".bin") {
                left.push(format!("{folder}/{name}"));
            }
        }
    }
    left
}
