//! `dropgate check-config` as a preflight (like `sshd -t`), and the paths of a config taken
//! from its own folder: the real binary, run as a process of its own.
//!
//! Each bad setting makes check-config exit non-zero with the problem and the absolute path (or
//! address) on a line of its own under the tables; `serve` refuses the same settings at start
//! instead of failing later (a spool folder it cannot write, a missing host key it may not
//! create). Started from another working directory, `serve` still uses the config folder's
//! host key, keys and spool.
//!
//! These tests run as root in CI, and a folder's mode does not stop root from writing in it;
//! so an unusable folder here is one under a regular file (ENOTDIR) or in /proc (where no one
//! can create anything), which hold for root too.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// `dropgate check-config` on `config` with `args`: (success, stdout, stderr).
async fn check_config(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = dropgate_binary("warn")
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dropgate serve` on `config`, which must refuse to start: its stderr.
async fn serve_refuses(config: &Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        dropgate_binary("warn")
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("dropgate serve started anyway")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve started: {stderr}");
    stderr
}

/// The lines under the tables that say what failed, in order.
fn failures(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| line.starts_with("FAILED ["))
        .collect()
}

/// A config without accounts or users in a temp dir (nothing to sign in to), as `configure`
/// leaves it; the dir and the config file.
fn machine_config(
    configure: impl FnOnce(&mut GatewayConfig, &Path),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::without_accounts(dir.path());
    configure(&mut config, dir.path());
    let path = dir.path().join("dropgate.toml");
    config.write(&path);
    (dir, path)
}

#[tokio::test]
async fn a_good_config_passes_and_says_what_serve_will_create() {
    let (dir, path) = machine_config(|_, _| {});
    let (ok, stdout, stderr) = check_config(&path, &[]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(failures(&stdout).is_empty(), "{stdout}");
    let ed25519 = stdout.lines().find(|l| l.starts_with("ED25519 ")).unwrap();
    assert!(ed25519.contains("not created yet"), "{stdout}");
    let spool = dir.path().join("spool").display().to_string();
    let row = stdout.lines().find(|l| l.starts_with("spool ")).unwrap();
    assert!(
        row.contains(&spool) && row.contains("ok: will be created"),
        "{stdout}"
    );
    assert!(
        !dir.path().join("spool").exists(),
        "check-config created nothing"
    );
    assert!(
        !dir.path().join("host_key").exists(),
        "check-config created nothing"
    );
}

#[tokio::test]
async fn a_world_readable_host_key_fails() {
    let (dir, path) = machine_config(|_, dir| {
        let key = dir.join("host_key");
        host_key::write_key_pair(&host_key::generate(), &key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    });
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    let key = dir.path().join("host_key").display().to_string();
    assert_eq!(
        failures(&stdout),
        [format!(
            "FAILED [1] key file {key} is readable by others (mode 644); run: chmod 600 {key}"
        )],
        "{stdout}"
    );
    let row = stdout.lines().find(|l| l.starts_with("ED25519 ")).unwrap();
    assert!(row.ends_with("FAILED [1]"), "short in the table: {stdout}");
}

#[tokio::test]
async fn a_missing_host_key_fails_when_it_may_not_be_created() {
    let (dir, path) = machine_config(|config, _| config.server.host_key_create = Some(false));
    let key = dir.path().join("host_key");
    let refusal = format!(
        "host key {} does not exist and server.host_key_create is false",
        key.display()
    );
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains(&refusal), "{stdout}");
    assert!(
        failed[0].contains("ssh-keygen -t ed25519"),
        "how to make one: {stdout}"
    );

    let stderr = serve_refuses(&path).await;
    assert!(stderr.contains(&refusal), "{stderr}");
    assert!(!key.exists(), "serve created the key anyway");
}

#[tokio::test]
async fn a_host_key_that_serve_could_not_create_fails() {
    // Under a regular file (ENOTDIR): root cannot create it either.
    let (dir, path) = machine_config(|config, dir| {
        std::fs::write(dir.join("file"), "x").unwrap();
        config.server.host_key = dir.join("file/host_key");
    });
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    let key = dir.path().join("file/host_key");
    let failed = failures(&stdout);
    // The RSA and ECDSA keys go beside it by default: all three fail.
    assert_eq!(failed.len(), 3, "{stdout}");
    assert_eq!(
        failed[0],
        format!(
            "FAILED [1] host key {}: cannot be created, {}/file is not a folder",
            key.display(),
            dir.path().display()
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_spool_folder_that_cannot_be_used_fails_and_serve_refuses_it() {
    // Under a regular file: not a folder, for root too.
    let (dir, path) = machine_config(|config, dir| {
        std::fs::write(dir.join("file"), "x").unwrap();
        config.upload.spool_dir = Some(dir.join("file/spool"));
    });
    let spool = dir.path().join("file/spool").display().to_string();
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    assert_eq!(
        failures(&stdout),
        [format!(
            "FAILED [1] spool folder {spool}: cannot be created, {}/file is not a folder",
            dir.path().display()
        )],
        "{stdout}"
    );
    let stderr = serve_refuses(&path).await;
    assert!(
        stderr.contains(&format!("spool folder {spool}: cannot create it")),
        "{stderr}"
    );

    // In /proc nothing can be created, by root either.
    let (_dir, path) = machine_config(|config, _| {
        config.upload.spool_dir = Some("/proc/dropgate-spool".into());
    });
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    let failed = failures(&stdout);
    assert!(
        failed.len() == 1
            && failed[0].starts_with(
                "FAILED [1] spool folder /proc/dropgate-spool: cannot be created, no folder \
                 can be made in /proc"
            ),
        "{stdout}"
    );
    let stderr = serve_refuses(&path).await;
    assert!(
        stderr.contains("spool folder /proc/dropgate-spool"),
        "{stderr}"
    );

    // A usable folder whose file system is below the floor.
    let (_dir, path) = machine_config(|config, _| {
        config.upload.min_free_space = Some(u64::MAX / 2);
    });
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    assert!(
        failures(&stdout)[0].contains("below upload.min_free_space"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_audit_log_that_cannot_be_written_fails() {
    let (dir, path) = machine_config(|config, dir| config.audit_to(&dir.join("no/audit.jsonl")));
    let log = dir.path().join("no/audit.jsonl");
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    assert_eq!(
        failures(&stdout),
        [format!(
            "FAILED [1] audit log {}: its folder {} does not exist (or is not a folder)",
            log.display(),
            dir.path().join("no").display()
        )],
        "{stdout}"
    );

    let (_dir, path) = machine_config(|config, _| config.audit_to(Path::new("/proc/audit.jsonl")));
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    assert!(
        failures(&stdout)[0]
            .starts_with("FAILED [1] audit log /proc/audit.jsonl: cannot create a file in /proc"),
        "{stdout}"
    );
}

#[tokio::test]
async fn addresses_in_use_fail_unless_the_gateway_is_running() {
    let ssh = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (ssh_addr, metrics_addr) = (ssh.local_addr().unwrap(), metrics.local_addr().unwrap());
    let (_dir, path) = machine_config(|config, _| {
        config.listen_on(ssh_addr.port());
        config.metrics = Some(Metrics {
            listen: metrics_addr.to_string(),
        });
    });
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 2, "{stdout}");
    assert!(
        failed[0].starts_with(&format!(
            "FAILED [1] server.listen {ssh_addr}: the address is in use"
        )),
        "{stdout}"
    );
    assert!(
        failed[1].starts_with(&format!(
            "FAILED [2] metrics.listen {metrics_addr}: the address is in use"
        )),
        "{stdout}"
    );
    // `systemctl reload` checks the config of a gateway that holds both.
    let (ok, stdout, stderr) = check_config(&path, &["--running"]).await;
    assert!(ok, "{stdout}\n{stderr}");
}

#[tokio::test]
async fn every_failing_user_is_reported_with_file_and_line() {
    let serve = ServeDir::new().await;
    let mut config = serve.config();
    // alice's keys file (named relative to the config) has a bad third line; bob names an
    // account that does not exist; both are reported, each on its own line.
    let alice_key = std::fs::read_to_string(serve.path("alice.pub")).unwrap();
    std::fs::write(
        serve.path("alice.keys"),
        format!(
            "{}\n# spare\ncommand=\"/bin/sh\" {}",
            alice_key.trim(),
            alice_key.trim()
        ),
    )
    .unwrap();
    config.user("alice").authorized_keys_file = Some("alice.keys".into());
    config.user("bob").account = "nope".into();
    config.write(&serve.config_path());
    let (ok, stdout, _) = check_config(&serve.config_path(), &[]).await;
    assert!(!ok, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 2, "{stdout}");
    let keys = serve.path("alice.keys").display().to_string();
    assert!(
        failed[0].starts_with(&format!(
            "FAILED [1] users.alice.authorized_keys_file {keys}: line 3: "
        )) && failed[0].contains("command"),
        "{stdout}"
    );
    assert_eq!(
        failed[1], "FAILED [2] users.bob.account: no account named \"nope\"",
        "{stdout}"
    );
    for (user, n) in [("alice ", 1), ("bob ", 2)] {
        let row = stdout.lines().find(|l| l.starts_with(user)).unwrap();
        assert!(row.ends_with(&format!("FAILED [{n}]")), "{stdout}");
    }
    // The account still signs in: one bad user does not hide the rest of the check.
    let main = stdout.lines().find(|l| l.starts_with("main ")).unwrap();
    assert!(main.contains("ok: "), "{stdout}");
}

#[tokio::test]
async fn serve_takes_relative_paths_from_the_config_folder_not_the_working_directory() {
    let serve = ServeDir::new().await;
    let mut config = serve.config();
    config.server.host_key = "host_key".into();
    config.upload.spool_dir = Some("spool".into());
    for name in ["alice", "bob"] {
        config.user(name).authorized_keys_file = Some(format!("{name}.pub").into());
    }
    config.write(&serve.config_path());

    let mut fingerprints = Vec::new();
    for _ in 0..2 {
        let elsewhere = tempfile::tempdir().unwrap();
        let process = dropgate_binary("warn")
            .args(["serve", "--config"])
            .arg(serve.config_path())
            .current_dir(elsewhere.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until_listening(serve.port).await,
            "serve did not start"
        );
        serve.trust_host_key();
        let public = std::fs::read_to_string(serve.path("host_key.pub")).unwrap();
        // alice logs in with her key from the config folder, checking the host key there.
        let out = serve
            .sftp_as_alice(&serve.path("alice"), "ls\n", &[])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        send_signal(&process, "TERM");
        let stopped = tokio::time::timeout(Duration::from_secs(30), process.wait_with_output())
            .await
            .expect("serve did not stop");
        let stderr = String::from_utf8_lossy(&stopped.unwrap().stderr).into_owned();
        assert_eq!(
            std::fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "serve wrote into its working directory"
        );
        assert!(serve.path("spool").is_dir());
        fingerprints.push((public, stderr));
    }
    let ((first_key, first_log), (second_key, second_log)) = (&fingerprints[0], &fingerprints[1]);
    assert_eq!(first_key, second_key, "a new host key on the second start");
    // The key created on the first start is announced at WARN, with its path and fingerprint.
    let created = first_log
        .lines()
        .find(|l| l.contains("created a new host key"))
        .unwrap_or_else(|| panic!("no warning about the new key: {first_log}"));
    assert!(created.contains("WARN"), "{created}");
    assert!(
        created.contains(&serve.path("host_key").display().to_string()),
        "{created}"
    );
    let fingerprint = host_key::fingerprint(&host_key::load(&serve.path("host_key")).unwrap());
    assert!(created.contains(&fingerprint), "{created}");
    assert!(
        !second_log.contains("created a new host key"),
        "{second_log}"
    );
}

#[tokio::test]
async fn with_the_admin_page_on_an_account_not_connected_is_a_warning_not_a_failure() {
    let account = |config: &mut GatewayConfig, dir: &Path| {
        config.accounts.push(config::Account::from_token_file(
            "later",
            "http://127.0.0.1:9",
            &dir.join("later.token"),
        ));
    };
    let (_dir, path) = machine_config(account);
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok, "without the page it fails: {stdout}");
    assert!(failures(&stdout)[0].contains("accounts.later"), "{stdout}");

    let (_dir, path) = machine_config(|config, dir| {
        account(config, dir);
        config.admin = Some(config::Admin::on_loopback(
            dir,
            "http://127.0.0.1:9",
            "ops",
            "pw",
        ));
    });
    let (ok, stdout, stderr) = check_config(&path, &["--running"]).await;
    assert!(
        ok,
        "the gateway runs without it and the page connects it: {stdout}\n{stderr}"
    );
    let row = stdout.lines().find(|l| l.starts_with("later ")).unwrap();
    assert!(
        row.contains("WARNING: not connected") && row.contains("admin page"),
        "{stdout}"
    );
    let admin = stdout
        .lines()
        .find(|l| l.starts_with("admin page "))
        .unwrap();
    assert!(admin.contains("plain HTTP"), "{stdout}");
}
