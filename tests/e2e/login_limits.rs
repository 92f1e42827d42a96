//! Password login and the abuse limits end to end: a right and a wrong password
//! (paramiko), no password login for a user without a hash, a ban after repeated failed logins
//! and its expiry, the per-address connection cap, the authentication timeout, and users'
//! `allowed_networks` (their own and the default, refusing even the right key or password).
//! The limits are set very short here so the tests run in seconds.

use std::time::Duration;

use crate::common::{
    hash_password, output_text, paramiko_with_password, write_key_options, Bench, Limits,
};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const PASSWORD: &str = "correct horse battery staple";

/// alice has a password (and her key); bob has only his key.
async fn bench(limits: Limits) -> Bench {
    let hash = hash_password(PASSWORD).unwrap();
    Bench::configured(move |config, _| {
        config.user("alice").password_hash = Some(hash);
        config.limits = limits;
    })
    .await
}

/// Lists the home folder after a password login; `result["login"]` says how login went.
async fn password_login(bench: &Bench, user: &str, password: &str) -> serde_json::Value {
    paramiko_with_password(bench, user, password, "result['files'] = sftp.listdir('.')").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_right_password_logs_in_and_a_wrong_one_does_not() {
    let bench = bench(Limits::default()).await;
    bench
        .dropbox_upload("/alice/hello.txt", b"hi".to_vec())
        .await;

    let ok = password_login(&bench, "alice", PASSWORD).await;
    assert_eq!(ok["login"], "ok", "{ok}");
    assert_eq!(ok["files"], json!(["hello.txt"]));

    let wrong = password_login(&bench, "alice", "correct horse battery stapler").await;
    assert_eq!(wrong["login"], "AuthenticationException", "{wrong}");

    // bob has no password_hash: no password works, and his key still does.
    let bob = password_login(&bench, "bob", PASSWORD).await;
    assert_ne!(bob["login"], "ok", "{bob}");
    bench.sftp_ok(&bench.user("bob"), "ls\n").await;
    let nobody = password_login(&bench, "mallory", PASSWORD).await;
    assert_ne!(nobody["login"], "ok", "{nobody}");
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_ban_the_address_until_the_ban_expires() {
    let bench = bench(Limits {
        max_login_failures: Some(3),
        login_failure_window_secs: Some(60),
        ban_secs: Some(3),
        ..Limits::default()
    })
    .await;
    for attempt in 0..3 {
        let wrong = password_login(&bench, "alice", "guess").await;
        assert_ne!(wrong["login"], "ok", "attempt {attempt}: {wrong}");
    }

    // Banned: even the right password and a good key are turned away, before any banner.
    let banned = password_login(&bench, "alice", PASSWORD).await;
    assert_ne!(banned["login"], "ok", "{banned}");
    let out = bench.sftp(&bench.user("bob"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    bench.assert_closed_without_banner().await;

    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = password_login(&bench, "alice", PASSWORD).await;
    assert_eq!(after["login"], "ok", "the ban should have expired: {after}");
    bench.sftp_ok(&bench.user("bob"), "ls\n").await;
}

/// The SSH version line the server sends first, or None if it closed the connection.
async fn banner(socket: &mut TcpStream) -> Option<String> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_per_address_cap_are_closed() {
    let bench = bench(Limits {
        max_connections_per_address: Some(2),
        ..Limits::default()
    })
    .await;
    let mut first = TcpStream::connect(("127.0.0.1", bench.port()))
        .await
        .unwrap();
    let mut second = TcpStream::connect(("127.0.0.1", bench.port()))
        .await
        .unwrap();
    assert!(banner(&mut first).await.unwrap().starts_with("SSH-2.0-"));
    assert!(banner(&mut second).await.unwrap().starts_with("SSH-2.0-"));
    let mut third = TcpStream::connect(("127.0.0.1", bench.port()))
        .await
        .unwrap();
    assert_eq!(banner(&mut third).await, None);

    drop(first);
    // The slot comes back once the server has seen the close.
    let admitted = crate::common::poll_until(Duration::from_secs(5), || async {
        let mut again = TcpStream::connect(("127.0.0.1", bench.port()))
            .await
            .unwrap();
        banner(&mut again).await.is_some()
    })
    .await;
    assert!(admitted, "a freed slot should admit a new connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_does_not_log_in_in_time_is_closed() {
    let bench = bench(Limits {
        auth_timeout_secs: Some(1),
        ..Limits::default()
    })
    .await;
    let mut idle = TcpStream::connect(("127.0.0.1", bench.port()))
        .await
        .unwrap();
    assert!(banner(&mut idle).await.unwrap().starts_with("SSH-2.0-"));
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client that logs in is not affected by the timeout.
    bench.sftp_ok(&bench.user("alice"), "!sleep 2\nls\n").await;
}

/// The methods the server offers in answer to `none` for `user` (paramiko's `auth_none`).
async fn methods_offered(bench: &Bench, user: &str) -> serde_json::Value {
    let program = r#"
import json, sys
import paramiko
port, user = sys.argv[1:3]
transport = paramiko.Transport(("127.0.0.1", int(port)))
transport.start_client(timeout=30)
try:
    transport.auth_none(user)
    print(json.dumps("accepted"))
except paramiko.BadAuthenticationType as e:
    print(json.dumps(sorted(e.allowed_types)))
"#;
    let mut command = tokio::process::Command::new(crate::common::python_with_paramiko());
    command
        .args(["-c", program])
        .arg(bench.port().to_string())
        .arg(user);
    let out = crate::common::run_bounded(command, "python3 (paramiko)").await;
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_str(crate::common::stdout(&out).trim()).unwrap()
}

/// Whether a name exists, or has a password, must not show in the methods offered: alice has
/// a password, bob only a key, and mallory is nobody.
#[tokio::test(flavor = "multi_thread")]
async fn every_user_name_is_offered_the_same_methods() {
    let bench = bench(Limits::default()).await;
    let alice = methods_offered(&bench, "alice").await;
    assert_eq!(alice, json!(["password", "publickey"]));
    assert_eq!(methods_offered(&bench, "bob").await, alice, "bob");
    assert_eq!(methods_offered(&bench, "mallory").await, alice, "mallory");
}

/// The case the options were once dropped in: bob's `from="10.9.9.9",expiry-time="20000101"`
/// key logged in from 127.0.0.1. Now it does not, and alice's `from=` with her real address
/// (loopback, over IPv4 or IPv6) lets her in.
#[tokio::test(flavor = "multi_thread")]
async fn a_keys_from_and_expiry_time_options_are_honoured() {
    let bench = Bench::configured(|_, dir| {
        write_key_options(dir, "alice", r#"no-pty,from="127.0.0.0/8,::1""#);
        write_key_options(dir, "bob", r#"from="10.9.9.9",expiry-time="20000101""#);
    })
    .await;
    bench.sftp_ok(&bench.user("alice"), "ls\n").await;
    let out = bench.sftp(&bench.user("bob"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
}

/// The failed login lines of the audit log: (user, method, error).
fn failed_logins(bench: &Bench) -> Vec<(String, String, String)> {
    bench
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "login" && l["result"] == "failed")
        .map(|l| {
            let field = |name: &str| l[name].as_str().unwrap_or_default().to_string();
            (field("user"), field("method"), field("error"))
        })
        .collect()
}

/// alice may log in only from 203.0.113.0/24 (her own list); bob, without a list, from the
/// default, which holds the loopback. From 127.0.0.1 alice's right key and right password are
/// refused as a wrong one would be (the client learns nothing more), the audit log says why,
/// and each refused connection counts towards the ban.
#[tokio::test(flavor = "multi_thread")]
async fn allowed_networks_refuse_the_right_key_and_password_from_elsewhere() {
    let hash = hash_password(PASSWORD).unwrap();
    let bench = Bench::audited(move |config, _| {
        config.server.allowed_networks = Some(vec!["127.0.0.0/8".into()]);
        let alice = config.user("alice");
        alice.allowed_networks = Some(vec!["203.0.113.0/24".into(), "2001:db8::/32".into()]);
        alice.password_hash = Some(hash);
        config.limits.max_login_failures = Some(2);
    })
    .await;

    bench.sftp_ok(&bench.user("bob"), "ls\n").await;

    let out = bench.sftp(&bench.user("alice"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!text.contains("allowed_networks"), "{text}");
    let refused = "address 127.0.0.1 not in the user's allowed_networks";
    assert_eq!(
        failed_logins(&bench),
        vec![("alice".into(), "publickey".into(), refused.into())]
    );

    // The second refusal (a right password, this time) reaches the ban of two failures.
    let password = password_login(&bench, "alice", PASSWORD).await;
    assert_eq!(password["login"], "AuthenticationException", "{password}");
    assert_eq!(
        failed_logins(&bench)[1],
        ("alice".into(), "password".into(), refused.into())
    );
    let out = bench.sftp(&bench.user("bob"), "ls\n").await;
    assert!(
        !out.status.success(),
        "banned after alice's two refused logins: {}",
        output_text(&out)
    );
    assert!(!bench
        .audit_lines()
        .iter()
        .any(|l| l["event"] == "login" && l["user"] == "alice" && l["result"] == "ok"));
}

/// The server's default applies to users without a list of their own, and a reload (the code
/// SIGHUP runs) changes both for the next login.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_networks_apply_to_users_without_a_list_and_a_reload_changes_them() {
    let bench = Bench::audited(|config, _| {
        config.server.allowed_networks = Some(vec!["192.0.2.0/24".into()]);
        config.user("alice").allowed_networks = Some(vec!["127.0.0.1".into()]);
    })
    .await;
    bench.sftp_ok(&bench.user("alice"), "ls\n").await;
    let out = bench.sftp(&bench.user("bob"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_eq!(
        failed_logins(&bench),
        vec![(
            "bob".into(),
            "publickey".into(),
            "address 127.0.0.1 not in the user's allowed_networks".into()
        )]
    );

    let path = bench.path("dropgate.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let after = before
        .replace("\"192.0.2.0/24\"", "\"127.0.0.0/8\"")
        .replace("[\"127.0.0.1\"]", "[\"198.51.100.7\"]");
    assert_eq!(after.matches("127.0.0.0/8").count(), 1, "{after}");
    assert_eq!(after.matches("198.51.100.7").count(), 1, "{after}");
    std::fs::write(&path, after).unwrap();
    bench.gateway.reloader().reload_file(&path).await.unwrap();
    bench.sftp_ok(&bench.user("bob"), "ls\n").await;
    let out = bench.sftp(&bench.user("alice"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_eq!(failed_logins(&bench).len(), 2);
}
