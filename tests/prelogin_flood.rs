//! Pre-login flooding, measured: a client that never logs in holds connections from hundreds of
//! addresses of one IPv6 /64, then from hundreds of IPv4 addresses, then guesses passwords from
//! many threads at once. All of it comes through the PROXY protocol (one Python process plays
//! the balancer and the attacker, so the addresses can be made up and the attacker's sockets
//! are not this process's). While each attack runs, the gateway's file descriptors and resident
//! memory stay within bounds set by the limits, a real user still logs in past the /64 flood,
//! and once the attack stops both return to where they were.
//!
//! A test binary of its own, not a module of tests/e2e: it measures the test process itself
//! (/proc/self: the gateway and emulator under attack run in it), so no other test may share
//! the process.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    hash_password, open_fds, output_text, poll_until, python_with_paramiko, resident_kib,
    run_bounded, stdout, Bench, Limits,
};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const MIB: u64 = 1024;

/// The limits under test: small, so the floods are quick.
const NOT_LOGGED_IN: u64 = 20;
const NOT_LOGGED_IN_PER_ADDRESS: u64 = 5;
const PASSWORD_CHECKS: u64 = 2;
/// One argon2id check (the default parameters: m = 19 MiB).
const ARGON2_KIB: u64 = 19 * MIB;

/// `hold COUNT SECONDS PREFIX`: opens COUNT connections, the n-th claiming to come from the
/// n-th address under PREFIX, and reads each one's SSH banner; holds them SECONDS, then closes
/// them. `guess THREADS SECONDS PREFIX`: THREADS threads each try wrong passwords for alice
/// until SECONDS have passed, thread n from the n-th address. The n-th address under an IPv6
/// PREFIX such as `2001:db8::` is PREFIX + n; under an IPv4 one such as `10.7` it is
/// `10.7.(n / 200).(n % 200 + 1)`.
/// `login IP`: logs in as alice with her password from IP and lists her folder.
/// Prints one JSON line.
const ATTACKER: &str = r#"
import json, socket, sys, threading, time
import paramiko
port, mode = int(sys.argv[1]), sys.argv[2]
password = sys.argv[3]
args = sys.argv[4:]

def address(prefix, n):
    return prefix + str(n) if ":" in prefix else "%s.%d.%d" % (prefix, n // 200, n % 200 + 1)

def proxied(ip):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    family, destination = ("TCP6", "::1") if ":" in ip else ("TCP4", "127.0.0.1")
    s.sendall(f"PROXY {family} {ip} {destination} 40000 {port}\r\n".encode())
    return s

def try_proxied(ip):
    try:
        return proxied(ip)
    except OSError:
        return None

def banner(s):
    if s is None:
        return False
    s.settimeout(5)
    try:
        return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False

result = {}
if mode == "hold":
    count, seconds, prefix = int(args[0]), float(args[1]), args[2]
    sockets = [try_proxied(address(prefix, n)) for n in range(count)]
    result["admitted"] = sum(1 for s in sockets if banner(s))
    print(json.dumps(result), flush=True)
    time.sleep(seconds)
    for s in sockets:
        if s is not None:
            s.close()
elif mode == "guess":
    threads, seconds, prefix = int(args[0]), float(args[1]), args[2]
    deadline = time.time() + seconds
    counts = {"refused": 0, "attempts": 0, "errors": 0}
    lock = threading.Lock()
    def guess(n):
        while time.time() < deadline:
            key = "refused"
            try:
                t = paramiko.Transport(proxied(address(prefix, n)))
                t.start_client(timeout=30)
                try:
                    t.auth_password("alice", "guess %d" % n)
                except paramiko.AuthenticationException:
                    key = "attempts"
                t.close()
            except Exception:
                key = "refused"
            with lock:
                counts[key] += 1
    workers = [threading.Thread(target=guess, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result.update(counts)
elif mode == "login":
    t = paramiko.Transport(proxied(args[0]))
    t.start_client(timeout=30)
    t.auth_password("alice", password)
    sftp = paramiko.SFTPClient.from_transport(t)
    result["files"] = sftp.listdir(".")
    t.close()
print(json.dumps(result), flush=True)
"#;

async fn bench() -> Bench {
    let hash = hash_password(PASSWORD).unwrap();
    // Bans off: every guess gets its slow check, the flood at full strength.
    let bench = Bench::configured(move |config, _| {
        config.user("alice").password_hash = Some(hash);
        config.limits = Limits {
            max_login_failures: Some(0),
            max_unauthenticated_connections: Some(NOT_LOGGED_IN),
            max_unauthenticated_per_address: Some(NOT_LOGGED_IN_PER_ADDRESS),
            max_concurrent_password_checks: Some(PASSWORD_CHECKS),
            ..Limits::default()
        };
        config.server.proxy_protocol = Some(true);
        config.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    std::fs::write(bench.path("attacker.py"), ATTACKER).unwrap();
    bench
}

/// Starts the attacker with `args`; its first JSON line comes back once it is printed.
fn attacker(bench: &Bench, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command
        .arg(bench.path("attacker.py"))
        .arg(bench.port().to_string())
        .args(args);
    command
}

/// The first JSON line of a running attacker, which keeps running.
async fn first_line(child: &mut tokio::process::Child) -> Value {
    use tokio::io::AsyncBufReadExt;
    let out = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(out);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the attacker reports within a minute")
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

async fn run(bench: &Bench, args: &[&str]) -> Value {
    let out = run_bounded(attacker(bench, args), "python3 (attacker)").await;
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_str(stdout(&out).lines().last().unwrap_or("")).unwrap()
}

async fn login(bench: &Bench, ip: &str) -> Value {
    run(bench, &["login", PASSWORD, ip]).await
}

/// Holds `count` connections from addresses `prefix` + n for a few seconds; returns how many
/// were admitted and the most fds this process had open meanwhile.
async fn hold_flood(bench: &Bench, count: u64, prefix: &str) -> (u64, u64) {
    let mut command = attacker(bench, &["hold", PASSWORD, &count.to_string(), "3", prefix]);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admitted = first_line(&mut child).await["admitted"].as_u64().unwrap();
    let mut peak_fds = 0;
    for _ in 0..10 {
        peak_fds = peak_fds.max(open_fds("self"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    assert!(status.unwrap().unwrap().success());
    (admitted, peak_fds)
}

/// Waits until this process has no more fds open than `baseline` (+ `slack`); the count.
async fn fds_back_to(baseline: u64, slack: u64) -> u64 {
    poll_until(Duration::from_secs(20), || {
        std::future::ready(open_fds("self") <= baseline + slack)
    })
    .await;
    open_fds("self")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pre_login_flood_is_held_to_the_limits_and_leaves_nothing_behind() {
    let bench = bench().await;
    bench
        .dropbox_upload("/alice/hello.txt", b"hi".to_vec())
        .await;
    // Warm up (first login, first argon2 check, connection pools), then take the baseline.
    let first = login(&bench, "203.0.113.1").await;
    assert_eq!(first["files"], serde_json::json!(["hello.txt"]), "{first}");
    let base_fds = open_fds("self");
    let base_kib = resident_kib("self");
    // Sockets of the gateway's own work (emulator requests, a login in progress) come and go.
    let slack = 12;

    // 300 addresses of one IPv6 /64 are one address: 5 connections.
    let (admitted, peak) = {
        let flood = hold_flood(&bench, 300, "2001:db8:1:2::");
        let during = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            login(&bench, "203.0.113.2").await
        };
        let ((admitted, peak), user) = tokio::join!(flood, during);
        assert_eq!(user["files"], serde_json::json!(["hello.txt"]), "{user}");
        (admitted, peak)
    };
    eprintln!("/64 flood: {admitted} admitted, fds {base_fds} -> {peak}");
    assert_eq!(admitted, NOT_LOGGED_IN_PER_ADDRESS);
    assert!(
        peak <= base_fds + NOT_LOGGED_IN_PER_ADDRESS + slack,
        "{peak} fds"
    );
    let after = fds_back_to(base_fds, 2).await;
    assert!(
        after <= base_fds + 2,
        "fds after the /64 flood: {after} vs {base_fds}"
    );

    // 300 IPv4 addresses: the cap on connections not logged in, over all addresses.
    let (admitted, peak) = hold_flood(&bench, 300, "10.7").await;
    eprintln!("IPv4 flood: {admitted} admitted, fds {base_fds} -> {peak}");
    assert_eq!(admitted, NOT_LOGGED_IN);
    assert!(peak <= base_fds + NOT_LOGGED_IN + slack, "{peak} fds");
    let after = fds_back_to(base_fds, 2).await;
    assert!(
        after <= base_fds + 2,
        "fds after the IPv4 flood: {after} vs {base_fds}"
    );

    // Password guesses from 16 threads at once: at most two argon2 checks in memory.
    let peak_kib = Arc::new(AtomicU64::new(base_kib));
    let sampler = {
        let peak_kib = peak_kib.clone();
        tokio::spawn(async move {
            loop {
                peak_kib.fetch_max(resident_kib("self"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let guesses = run(&bench, &["guess", PASSWORD, "16", "6", "10.9"]).await;
    sampler.abort();
    let peak_kib = peak_kib.load(Ordering::Relaxed);
    eprintln!(
        "password flood: {guesses}, RSS {base_kib} KiB -> peak {peak_kib} KiB (+{} MiB)",
        (peak_kib.saturating_sub(base_kib)) / MIB
    );
    assert!(guesses["attempts"].as_u64().unwrap() >= 4, "{guesses}");
    let bound = PASSWORD_CHECKS * ARGON2_KIB + 48 * MIB;
    assert!(
        peak_kib <= base_kib + bound,
        "RSS rose {} MiB under the password flood; bound {} MiB",
        (peak_kib - base_kib) / MIB,
        bound / MIB
    );

    // Afterwards: the fds are back, memory is not still growing, and alice logs in.
    let after = fds_back_to(base_fds, 2).await;
    assert!(after <= base_fds + 2, "{after} vs {base_fds}");
    let settled = resident_kib("self");
    assert!(
        settled <= base_kib + bound,
        "RSS {settled} KiB after, {base_kib} before"
    );
    let user = login(&bench, "203.0.113.3").await;
    assert_eq!(user["files"], serde_json::json!(["hello.txt"]), "{user}");
}
