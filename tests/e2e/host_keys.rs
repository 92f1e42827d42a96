//! Host keys and algorithm policies, with OpenSSH clients restricted the way partners' clients
//! are: one that accepts only an RSA (rsa-sha2-256) or only an ECDSA host key logs in and
//! transfers a file, checking that key against its known_hosts; a client that speaks only
//! legacy algorithms (SHA-1 key exchange, `ssh-rsa` signatures, CBC, hmac-sha1) is refused by
//! the `modern` policy with a log line that says why, and let in by `compatible` with a
//! warning and the algorithms on its audit login line. `dropgate check-config` prints the
//! three fingerprints `ssh-keygen -lf` shows, keys are created 0600, and an unknown algorithm
//! name, a short RSA key or a key of the wrong kind is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::common::*;

/// What a client that knows only legacy algorithms offers (OpenSSH options).
const LEGACY_CLIENT: &[&str] = &[
    "-o",
    "KexAlgorithms=diffie-hellman-group14-sha1",
    "-o",
    "HostKeyAlgorithms=ssh-rsa",
    "-o",
    "Ciphers=aes128-cbc",
    "-o",
    "MACs=hmac-sha1",
];

/// Trusts only the host key in `pub_file` for the bench's port.
fn trust_only(bench: &Bench, pub_file: &str) {
    let key = std::fs::read_to_string(bench.path(pub_file)).unwrap();
    let line = format!("[127.0.0.1]:{} {}\n", bench.port(), key.trim());
    std::fs::write(bench.known_hosts(), line).unwrap();
}

fn options(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn clients_that_accept_only_rsa_or_only_ecdsa_host_keys_log_in_and_transfer() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    for (algorithm, pub_file) in [
        ("rsa-sha2-256", "ssh_host_rsa_key.pub"),
        ("rsa-sha2-512", "ssh_host_rsa_key.pub"),
        ("ecdsa-sha2-nistp256", "ssh_host_ecdsa_key.pub"),
    ] {
        let data = random_bytes(40_000);
        std::fs::write(bench.path("up.bin"), &data).unwrap();
        let extra = options(&["-o", &format!("HostKeyAlgorithms={algorithm}")]);

        // Trusting only the ed25519 key, the client restricted to this algorithm must see
        // another key and refuse: proof that it is this key the gateway presented.
        bench.write_known_hosts();
        let refused = bench
            .sftp_with(&alice, &extra, "put up.bin wrong.bin\n")
            .await;
        assert!(
            !refused.status.success(),
            "{algorithm}: accepted an unknown host key"
        );
        assert!(
            bench
                .dropbox_metadata(&format!("{}/wrong.bin", alice.root))
                .await
                .is_none(),
            "{algorithm}: uploaded although the host key was refused"
        );

        trust_only(&bench, pub_file);
        let name = format!("{algorithm}.bin");
        let out = bench
            .sftp_with(
                &alice,
                &extra,
                &format!("put up.bin {name}\nget {name} back.bin\n"),
            )
            .await;
        assert!(out.status.success(), "{algorithm}: {}", output_text(&out));
        assert_eq!(
            bench
                .dropbox_download(&format!("{}/{name}", alice.root))
                .await,
            data,
            "{algorithm}: the upload in Dropbox"
        );
        assert_eq!(std::fs::read(bench.path("back.bin")).unwrap(), data);
    }
}

/// A `dropgate serve` process on `algorithms`, logging at info into a pipe, with an audit
/// log; the RSA host key is the one in known_hosts (the legacy client asks for `ssh-rsa`).
async fn serve_with(algorithms: &str) -> (ServeDir, tokio::process::Child) {
    let serve = ServeDir::new().await;
    let mut config = serve.config();
    config.server.algorithms = Some(toml::Value::String(algorithms.into()));
    config.audit_to(&serve.path("audit.log"));
    let process = serve.serve(&config, "info", Stdio::piped()).await;
    let key = std::fs::read_to_string(serve.path("ssh_host_rsa_key.pub")).unwrap();
    let line = format!("[127.0.0.1]:{} {}\n", serve.port, key.trim());
    std::fs::write(serve.known_hosts(), line).unwrap();
    (serve, process)
}

/// Stops the process and returns what it logged.
async fn stop_and_read_log(mut process: tokio::process::Child) -> String {
    process.start_kill().unwrap();
    let mut log = String::new();
    let mut stderr = process.stderr.take().unwrap();
    let _ = stderr.read_to_string(&mut log).await;
    let _ = process.wait().await;
    log
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_client_is_refused_by_modern_with_the_reason_logged() {
    let (serve, process) = serve_with("modern").await;
    std::fs::write(serve.path("up.bin"), b"legacy").unwrap();
    let out = run_bounded(
        serve.sftp_as_alice(
            &serve.path("alice"),
            "put up.bin legacy.bin\n",
            &options(LEGACY_CLIENT),
        ),
        "legacy sftp",
    )
    .await;
    assert!(!out.status.success(), "modern let a legacy client in");
    assert!(
        stderr(&out).contains("no matching key exchange method"),
        "{}",
        output_text(&out)
    );
    // The audit log says why the connection ended (once the gateway has seen it end), and
    // no login happened. The probe for the listening port is a connection too; the legacy
    // client's is the one whose key exchange failed.
    let audit_path = serve.path("audit.log");
    let refused_line = |audit: &[Value]| {
        audit
            .iter()
            .filter(|l| l["event"] == "disconnect")
            .filter(|l| {
                l["error"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("no common key exchange algorithm: client offered")
            })
            .count()
    };
    let ended = poll_until(std::time::Duration::from_secs(10), || async {
        refused_line(&audit_lines(&audit_path)) > 0
    })
    .await;
    let audit = audit_lines(&audit_path);
    assert!(ended, "no disconnect line with the reason: {audit:?}");
    assert_eq!(refused_line(&audit), 1, "{audit:?}");
    assert!(audit.iter().all(|l| l["event"] != "login"), "{audit:?}");
    let log = stop_and_read_log(process).await;
    let line = log
        .lines()
        .find(|l| l.contains("key exchange refused"))
        .unwrap_or_else(|| panic!("no refusal line in the log:\n{log}"));
    assert!(
        line.contains(
            "no common key exchange algorithm: client offered diffie-hellman-group14-sha1, \
             policy modern allows mlkem768x25519-sha256,curve25519-sha256"
        ),
        "{line}"
    );
    assert!(
        line.contains("SSH-2.0-OpenSSH"),
        "the client's version: {line}"
    );
    assert!(!log.contains("legacy algorithms negotiated"), "{log}");
    assert!(
        serve
            .dropbox()
            .metadata("/alice/legacy.bin")
            .await
            .is_none(),
        "uploaded although refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_client_gets_in_with_compatible_and_is_warned_about_and_audited() {
    let (serve, process) = serve_with("compatible").await;
    let data = random_bytes(100_000);
    std::fs::write(serve.path("up.bin"), &data).unwrap();
    let out = run_bounded(
        serve.sftp_as_alice(
            &serve.path("alice"),
            "put up.bin legacy.bin\n",
            &options(LEGACY_CLIENT),
        ),
        "legacy sftp",
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(serve.dropbox().download("/alice/legacy.bin").await, data);

    // A modern client on the same gateway is no legacy connection.
    let modern = run_bounded(
        serve.sftp_as_alice(
            &serve.path("alice"),
            "ls\n",
            &options(&["-o", "HostKeyAlgorithms=rsa-sha2-512"]),
        ),
        "modern sftp",
    )
    .await;
    assert!(modern.status.success(), "{}", output_text(&modern));

    let log = stop_and_read_log(process).await;
    assert!(
        log.contains("server.algorithms allows legacy algorithms"),
        "no warning at start:\n{log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("legacy algorithms negotiated"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for the legacy client only:\n{log}"
    );
    for name in [
        "diffie-hellman-group14-sha1",
        "ssh-rsa",
        "aes128-cbc",
        "hmac-sha1",
    ] {
        assert!(warnings[0].contains(name), "{name} not in {}", warnings[0]);
    }

    let audit = audit_lines(&serve.path("audit.log"));
    let logins: Vec<&Value> = audit.iter().filter(|l| l["event"] == "login").collect();
    assert_eq!(logins.len(), 2, "{audit:?}");
    let legacy = logins[0];
    assert_eq!(legacy["result"], "ok");
    assert_eq!(legacy["kex"], "diffie-hellman-group14-sha1");
    assert_eq!(legacy["cipher"], "aes128-cbc");
    assert_eq!(legacy["mac"], "hmac-sha1");
    assert_eq!(legacy["host_key_alg"], "ssh-rsa");
    assert!(
        legacy["client_version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH_"),
        "{legacy}"
    );
    assert_eq!(logins[1]["host_key_alg"], "rsa-sha2-512");
    assert_ne!(logins[1]["kex"], "diffie-hellman-group14-sha1");
}

#[tokio::test]
async fn keys_are_created_private_and_check_config_prints_their_fingerprints() {
    // Key files the bench does not provide, so the gateway creates all three (the ed25519
    // one is never provided).
    let bench = Bench::configured(|config, dir| {
        config.server.host_key_rsa = Some(dir.join("created/rsa"));
        config.server.host_key_ecdsa = Some(dir.join("created/ecdsa"));
    })
    .await;
    let mut expected = Vec::new();
    for (name, kind) in [
        ("host_key", "ED25519"),
        ("created/rsa", "RSA"),
        ("created/ecdsa", "ECDSA"),
    ] {
        let key = bench.path(name);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        // `BITS SHA256:... COMMENT (TYPE)`: bits, fingerprint and type must match.
        let keygen = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(keygen.status.success());
        let shown = String::from_utf8(keygen.stdout).unwrap();
        let words: Vec<&str> = shown.split_whitespace().collect();
        assert_eq!(words.last(), Some(&format!("({kind})").as_str()), "{shown}");
        expected.push((kind, format!("{} {} ({kind})", words[0], words[1])));
    }
    assert!(
        expected[1].1.starts_with("3072 SHA256:"),
        "{:?}",
        expected[1]
    );

    let out = dropgate_binary("warn")
        .arg("check-config")
        .arg("--config")
        .arg(bench.path("dropgate.toml"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (kind, fingerprint) in &expected {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{kind} ")))
            .unwrap_or_else(|| panic!("no {kind} line in:\n{stdout}"));
        assert!(
            line.ends_with(fingerprint.as_str()),
            "{line} vs {fingerprint}"
        );
    }
    assert!(
        stdout.contains("ALGORITHMS  modern\n  kex        mlkem768x25519-sha256,"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_unknown_algorithm_name_is_refused_by_check_config_and_at_start() {
    let serve = ServeDir::new().await;
    let mut config = serve.config();
    config.server.algorithms = Some(toml::Value::Table(toml::toml! {
        ciphers = ["aes256-ctr", "rot13"]
    }));
    config.write(&serve.config_path());
    let out = dropgate_binary("warn")
        .arg("check-config")
        .arg("--config")
        .arg(serve.config_path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("ALGORITHMS  FAILED [1]\n"), "{stdout}");
    assert!(
        stdout.contains(
            "FAILED [1] server.algorithms.ciphers: unknown or unsupported algorithm \
             \"rot13\"; known: "
        ),
        "{stdout}"
    );

    let loaded = Config::load(&serve.config_path()).unwrap();
    let err = Gateway::start(&loaded).await.err().expect("started anyway");
    assert!(err.to_string().contains("\"rot13\""), "{err:#}");

    config.server.algorithms = Some(toml::Value::String("strongest".into()));
    config.write(&serve.config_path());
    let loaded = Config::load(&serve.config_path()).unwrap();
    let err = Gateway::start(&loaded).await.err().expect("started anyway");
    assert!(
        err.to_string().contains(
            "no policy named \"strongest\"; the policies are modern, compatible, fips-like"
        ),
        "{err:#}"
    );
}

#[tokio::test]
async fn fips_like_serves_ecdsa_and_refuses_curve25519_only_clients() {
    let bench = Bench::configured(|config, _| {
        config.server.algorithms = Some(toml::Value::String("fips-like".into()));
    })
    .await;
    let alice = bench.user("alice");
    trust_only(&bench, "ssh_host_ecdsa_key.pub");
    // The client's defaults: fips-like picks the NIST key exchange and the ECDSA key.
    bench.sftp_ok(&alice, "ls\n").await;
    let only_curve25519 = options(&["-o", "KexAlgorithms=curve25519-sha256"]);
    let out = bench.sftp_with(&alice, &only_curve25519, "ls\n").await;
    assert!(!out.status.success(), "fips-like accepted curve25519");
    let chacha = options(&["-o", "Ciphers=chacha20-poly1305@openssh.com"]);
    let out = bench.sftp_with(&alice, &chacha, "ls\n").await;
    assert!(!out.status.success(), "fips-like accepted chacha20");
}

#[tokio::test]
async fn a_short_rsa_key_or_a_key_of_another_kind_is_refused_at_start() {
    let serve = ServeDir::new().await;
    let short = serve.path("short_rsa");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&short)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(made.success());
    let mut config = serve.config();
    config.server.host_key_rsa = Some(short.clone());
    config.write(&serve.config_path());
    let err = Gateway::start(&Config::load(&serve.config_path()).unwrap())
        .await
        .err()
        .expect("started with a 1024-bit RSA host key");
    assert!(
        err.to_string()
            .contains("is a 1024-bit RSA key; use at least 2048 bits"),
        "{err:#}"
    );

    // The ECDSA key named as the RSA one.
    config.server.host_key_rsa = Some(serve.path("ssh_host_ecdsa_key"));
    config.write(&serve.config_path());
    let err = Gateway::start(&Config::load(&serve.config_path()).unwrap())
        .await
        .err()
        .expect("started with an ECDSA key as the RSA one");
    assert!(err.to_string().contains("not RSA"), "{err:#}");
}
