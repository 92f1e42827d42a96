//! PROXY protocol end to end: OpenSSH `sftp` reaches the gateway through a tiny
//! Python load balancer (its ProxyCommand) that writes a PROXY header with a made-up client
//! address, then pipes the SSH bytes. The audit log, the ban logic, key options and users'
//! `allowed_networks` see that address; the same header from an address not in
//! `trusted_proxies` is refused, and so is a malformed one.

use std::time::Duration;

use crate::common::{output_text, poll_until, write_key_options, Bench, TestUser};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The load balancer: connects to host:port, writes a v1 or v2 header claiming the client is
/// source_ip:source_port, then copies stdin to the socket and the socket to stdout.
const BALANCER: &str = r#"
import ipaddress, socket, struct, sys, threading
host, port, version, source_ip, source_port = sys.argv[1:6]
s = socket.create_connection((host, int(port)))
if version == "v1":
    s.sendall(f"PROXY TCP4 {source_ip} 127.0.0.1 {source_port} {port}\r\n".encode())
else:
    block = ipaddress.IPv4Address(source_ip).packed + ipaddress.IPv4Address("127.0.0.1").packed
    block += struct.pack("!HH", int(source_port), int(port))
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block)
def upstream():
    while True:
        data = sys.stdin.buffer.read1(65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"#;

async fn bench(trusted: &str) -> Bench {
    bench_with_key_options(trusted, Vec::new()).await
}

/// [`bench`], with authorized_keys `options` before the named users' keys.
async fn bench_with_key_options(
    trusted: &str,
    options: Vec<(&'static str, &'static str)>,
) -> Bench {
    let trusted = trusted.to_string();
    let bench = Bench::audited(move |config, dir| {
        config.server.proxy_protocol = Some(true);
        config.server.trusted_proxies = vec![trusted];
        config.limits.max_login_failures = Some(1);
        for (user, user_options) in options {
            write_key_options(dir, user, user_options);
        }
    })
    .await;
    std::fs::write(bench.path("balancer.py"), BALANCER).unwrap();
    bench
}

/// `sftp` as `user` through the balancer, which claims the client is `source`.
async fn sftp_via(
    bench: &Bench,
    user: TestUser,
    version: &str,
    source: (&str, u16),
    commands: &str,
) -> std::process::Output {
    let proxy_command = format!(
        "ProxyCommand=python3 {} 127.0.0.1 {} {version} {} {}",
        bench.path("balancer.py").display(),
        bench.port(),
        source.0,
        source.1
    );
    bench
        .sftp_with(&user, &["-o".into(), proxy_command], commands)
        .await
}

async fn wait_for_lines(bench: &Bench, what: impl Fn(&Value) -> bool) -> Vec<Value> {
    let found = poll_until(Duration::from_secs(10), || {
        std::future::ready(bench.audit_lines().iter().any(&what))
    })
    .await;
    assert!(found, "not in the audit log: {:#?}", bench.audit_lines());
    bench.audit_lines()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_balancers_header_gives_the_client_address_to_audit_and_bans() {
    let bench = bench("127.0.0.1/32").await;
    std::fs::write(bench.path("a.txt"), b"through the balancer").unwrap();

    let out = sftp_via(
        &bench,
        bench.user("alice"),
        "v1",
        ("203.0.113.7", 4242),
        "put a.txt a.txt\n",
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        bench.dropbox_download("/alice/a.txt").await,
        b"through the balancer"
    );
    let lines = wait_for_lines(&bench, |l| l["event"] == "disconnect").await;
    for event in ["connect", "login", "operation", "disconnect"] {
        let line = lines.iter().find(|l| l["event"] == event).unwrap();
        assert_eq!(line["remote"], "203.0.113.7:4242", "{line}");
    }

    // v2, and a failed login from a second made-up address bans that address only.
    let out = sftp_via(
        &bench,
        mallory(&bench),
        "v2",
        ("198.51.100.9", 5000),
        "ls\n",
    )
    .await;
    assert!(!out.status.success(), "{}", output_text(&out));
    let out = sftp_via(
        &bench,
        bench.user("alice"),
        "v2",
        ("198.51.100.9", 5001),
        "ls\n",
    )
    .await;
    assert!(!out.status.success(), "banned: {}", output_text(&out));
    let out = sftp_via(
        &bench,
        bench.user("alice"),
        "v2",
        ("203.0.113.7", 4243),
        "ls\n",
    )
    .await;
    assert!(
        out.status.success(),
        "another address: {}",
        output_text(&out)
    );

    let lines = bench.audit_lines();
    let failed = lines
        .iter()
        .find(|l| l["event"] == "login" && l["result"] == "failed")
        .unwrap();
    assert_eq!(failed["remote"], "198.51.100.9:5000");
    let refused = lines
        .iter()
        .find(|l| l["event"] == "connect" && l["result"] == "refused")
        .unwrap();
    assert_eq!(refused["remote"], "198.51.100.9:5001");
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_from_an_untrusted_address_and_malformed_headers_are_refused() {
    let bench = bench("192.0.2.0/24").await;
    let out = sftp_via(
        &bench,
        bench.user("alice"),
        "v1",
        ("203.0.113.7", 4242),
        "ls\n",
    )
    .await;
    assert!(!out.status.success(), "{}", output_text(&out));
    let lines = wait_for_lines(&bench, |l| l["result"] == "refused").await;
    let refused = lines.iter().find(|l| l["result"] == "refused").unwrap();
    assert!(
        refused["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{refused}"
    );
    assert!(
        refused["error"].as_str().unwrap().contains("trusted"),
        "{refused}"
    );
    assert!(!lines.iter().any(|l| l["event"] == "login"));

    // From a trusted address, a header that is not one: closed without a word.
    let bench = bench_trusting_loopback().await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", bench.port()))
        .await
        .unwrap();
    socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    let lines = wait_for_lines(&bench, |l| l["result"] == "refused").await;
    let refused = lines.iter().find(|l| l["result"] == "refused").unwrap();
    assert!(
        refused["error"].as_str().unwrap().contains("PROXY"),
        "{refused}"
    );
}

/// authorized_keys `from=` is checked against the client's address from the PROXY header, not
/// the balancer's (127.0.0.1), and an expired key (`expiry-time=`) no longer logs in. Each
/// refused attempt comes from an address of its own, since one failure bans an address here.
#[tokio::test(flavor = "multi_thread")]
async fn key_options_from_and_expiry_time_see_the_real_client_address() {
    let bench = bench_with_key_options(
        "127.0.0.1/32",
        vec![
            ("alice", r#"restrict,from="198.51.100.0/24,!198.51.100.66""#),
            ("bob", r#"from="10.9.9.9",expiry-time="20000101""#),
        ],
    )
    .await;
    let login = |user: &'static str, ip: &'static str| {
        let bench = &bench;
        async move {
            let out = sftp_via(bench, bench.user(user), "v1", (ip, 4000), "ls\n").await;
            (out.status.success(), output_text(&out))
        }
    };
    let (ok, text) = login("alice", "198.51.100.7").await;
    assert!(ok, "inside from=: {text}");
    let (ok, text) = login("alice", "198.51.100.66").await;
    assert!(!ok, "negated in from=: {text}");
    let (ok, text) = login("alice", "203.0.113.7").await;
    assert!(!ok, "outside from=: {text}");
    let (ok, text) = login("alice", "127.0.0.1").await;
    assert!(!ok, "the balancer's own address: {text}");
    let (ok, text) = login("bob", "10.9.9.9").await;
    assert!(!ok, "expired key: {text}");

    let lines = bench.audit_lines();
    let logins: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "login")
        .map(|l| (l["remote"].as_str().unwrap(), l["result"].as_str().unwrap()))
        .collect();
    assert!(logins.contains(&("198.51.100.7:4000", "ok")), "{logins:?}");
    assert!(
        !logins
            .iter()
            .any(|(remote, result)| *result == "ok" && *remote != "198.51.100.7:4000"),
        "{logins:?}"
    );
}

/// Someone who is not a user (with bob's key).
fn mallory(bench: &Bench) -> TestUser {
    TestUser {
        name: "mallory",
        ..bench.user("bob")
    }
}

async fn bench_trusting_loopback() -> Bench {
    bench("127.0.0.0/8").await
}

/// A user's `allowed_networks` are checked against the client's address from the PROXY header,
/// never the balancer's: alice may log in from 198.51.100.0/24 only, and the balancer itself is
/// on the loopback. Each refused attempt comes from an address of its own (one failure bans).
#[tokio::test(flavor = "multi_thread")]
async fn allowed_networks_see_the_address_in_the_proxy_header() {
    let bench = Bench::audited(|config, _| {
        config.server.proxy_protocol = Some(true);
        config.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        config.limits.max_login_failures = Some(1);
        config.user("alice").allowed_networks = Some(vec!["198.51.100.0/24".into()]);
    })
    .await;
    std::fs::write(bench.path("balancer.py"), BALANCER).unwrap();
    let login = |ip: &'static str| {
        let bench = &bench;
        async move {
            let out = sftp_via(bench, bench.user("alice"), "v2", (ip, 4000), "ls\n").await;
            (out.status.success(), output_text(&out))
        }
    };
    let (ok, text) = login("198.51.100.7").await;
    assert!(ok, "inside allowed_networks: {text}");
    let (ok, text) = login("203.0.113.7").await;
    assert!(!ok, "outside allowed_networks: {text}");
    let (ok, text) = login("127.0.0.1").await;
    assert!(!ok, "the balancer's own address: {text}");

    let lines = bench.audit_lines();
    let logins: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "login")
        .map(|l| {
            let field = |name: &str| l[name].as_str().unwrap_or_default();
            (field("remote"), field("result"), field("error"))
        })
        .collect();
    assert_eq!(
        logins,
        vec![
            ("198.51.100.7:4000", "ok", ""),
            (
                "203.0.113.7:4000",
                "failed",
                "address 203.0.113.7 not in the user's allowed_networks"
            ),
            (
                "127.0.0.1:4000",
                "failed",
                "address 127.0.0.1 not in the user's allowed_networks"
            ),
        ]
    );
}
