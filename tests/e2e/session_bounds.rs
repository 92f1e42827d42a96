//! What one client can make the gateway hold, measured on `dropgate serve` as a process of its
//! own (its resident memory and open descriptors read from /proc), attacked by paramiko:
//!
//! - a client that leaves its replies unread (window 0), floods requests and vanishes: within
//!   seconds of the socket closing, its half upload is gone (spool file, STAT, the name blocked
//!   for a user without `overwrite`) and memory and descriptors are back to where they were;
//! - requests with quarter-MiB paths count at their real size against the session's 1 MiB
//!   request budget, so a flood of them cannot queue hundreds of MB;
//! - channels per connection, SFTP sessions per user and open handles per user are capped,
//!   with the reason given to the client.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{
    open_fds, poll_until, python_with_paramiko, resident_kib, Permissions, ServeDir,
    PARAMIKO_PRELUDE,
};
use serde_json::Value;

/// KiB in a MiB: RSS is read in KiB.
const MIB: u64 = 1024;

/// `dropgate serve` running with the bench's usual config changed by `configure`.
struct Gateway {
    served: ServeDir,
    process: tokio::process::Child,
}

impl Gateway {
    async fn start(configure: impl FnOnce(&mut crate::common::GatewayConfig)) -> Gateway {
        let served = ServeDir::new().await;
        let mut config = served.config();
        configure(&mut config);
        let log = std::fs::File::create(served.path("gateway.log")).unwrap();
        let process = served.serve(&config, "dropgate=info", log.into()).await;
        Gateway { served, process }
    }

    fn pid(&self) -> String {
        self.process.id().unwrap().to_string()
    }

    /// The gateway's resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        resident_kib(&self.pid())
    }

    /// The gateway's open file descriptors.
    fn fds(&self) -> usize {
        open_fds(&self.pid()) as usize
    }

    /// What the gateway has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.served.path("gateway.log")).unwrap_or_default()
    }

    fn spool_files(&self) -> usize {
        std::fs::read_dir(self.served.path("spool"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// Starts a paramiko client as `user` running `mode` of [`CLIENT`]; it prints one JSON line
    /// once its attack is in place, then waits to be killed.
    fn attack(&self, user: &str, mode: &str) -> Attacker {
        let mut child = tokio::process::Command::new(python_with_paramiko())
            .args(["-c", &[PARAMIKO_PRELUDE, CLIENT].concat(), "127.0.0.1"])
            .arg(self.served.port.to_string())
            .arg(user)
            .arg(self.served.path(user))
            .arg(self.served.known_hosts())
            .arg(mode)
            .current_dir(self.served.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        Attacker {
            child,
            lines: tokio::io::BufReader::new(stdout),
        }
    }

    /// Runs a one-shot paramiko script as `user` (`sftp` connected) and returns its `result`.
    async fn client(&self, user: &str, script: &str) -> Value {
        let mut attacker = self.attack(user, &format!("script:{script}"));
        let result = attacker.report().await;
        attacker.kill().await;
        result
    }

    async fn dropbox_metadata(&self, path: &str) -> Option<Value> {
        self.served.dropbox().metadata(path).await
    }

    /// Descriptors no more than before, memory within 8 MiB of before.
    fn assert_near_baseline(
        &self,
        (fds_before, rss_before): (usize, u64),
        (fds_after, rss_after): (usize, u64),
    ) {
        assert!(
            fds_after <= fds_before,
            "descriptors: {fds_after} > {fds_before}\n{}",
            self.log()
        );
        assert!(
            rss_after < rss_before + 8 * MIB,
            "memory did not come back: {rss_before} KiB before, {rss_after} KiB after"
        );
    }

    /// Polls until the gateway's descriptors are back to `baseline` (or fewer: idle HTTP
    /// connections to Dropbox may close meanwhile); the count seen last.
    async fn fds_back_to(&self, baseline: usize, limit: Duration) -> usize {
        let mut seen = self.fds();
        poll_until(limit, || {
            seen = self.fds();
            std::future::ready(seen <= baseline)
        })
        .await;
        seen
    }
}

struct Attacker {
    child: tokio::process::Child,
    lines: tokio::io::BufReader<tokio::process::ChildStdout>,
}

impl Attacker {
    /// The client's JSON line (it prints it once the attack is in place).
    async fn report(&mut self) -> Value {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(120), self.lines.read_line(&mut line))
            .await
            .expect("the client reported within 120 s")
            .unwrap();
        if read == 0 {
            use tokio::io::AsyncReadExt;
            let mut stderr = String::new();
            if let Some(mut pipe) = self.child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            panic!("the client ended without a report:\n{stderr}");
        }
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// SIGKILL: the client vanishes, its socket closed by the kernel.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// The attacking client. Modes: `abandon` (a half upload, then replies left unread and a
/// flood of REALPATHs), `abandon_writes:N` (the same, then N more WRITEs of 32 KiB sent
/// blind), `huge_stats:N` (the window spent, then N STATs of 250 KiB paths),
/// `many_channels` (60 channels on one connection, an SFTP session on each, ten uploads opened
/// in each session), and `script:...` (runs the code after the colon).
/// (After [`PARAMIKO_PRELUDE`].)
const CLIENT: &str = r#"
import socket, struct, time

host, port, user, key, known_hosts, mode = sys.argv[1:7]

def sftp_packet(kind, request_id, path):
    body = bytes([kind]) + struct.pack(">II", request_id, len(path)) + path
    return struct.pack(">I", len(body)) + body

REALPATH, STAT = 16, 17

def flood(chan, kind, path, count):
    """Sends requests and reads no reply; stops when the server takes no more for 5 s."""
    chan.settimeout(5)
    sent = 0
    try:
        for i in range(count):
            chan.sendall(sftp_packet(kind, 1000000 + i, path))
            sent += 1
    except socket.timeout:
        pass
    return sent

def spend_window(chan):
    """REALPATH of a 4 KiB path is answered with 8 KiB: 400 of them fill the 2 MiB window
    paramiko opens, and it is never reopened, since nobody reads the replies."""
    path = (("/" + "d" * 200) * 20).encode()
    sent = flood(chan, REALPATH, path, 400)
    deadline = time.time() + 30
    while time.time() < deadline and len(chan.in_buffer) < 2000000:
        time.sleep(0.05)
    return sent

result = {}
client = connect(host, port, user, known_hosts, key=key)
if mode.startswith("abandon"):
    sftp = client.open_sftp()
    f = sftp.open("half.bin", "w")
    for _ in range(32):
        f.write(b"x" * 32768)
    f.flush()
    result["written"] = 32 * 32768
    result["realpaths"] = spend_window(sftp.sock)
    result["unread"] = len(sftp.sock.in_buffer)
    if mode.startswith("abandon_writes"):
        # More of the upload, behind replies nobody reads: WRITE data fills the request budget.
        sent, offset = 0, 32 * 32768
        sftp.sock.settimeout(5)
        try:
            for i in range(int(mode.split(":")[1])):
                body = (bytes([6]) + struct.pack(">I", 2000000 + i) + struct.pack(">I", len(f.handle))
                        + f.handle + struct.pack(">QI", offset, 32768) + b"y" * 32768)
                sftp.sock.sendall(struct.pack(">I", len(body)) + body)
                sent, offset = sent + 1, offset + 32768
        except socket.timeout:
            pass
        result["writes"] = sent
elif mode.startswith("huge_stats"):
    count = int(mode.split(":")[1])
    sftp = client.open_sftp()
    result["realpaths"] = spend_window(sftp.sock)
    result["unread"] = len(sftp.sock.in_buffer)
    path = (("/" + "e" * 255) * 1000).encode()
    result["stat_bytes"] = len(path)
    result["stats"] = flood(sftp.sock, STAT, path, count)
elif mode == "many_channels":
    # paramiko's exception names only the code; the server's reason is in its log.
    import logging
    class Collect(logging.Handler):
        lines = []
        def emit(self, record):
            self.lines.append(record.getMessage())
    logging.getLogger("paramiko").addHandler(Collect())
    transport = client.get_transport()
    channels, refusals = [], {}
    for i in range(60):
        try:
            channels.append(transport.open_session(timeout=10))
        except Exception as e:
            logged = [l for l in Collect.lines if "open FAILED" in l]
            text = logged[-1] if logged else "%s: %s" % (type(e).__name__, e)
            text = text.split(": ", 1)[-1]
            refusals[text] = refusals.get(text, 0) + 1
    result["channels"] = len(channels)
    result["channel_refusals"] = refusals
    sessions, session_refusals = [], {}
    for chan in channels:
        try:
            chan.invoke_subsystem("sftp")
            sessions.append(paramiko.SFTPClient(chan))
        except Exception as e:
            time.sleep(0.2)
            text = chan.recv_stderr(4096).decode() if chan.recv_stderr_ready() else str(e)
            session_refusals[text.strip()] = session_refusals.get(text.strip(), 0) + 1
    result["sessions"] = len(sessions)
    result["session_refusals"] = session_refusals
    # One more connection of the same user: the user's cap spans connections.
    other = connect(host, port, user, known_hosts, key=key)
    chan = other.get_transport().open_session(timeout=10)
    result["other_connection"] = attempt(lambda: chan.invoke_subsystem("sftp"))
    time.sleep(0.2)
    result["other_stderr"] = chan.recv_stderr(4096).decode() if chan.recv_stderr_ready() else ""
    handles, handle_refusals = [], {}
    for i, sftp in enumerate(sessions):
        for j in range(10):
            try:
                handles.append(sftp.open("open-%02d-%02d.bin" % (i, j), "w"))
            except IOError as e:
                handle_refusals[str(e)] = handle_refusals.get(str(e), 0) + 1
    result["handles"] = len(handles)
    result["handle_refusals"] = handle_refusals
elif mode.startswith("script:"):
    sftp = client.open_sftp()
    exec(mode[len("script:"):])
print(json.dumps(result), flush=True)
time.sleep(600)
"#;

/// STAT of `path` from a fresh session: the size, or the error as the client sees it.
async fn stat(gateway: &Gateway, user: &str, path: &str) -> Value {
    let script = format!(
        "try:\n    result['stat'] = sftp.stat({path:?}).st_size\n\
         except Exception as e:\n    result['stat'] = '%s: %s' % (type(e).__name__, e)"
    );
    gateway.client(user, &script).await["stat"].clone()
}

/// Uploads `data` to `path` from a fresh session; "ok" or the error.
async fn upload(gateway: &Gateway, user: &str, path: &str, data: &str) -> String {
    let script = format!(
        "def put():\n    with sftp.open({path:?}, 'w') as f:\n        f.write({data:?})\n\
         result['put'] = attempt(put)"
    );
    let result = gateway.client(user, &script).await;
    result["put"].as_str().unwrap().to_string()
}

/// Within 5 s the gateway's descriptors are back to `fds_before` (or fewer), and its memory
/// within 8 MiB of `rss_before`.
async fn assert_back_to_baseline(gateway: &Gateway, fds_before: usize, rss_before: u64) {
    let fds_after = gateway
        .fds_back_to(fds_before, Duration::from_secs(5))
        .await;
    let rss_after = gateway.rss_kib();
    println!(
        "fds before {fds_before}, after {fds_after}; \
         RSS before {rss_before} KiB, after {rss_after} KiB"
    );
    gateway.assert_near_baseline((fds_before, rss_before), (fds_after, rss_after));
}

/// The abandoned `half.bin` is not there for another session's STAT.
async fn assert_half_upload_gone(gateway: &Gateway) {
    let after = stat(gateway, "alice", "half.bin").await;
    assert!(
        after
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("no such file"),
        "{after}"
    );
}

/// Baseline memory and descriptors, after one session has warmed up the gateway (its HTTP
/// connection to Dropbox, its allocator).
async fn warm_baseline(gateway: &Gateway, user: &str) -> (u64, usize) {
    let warm = gateway
        .client(
            user,
            "result['warm'] = attempt(lambda: sftp.stat('nothing-here'))",
        )
        .await;
    assert!(
        warm["warm"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("no such file"),
        "{warm}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    (gateway.rss_kib(), gateway.fds())
}

/// An upload-only partner's client uploads half a file, stops reading replies while
/// flooding requests, and vanishes. Within 5 s of the kill the half upload is gone: no spool
/// file, STAT from another session says no such file, the same user can upload the name again,
/// and the gateway's descriptors are back to the baseline. On the old code the session waited
/// forever for window, holding all of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_client_with_unread_replies_leaves_nothing_behind() {
    let gateway = Gateway::start(|config| {
        config.user("alice").permissions = Some(Permissions::preset("upload-only"))
    })
    .await;
    let (rss_before, fds_before) = warm_baseline(&gateway, "alice").await;

    let mut attacker = gateway.attack("alice", "abandon");
    let report = attacker.report().await;
    println!("attack: {report}");
    assert!(
        report["unread"].as_u64().unwrap() > 1_900_000,
        "the window is spent: {report}"
    );
    assert_eq!(gateway.spool_files(), 1, "the half upload is spooled");
    // Another session sees the upload in progress.
    assert_eq!(stat(&gateway, "alice", "half.bin").await, 1024 * 1024);
    let fds_during = gateway.fds();

    attacker.kill().await;
    let cleaned = poll_until(Duration::from_secs(5), || {
        std::future::ready(gateway.spool_files() == 0)
    })
    .await;
    assert!(
        cleaned,
        "the spool file is still there 5 s after the client vanished"
    );
    println!("fds during the attack {fds_during}");
    assert_back_to_baseline(&gateway, fds_before, rss_before).await;
    assert_half_upload_gone(&gateway).await;
    assert_eq!(upload(&gateway, "alice", "half.bin", "whole").await, "ok");
    let stored = gateway.dropbox_metadata("/alice/half.bin").await.unwrap();
    assert_eq!(stored["size"], 5, "{stored}");
}

/// With the window spent, 400 STATs of 250 KiB paths. Counted at their real size they
/// fit the 1 MiB request budget a few at a time: the gateway grows by less than 32 MiB (the
/// old code, counting each at 128 bytes, queued all 400: about +100 MB). The client, sending
/// while reading nothing, then stalls its own connection: the gateway stops reading the socket,
/// so when the client vanishes its FIN cannot even arrive. The session gives such a client up
/// once no reply could be sent for 30 s; memory and descriptors are back to the baseline soon
/// after.
#[tokio::test(flavor = "multi_thread")]
async fn requests_with_huge_paths_count_at_their_size() {
    let gateway = Gateway::start(|_| {}).await;
    let (rss_before, fds_before) = warm_baseline(&gateway, "alice").await;

    let mut attacker = gateway.attack("alice", "huge_stats:400");
    let report = attacker.report().await;
    let rss_during = gateway.rss_kib();
    let fds_during = gateway.fds();
    println!("attack: {report}; RSS {rss_before} KiB → {rss_during} KiB, fds {fds_before} → {fds_during}");
    assert!(report["stat_bytes"].as_u64().unwrap() > 250_000, "{report}");
    assert!(
        report["stats"].as_u64().unwrap() < 100,
        "the gateway kept taking 250 KiB requests: {report}"
    );
    assert!(
        rss_during < rss_before + 32 * MIB,
        "the flood grew the gateway from {rss_before} KiB to {rss_during} KiB"
    );

    attacker.kill().await;
    let fds_after = gateway
        .fds_back_to(fds_before, Duration::from_secs(45))
        .await;
    let mut rss_after = gateway.rss_kib();
    poll_until(Duration::from_secs(10), || {
        rss_after = gateway.rss_kib();
        std::future::ready(rss_after < rss_before + 8 * MIB)
    })
    .await;
    println!("after: RSS {rss_after} KiB, fds {fds_after}");
    gateway.assert_near_baseline((fds_before, rss_before), (fds_after, rss_after));
    // The gateway still serves.
    let missing = stat(&gateway, "alice", "nothing").await;
    assert!(
        missing
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("no such file"),
        "{missing}"
    );
}

/// One connection asks for 60 channels, an SFTP session on each, and ten uploads in
/// each session. It gets 10 channels (limits.max_channels_per_connection), 6 sessions (the
/// test's limits.max_sftp_sessions_per_user; a second connection is refused too) and 40 open
/// uploads (the test's limits.max_handles_per_user), each refusal with its reason. The
/// gateway holds at most 40 spool files and a few sockets more than before, under 32 MiB more
/// memory, and once the client vanishes it is back to its baseline.
#[tokio::test(flavor = "multi_thread")]
async fn channels_sessions_and_handles_are_capped() {
    let gateway = Gateway::start(|config| {
        config.limits.max_sftp_sessions_per_user = Some(6);
        config.limits.max_handles_per_user = Some(40);
    })
    .await;
    let (rss_before, fds_before) = warm_baseline(&gateway, "alice").await;

    let mut attacker = gateway.attack("alice", "many_channels");
    let report = attacker.report().await;
    let rss_during = gateway.rss_kib();
    let fds_during = gateway.fds();
    let spooled = gateway.spool_files();
    println!(
        "attack: {report}; RSS {rss_before} KiB → {rss_during} KiB, fds {fds_before} → \
         {fds_during}, spool files {spooled}"
    );
    assert_eq!(report["channels"], 10, "{report}");
    let channel_refusals = report["channel_refusals"].as_object().unwrap();
    assert_eq!(channel_refusals.len(), 1, "{report}");
    let (text, count) = channel_refusals.iter().next().unwrap();
    assert!(
        text.contains("too many channels on this connection"),
        "{text}"
    );
    assert_eq!(count, 50);

    assert_eq!(report["sessions"], 6, "{report}");
    let session_refusals = report["session_refusals"].as_object().unwrap();
    assert_eq!(session_refusals.len(), 1, "{report}");
    let (text, count) = session_refusals.iter().next().unwrap();
    assert!(
        text.contains("too many SFTP sessions for this user"),
        "{text}"
    );
    assert_eq!(count, 4);
    assert_ne!(report["other_connection"], "ok", "{report}");
    assert!(
        report["other_stderr"]
            .as_str()
            .unwrap()
            .contains("too many SFTP sessions"),
        "{report}"
    );

    assert_eq!(report["handles"], 40, "{report}");
    let handle_refusals = report["handle_refusals"].as_object().unwrap();
    assert_eq!(handle_refusals.len(), 1, "{report}");
    let (text, count) = handle_refusals.iter().next().unwrap();
    assert!(text.contains("too many open handles"), "{text}");
    assert_eq!(count, 20);

    // 40 spool files, two connections (socket and its watch each) and little else.
    assert_eq!(spooled, 40);
    assert!(
        fds_during <= fds_before + 40 + 8,
        "{fds_during} descriptors, {fds_before} before"
    );
    assert!(
        rss_during < rss_before + 32 * MIB,
        "the attack grew the gateway from {rss_before} KiB to {rss_during} KiB"
    );

    attacker.kill().await;
    let cleaned = poll_until(Duration::from_secs(5), || {
        std::future::ready(gateway.spool_files() == 0)
    })
    .await;
    assert!(cleaned, "spool files left 5 s after the client vanished");
    let fds_after = gateway
        .fds_back_to(fds_before, Duration::from_secs(5))
        .await;
    let rss_after = gateway.rss_kib();
    println!("after: RSS {rss_after} KiB, fds {fds_after}");
    gateway.assert_near_baseline((fds_before, rss_before), (fds_after, rss_after));
    // The places are given back: the user can work again.
    assert_eq!(upload(&gateway, "alice", "again.bin", "again").await, "ok");
}

/// The stalled variant of the vanished client: as above, then 80 more WRITEs of 32 KiB sent without reading a
/// reply. They fill the session's 1 MiB request budget, the session stops reading its channel,
/// and russh, waiting on it, stops reading the socket: the client's FIN waits behind unread data
/// and the connection cannot see it go. The session gives up a client whose replies have not
/// moved for 30 s while it waits for room, which lets the connection end: within 40 s of the
/// kill the spool file, the upload and the descriptors are gone (the old code kept session,
/// spool file and connection forever).
#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_client_that_stalled_its_connection_leaves_nothing_behind() {
    let gateway = Gateway::start(|_| {}).await;
    let (rss_before, fds_before) = warm_baseline(&gateway, "alice").await;

    let mut attacker = gateway.attack("alice", "abandon_writes:80");
    let report = attacker.report().await;
    println!("attack: {report}");
    assert!(report["writes"].as_u64().unwrap() > 40, "{report}");
    assert_eq!(gateway.spool_files(), 1, "the half upload is spooled");
    let killed = std::time::Instant::now();
    attacker.kill().await;

    let cleaned = poll_until(Duration::from_secs(40), || {
        std::future::ready(gateway.spool_files() == 0)
    })
    .await;
    assert!(
        cleaned,
        "the spool file is still there 40 s after the client vanished\n{}",
        gateway.log()
    );
    println!("cleaned {:?} after the kill", killed.elapsed());
    assert_back_to_baseline(&gateway, fds_before, rss_before).await;
    assert_half_upload_gone(&gateway).await;
}
