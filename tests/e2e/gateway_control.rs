//! The admin page's handle on a running gateway (`Gateway::control`), end to end: an account
//! that cannot sign in at start (with `[admin]` on) and is connected later without a restart,
//! the accounts' health after Dropbox refuses a token, a failed re-connect that changes nothing,
//! reloads (new accounts, accounts connected from the page), and the ban logic shared with SSH.
//!
//! The clients are the real OpenSSH `sftp` and `scp`; what lands in Dropbox is read from the
//! emulator.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use dropbox_emulator::demo_credentials as demo;
use dropgate::config::AccountConfig;
use dropgate::gateway::control::AccountStatus;
use serde::Serialize;

use crate::common::{
    hash_password, output_text, poll_until, stderr, stdout, wait_for_client, write_random_file,
    write_token_file, Account, Bench, Config, Gateway, GatewayConfig, Limits,
};

// ---- helpers ----

/// `[admin]` with one admin user; the page itself is not started by these tests.
#[derive(Serialize)]
struct AdminFile {
    admin: Admin,
}

#[derive(Serialize)]
struct Admin {
    listen: String,
    accounts_dir: PathBuf,
    api_url: String,
    users: Vec<AdminUser>,
}

#[derive(Serialize)]
struct AdminUser {
    name: String,
    password_hash: String,
}

/// An argon2id hash, made once: it is slow on purpose.
fn admin_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("admin password").unwrap())
        .clone()
}

/// Where the page keeps the token files of accounts it connected.
fn accounts_dir(bench: &Bench) -> PathBuf {
    bench.path("accounts")
}

/// Writes `config` with `[admin]` on as the bench's config file (the one reloads read).
fn write_with_admin(bench: &Bench, config: &GatewayConfig) -> PathBuf {
    let admin = AdminFile {
        admin: Admin {
            listen: "127.0.0.1:0".into(),
            accounts_dir: accounts_dir(bench),
            api_url: bench.emulator.base_url(),
            users: vec![AdminUser {
                name: "admin".into(),
                password_hash: admin_hash(),
            }],
        },
    };
    let text = format!("{}\n{}", config.to_toml(), toml::to_string(&admin).unwrap());
    let path = bench.path("dropgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The bench's usual config, changed by `configure`, its audit log in `audit.log`.
fn bench_config(bench: &Bench, configure: impl FnOnce(&mut GatewayConfig, &Path)) -> GatewayConfig {
    let mut config = GatewayConfig::bench(bench.dir.path(), &bench.emulator.base_url());
    config.audit_to(&bench.path("audit.log"));
    configure(&mut config, bench.dir.path());
    config
}

/// Replaces the bench's gateway by one started from `config` with `[admin]` on.
async fn restart_with_admin(bench: &mut Bench, config: &GatewayConfig) {
    let path = write_with_admin(bench, config);
    let gateway = Gateway::start(&Config::load(&path).unwrap()).await.unwrap();
    let old = std::mem::replace(&mut bench.gateway, gateway);
    old.shutdown().await.unwrap();
    bench.write_known_hosts();
}

/// The SHA256 fingerprint `ssh-keygen -l` prints for a public key file.
fn ssh_keygen_fingerprint(public_key: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("bits, fingerprint, comment")
        .to_string()
}

fn status(bench: &Bench, name: &str) -> AccountStatus {
    bench
        .gateway
        .control()
        .accounts()
        .into_iter()
        .find(|account| account.name == name)
        .unwrap_or_else(|| panic!("no account {name}"))
}

fn assert_error_is_newest(account: &AccountStatus) {
    assert!(
        account.last_error_at > account.last_ok_at,
        "the error should be newer than the last success: {account:?}"
    );
}

fn audit_refusals(bench: &Bench) -> Vec<serde_json::Value> {
    bench
        .audit_lines()
        .into_iter()
        .filter(|line| line["event"] == "session" && line["result"] == "refused")
        .collect()
}

// ---- an account not connected at start ----

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_its_token_file_starts_not_connected_and_is_connected_later() {
    let mut bench = Bench::start().await;
    let base = bench.emulator.base_url();
    let token_file = bench.path("main.token");
    let config = bench_config(&bench, |config, _| {
        config.accounts = vec![Account::from_token_file("main", &base, &token_file)];
    });
    restart_with_admin(&mut bench, &config).await;
    let control = bench.gateway.control();

    let main = status(&bench, "main");
    assert!(!main.connected, "{main:?}");
    let error = main.last_error.clone().expect("the sign-in failure");
    assert!(
        error.contains("no token file at") && error.contains(&token_file.display().to_string()),
        "{error}"
    );
    assert!(
        main.last_error_at.is_some() && main.last_ok_at.is_none(),
        "{main:?}"
    );
    assert_eq!(main.users, ["alice", "bob"]);
    assert_eq!(main.token_file.as_deref(), Some(token_file.as_path()));
    assert!(!main.credentials_in_config && !main.team);
    assert_eq!((main.email, main.token_expires_at), (None, None));

    // alice logs in (her key is fine), and her session is refused naming the account.
    let alice = bench.user("alice");
    std::fs::write(bench.path("hello.txt"), "hello").unwrap();
    let out = bench.sftp(&alice, "put hello.txt\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("the Dropbox account \"main\" is not connected"),
        "{}",
        output_text(&out)
    );
    assert!(
        !stderr(&out).contains("main.token"),
        "the client is not told the gateway's paths: {}",
        output_text(&out)
    );
    // Legacy SCP (`scp -O`) is refused the same way.
    let remote = bench.remote(&alice, "hello.txt");
    let out = bench
        .scp(&alice, &["-O".into(), "hello.txt".into(), remote])
        .await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("the Dropbox account \"main\" is not connected"),
        "{}",
        output_text(&out)
    );
    let refusals = audit_refusals(&bench);
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(refusals[0]["user"], "alice");
    let why = refusals[0]["error"].as_str().unwrap();
    assert!(
        why.contains("not connected") && why.contains("no token file at"),
        "{why}"
    );
    assert!(bench.dropbox_metadata("/alice/hello.txt").await.is_none());

    // The token file appears; connecting makes the next login work, without a restart.
    write_token_file(&token_file, "main", demo::REFRESH_TOKEN);
    let account = control.account_config("main").expect("its settings");
    let connected = control.connect_account(account).await.unwrap();
    assert!(connected.connected, "{connected:?}");
    assert_eq!(connected.email.as_deref(), Some(demo::PERSONAL_EMAIL));
    assert_eq!(
        connected.account_id.as_deref(),
        Some(demo::PERSONAL_ACCOUNT_ID)
    );
    assert!(
        connected.last_ok_at > connected.last_error_at,
        "{connected:?}"
    );
    assert!(connected.token_expires_at.unwrap() > std::time::SystemTime::now());

    bench.sftp_ok(&alice, "put hello.txt\n").await;
    assert_eq!(bench.dropbox_download("/alice/hello.txt").await, b"hello");
    assert_eq!(audit_refusals(&bench).len(), 2);
}

/// A token file the page left in `accounts_dir` is an account of the config (and of a reload);
/// one connected with `connect_account` serves users a reload then points at it.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_lets_users_name_an_account_connected_from_the_page() {
    let mut bench = Bench::start().await;
    let config = bench_config(&bench, |_, _| {});
    restart_with_admin(&mut bench, &config).await;
    let control = bench.gateway.control();

    let token_file = accounts_dir(&bench).join("later.token");
    write_token_file(&token_file, "later", demo::REFRESH_TOKEN);
    let later = AccountConfig {
        token_file: Some(token_file.clone()),
        api_url: Some(bench.emulator.base_url()),
        ..AccountConfig::named("later")
    };
    let connected = control.connect_account(later).await.unwrap();
    assert!(
        connected.connected && connected.users.is_empty(),
        "{connected:?}"
    );
    let names: Vec<String> = control.accounts().into_iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        ["main", "later"],
        "config order, then the ones added"
    );

    let mut moved = config.clone();
    moved.user("bob").account = "later".into();
    moved.user("bob").root = "/bob-later".into();
    write_with_admin(&bench, &moved);
    let reloaded = control.reload().await.unwrap();
    assert_eq!(reloaded.users, 2);
    assert!(
        reloaded.accounts_connected.is_empty(),
        "later was connected already: {reloaded:?}"
    );
    assert_eq!(status(&bench, "later").users, ["bob"]);
    let bob = control
        .users()
        .into_iter()
        .find(|u| u.name == "bob")
        .unwrap();
    assert_eq!(
        (bob.account.as_str(), bob.dropbox_root.as_str()),
        ("later", "/bob-later")
    );

    std::fs::write(bench.path("b.txt"), "bob's").unwrap();
    bench.sftp_ok(&bench.user("bob"), "put b.txt\n").await;
    assert_eq!(bench.dropbox_download("/bob-later/b.txt").await, b"bob's");
}

// ---- health ----

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_refresh_token_shows_as_the_accounts_last_error() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "ls\n").await;
    let healthy = status(&bench, "main");
    assert!(
        healthy.connected && healthy.credentials_in_config,
        "{healthy:?}"
    );
    assert_eq!(healthy.email.as_deref(), Some(demo::PERSONAL_EMAIL));
    assert!(
        healthy.last_error.is_none() && healthy.last_ok_at.is_some(),
        "{healthy:?}"
    );

    bench.revoke_refresh_token().await;
    let out = bench.sftp(&alice, "mkdir refused\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));

    let revoked = status(&bench, "main");
    assert!(revoked.connected, "the client stays in place: {revoked:?}");
    assert_eq!(
        revoked.last_error.as_deref(),
        Some("the refresh token was revoked or is invalid: re-run dropgate auth")
    );
    assert_error_is_newest(&revoked);
    assert!(!format!("{revoked:?}").contains(demo::REFRESH_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reconnect_changes_nothing_and_a_good_one_keeps_uploads_under_way() {
    let mut bench = Bench::start().await;
    let config = bench_config(&bench, |_, _| {});
    restart_with_admin(&mut bench, &config).await;
    let control = bench.gateway.control();
    let drainer = bench.gateway.drainer();
    let alice = bench.user("alice");

    // An upload that is still being received while the account is connected again.
    let hash = write_random_file(&bench.path("big.bin"), 8 * 1024 * 1024);
    let upload = bench
        .sftp_command(&alice, "put big.bin\n", &["-l", "8000"])
        .spawn()
        .unwrap();
    let receiving = poll_until(Duration::from_secs(30), || {
        std::future::ready(drainer.open_uploads() == 1)
    })
    .await;
    assert!(receiving, "the upload never opened");

    let mut bad = control.account_config("main").unwrap();
    bad.refresh_token = Some("revoked-long-ago".into());
    let error = control.connect_account(bad).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("the refresh token was revoked or is invalid"),
        "{error:#}"
    );
    let main = status(&bench, "main");
    assert!(
        main.connected && main.email.as_deref() == Some(demo::PERSONAL_EMAIL),
        "{main:?}"
    );
    assert!(main.last_error.unwrap().contains("revoked or is invalid"));
    assert_eq!(
        control
            .account_config("main")
            .unwrap()
            .refresh_token
            .as_deref(),
        Some(demo::REFRESH_TOKEN),
        "the settings stay the working ones"
    );
    bench.sftp_ok(&bench.user("bob"), "ls\n").await;
    assert!(control
        .connect_account(AccountConfig::named("typo"))
        .await
        .is_err());
    assert!(
        control.account_config("typo").is_none(),
        "a failed new account is not added"
    );

    // Connected again for real: the upload on the old client is still counted, and finishes.
    let good = control.account_config("main").unwrap();
    let again = control.connect_account(good).await.unwrap();
    assert!(again.last_ok_at > again.last_error_at, "{again:?}");
    assert_eq!(
        drainer.open_uploads(),
        1,
        "the replaced account keeps its open upload"
    );
    let out = wait_for_client(upload, "the upload").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let stored = bench.dropbox_metadata("/alice/big.bin").await.unwrap();
    assert_eq!(stored["content_hash"].as_str(), Some(hash.as_str()));
    assert_eq!(drainer.open_uploads(), 0);
}

// ---- reload ----

#[tokio::test(flavor = "multi_thread")]
async fn reload_through_control_signs_in_new_accounts_or_changes_nothing() {
    let bench = Bench::start().await;
    let control = bench.gateway.control();
    let base = bench.emulator.base_url();
    let path = bench.path("dropgate.toml");
    let mut config = GatewayConfig::bench(bench.dir.path(), &base);

    // A new account whose token is refused: the reload fails and nothing changes.
    let mut bad = Account::personal("bad", &base);
    bad.refresh_token = Some("revoked-long-ago".into());
    config.accounts.push(bad);
    config.user("bob").account = "bad".into();
    config.write(&path);
    let error = control.reload().await.unwrap_err();
    assert!(
        format!("{error:#}").contains("account \"bad\""),
        "{error:#}"
    );
    let names: Vec<String> = control.accounts().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["main"]);
    assert_eq!(status(&bench, "main").users, ["alice", "bob"]);

    // A good one is signed in, and bob's sessions go to it.
    config.accounts.pop();
    config.accounts.push(Account::personal("extra", &base));
    config.user("bob").account = "extra".into();
    config.user("bob").root = "/bob-extra".into();
    config.write(&path);
    let reloaded = control.reload().await.unwrap();
    assert_eq!(reloaded.accounts_connected, ["extra"]);
    let extra = status(&bench, "extra");
    assert!(extra.connected && extra.users == ["bob"], "{extra:?}");
    let bob = control
        .users()
        .into_iter()
        .find(|u| u.name == "bob")
        .unwrap();
    assert_eq!(bob.account, "extra");
    assert_eq!(bob.permissions, "all");
    assert!(!bob.has_password && bob.allowed_networks.is_none());
    assert_eq!(
        bob.key_fingerprints,
        [ssh_keygen_fingerprint(&bench.path("bob.pub"))]
    );
    std::fs::write(bench.path("x.txt"), "extra").unwrap();
    bench.sftp_ok(&bench.user("bob"), "put x.txt\n").await;
    assert_eq!(bench.dropbox_download("/bob-extra/x.txt").await, b"extra");

    // A gateway that was not started from a file has nothing to reload.
    let mut loaded = Config::load(&path).unwrap();
    loaded.source = None;
    let fileless = Gateway::start(&loaded).await.unwrap();
    let error = fileless.control().reload().await.unwrap_err();
    assert!(
        error.to_string().contains("not started from a config file"),
        "{error}"
    );
    fileless.shutdown().await.unwrap();
}

// ---- bans ----

#[tokio::test(flavor = "multi_thread")]
async fn failures_counted_through_control_ban_the_address_for_ssh_too() {
    let bench = Bench::configured(|config, _| {
        config.limits = Limits {
            max_login_failures: Some(3),
            login_failure_window_secs: Some(60),
            ban_secs: Some(60),
            ..Limits::default()
        };
    })
    .await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "ls\n").await;

    let guard = bench.gateway.control().guard();
    let here = "127.0.0.1".parse().unwrap();
    assert!(!guard.record_failure(here));
    assert!(!guard.record_failure(here));
    assert!(guard.record_failure(here), "the third failure bans");
    assert!(guard.is_banned(here));

    let out = bench.sftp(&alice, "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    // Closed before the SSH banner, as for a ban earned over SSH.
    bench.assert_closed_without_banner().await;
}
