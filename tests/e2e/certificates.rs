//! SSH user certificates end to end: a CA trusted in `[server] trusted_user_ca_keys`
//! signs user keys with `ssh-keygen -s`, and the real OpenSSH `sftp` logs in with
//! `-o CertificateFile=`. A certificate for the user, valid now, gets in; one whose principals
//! name someone else, one that has expired, one from a CA nobody trusts, and one used from
//! outside the user's `allowed_networks` are refused.
//!
//! The keys used here are in nobody's authorized_keys: only the certificate can let them in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{output_text, poll_until, ssh_keygen, Bench, TestUser};
use serde_json::Value;

/// A CA key pair (trusted, unless made as `untrusted`) and user keys signed by it.
struct Authority {
    dir: tempfile::TempDir,
}

impl Authority {
    fn new() -> Authority {
        let dir = tempfile::tempdir().unwrap();
        ssh_keygen(&dir.path().join("ca"));
        ssh_keygen(&dir.path().join("untrusted"));
        Authority { dir }
    }

    fn public_line(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pub"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A new key `name` with a certificate from `ca` made with `args` (principals, validity);
    /// returns the private key's path (the certificate is beside it, `-cert.pub`).
    fn issue(&self, name: &str, ca: &str, args: &[&str]) -> PathBuf {
        let key = self.dir.path().join(name);
        ssh_keygen(&key);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(self.dir.path().join(ca))
            .args(["-I", &format!("{name}-id")])
            .args(args)
            .arg(key.with_extension("pub"))
            .status()
            .unwrap();
        assert!(status.success(), "ssh-keygen -s for {name}");
        key
    }
}

fn certificate_file(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

async fn bench(ca: &Authority) -> Bench {
    let ca_key = ca.public_line();
    Bench::audited(move |config, _| config.server.trusted_user_ca_keys = vec![ca_key]).await
}

/// `sftp` as alice with `key` and its certificate.
async fn sftp_as_alice(bench: &Bench, key: &Path, commands: &str) -> std::process::Output {
    let user = TestUser {
        name: "alice",
        key: key.to_path_buf(),
        root: "/alice",
    };
    let certificate = format!("CertificateFile={}", certificate_file(key).display());
    bench
        .sftp_with(&user, &["-o".into(), certificate], commands)
        .await
}

fn audit_logins(bench: &Bench) -> Vec<Value> {
    bench
        .audit_lines()
        .into_iter()
        .filter(|line| line["event"] == "login")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_the_user_valid_now_logs_in() {
    let ca = Authority::new();
    let bench = bench(&ca).await;
    let key = ca.issue("good", "ca", &["-n", "alice,ops", "-V", "-5m:+1h"]);
    std::fs::write(bench.path("hello.txt"), b"signed in by certificate").unwrap();

    let out = sftp_as_alice(&bench, &key, "put hello.txt hello.txt\n").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let stored = bench.dropbox_download("/alice/hello.txt").await;
    assert_eq!(stored, b"signed in by certificate");

    let logged = poll_until(Duration::from_secs(5), || {
        let logins = audit_logins(&bench);
        std::future::ready(logins.iter().any(|l| l["result"] == "ok"))
    })
    .await;
    assert!(logged);
    let login = audit_logins(&bench)
        .into_iter()
        .find(|l| l["result"] == "ok")
        .unwrap();
    assert_eq!(login["user"], "alice");
    assert_eq!(login["method"], "certificate");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_principal_expired_and_untrusted_certificates_are_refused() {
    let ca = Authority::new();
    let bench = bench(&ca).await;
    let cases = [
        ("wrong-principal", "ca", vec!["-n", "bob", "-V", "-5m:+1h"]),
        (
            "expired",
            "ca",
            vec!["-n", "alice", "-V", "20000101:20000102"],
        ),
        (
            "from-untrusted-ca",
            "untrusted",
            vec!["-n", "alice", "-V", "-5m:+1h"],
        ),
    ];
    for (name, signer, args) in cases {
        let key = ca.issue(name, signer, &args);
        let out = sftp_as_alice(&bench, &key, "ls\n").await;
        assert!(!out.status.success(), "{name}: {}", output_text(&out));
        assert!(
            crate::common::stderr(&out).contains("Permission denied"),
            "{name}: {}",
            output_text(&out)
        );
    }
    assert!(audit_logins(&bench).iter().all(|l| l["result"] != "ok"));
}

/// A valid certificate, like a key, is refused from outside the user's `allowed_networks`
/// (checked before the certificate is looked at), and the audit log says why. With CAs trusted
/// every key offer is taken up, so alice's plain key goes the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_valid_certificate_is_refused_outside_the_users_allowed_networks() {
    let ca = Authority::new();
    let ca_key = ca.public_line();
    let bench = Bench::audited(move |config, _| {
        config.server.trusted_user_ca_keys = vec![ca_key];
        config.user("alice").allowed_networks = Some(vec!["203.0.113.0/24".into()]);
    })
    .await;
    let key = ca.issue("good", "ca", &["-n", "alice", "-V", "-5m:+1h"]);
    let out = sftp_as_alice(&bench, &key, "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    let out = bench.sftp(&bench.user("alice"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    bench.sftp_ok(&bench.user("bob"), "ls\n").await;

    let logins = audit_logins(&bench);
    let refused: Vec<_> = logins
        .iter()
        .filter(|l| l["user"] == "alice")
        .map(|l| {
            (
                l["result"].as_str().unwrap(),
                l["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let reason = "address 127.0.0.1 not in the user's allowed_networks";
    assert_eq!(
        refused,
        [("failed", reason), ("failed", reason)],
        "{logins:#?}"
    );
}
