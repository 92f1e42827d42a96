//! Dropbox accounts end to end: `dropgate auth` against the emulator's OAuth pages,
//! the token file in the config, tokens that expire mid-upload, Business team members and the
//! team space, several accounts side by side, proxies, `dropgate check-config`, and the
//! start-up errors an admin meets (unknown member, revoked token).
//!
//! Where files land is read back from the emulator's own API with its static tokens, never
//! through the gateway under test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::process::share_process_counters;
use crate::common::{
    dropgate_binary, finish_command, free_port, host_key, paramiko_as_alice, random_bytes,
    request_count, start_emulator, write_random_file, Account, Bench, ClientOptions, Config,
    Credentials, DropboxClient, Endpoints, Gateway, GatewayConfig, User,
};
use dropbox_emulator::demo_credentials as demo;
use dropbox_emulator::Emulator;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const MIB: u64 = 1024 * 1024;
const SUFFIX: &str = "?command=register_dropbox_api";

// ---- helpers ----

/// An emulator on its own (for `dropgate auth` and start-up errors), in a temp dir.
async fn emulator() -> (tempfile::TempDir, Emulator) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(dir.path()).await;
    (dir, emulator)
}

fn dropgate() -> tokio::process::Command {
    dropgate_binary("dropgate=debug")
}

/// Reads stdout lines until one is a URL; returns it.
async fn authorize_url_from(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> String {
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("http") {
                return line;
            }
        }
        panic!("dropgate auth printed no authorize URL");
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("no authorize URL within 30 s")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Types the code that Dropbox's page shows into `dropgate auth --no-browser`.
async fn type_code_from(page: &str, child: &mut tokio::process::Child) {
    let code = page
        .split("<pre id=\"code\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .expect("the page shows a code");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{code}\n").as_bytes())
        .await
        .unwrap();
}

fn read_token_file(path: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A client of the emulator with refresh-token credentials, as the gateway would build it.
fn refreshing_client(base: &str, app_key: &str, secret: &str, refresh: &str) -> DropboxClient {
    DropboxClient::new(ClientOptions::new(
        Endpoints::all(base).unwrap(),
        Credentials::Refresh {
            app_key: app_key.into(),
            app_secret: secret.into(),
            refresh_token: refresh.into(),
        },
    ))
    .unwrap()
}

/// files/get_metadata with the emulator's static team token, as a member or in the team space.
async fn team_metadata(base: &str, path: &str, member: &str, team_space: bool) -> Option<Value> {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/2/files/get_metadata"))
        .bearer_auth(demo::TEAM_ACCESS_TOKEN)
        .header("Dropbox-API-Select-User", member)
        .json(&json!({ "path": path }));
    if team_space {
        let root = json!({".tag": "root", "root": demo::TEAM_ROOT_NAMESPACE_ID}).to_string();
        request = request.header("Dropbox-API-Path-Root", root);
    }
    let response = request.send().await.unwrap();
    match response.status().as_u16() {
        200 => Some(response.json().await.unwrap()),
        409 => None,
        other => panic!(
            "get_metadata {path}: HTTP {other}: {}",
            response.text().await.unwrap()
        ),
    }
}

/// Writes `config` as a file in `dir` and loads it.
fn load_config(dir: &Path, config: &GatewayConfig) -> (PathBuf, Config) {
    let path = dir.join(format!("dropgate-{}.toml", rand::random::<u32>()));
    config.write(&path);
    let loaded = Config::load(&path).unwrap();
    (path, loaded)
}

async fn start_error(dir: &Path, config: &GatewayConfig) -> String {
    let (_, loaded) = load_config(dir, config);
    let _counters = share_process_counters().await;
    match Gateway::start(&loaded).await {
        Ok(_) => panic!("the gateway started with:\n{}", config.to_toml()),
        Err(e) => format!("{e:#}"),
    }
}

// ---- dropgate auth ----

#[tokio::test]
async fn auth_flow_end_to_end_writes_a_private_token_file_the_gateway_uses() {
    // The bench's emulator is the Dropbox to register with; its gateway is replaced later by
    // one that runs on the token file.
    let mut bench = Bench::start().await;
    let dir = bench.dir.path().to_path_buf();
    let base = bench.emulator.base_url();
    let redirect = format!("http://127.0.0.1:{}/{SUFFIX}", free_port());
    let token_file = dir.as_path().join("keys/main.token");
    let mut child = dropgate()
        .args(["auth", "--account", "main", "--app-key"])
        .arg(format!("{}~{}", demo::APP_KEY, demo::APP_SECRET))
        .args(["--redirect-url", &redirect, "--api-url", &base])
        .arg("--token-file")
        .arg(&token_file)
        .args(["--timeout", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = authorize_url_from(&mut lines).await;

    assert!(
        url.starts_with(&format!("{base}/oauth2/authorize?")),
        "{url}"
    );
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&url, "token_access_type").as_deref(),
        Some("offline")
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&url, "redirect_uri").as_deref(),
        Some(redirect.as_str())
    );
    let state = query_param(&url, "state").expect("a state");

    // The browser: the authorize page redirects to dropgate's listener.
    let http = no_redirects();
    let answer = http.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&redirect), "{location}");
    assert_eq!(query_param(&location, "state"), Some(state.clone()));

    // A redirect with another state is not taken.
    let forged = location.replace(&state, "forged");
    let refused = http.get(&forged).send().await.unwrap();
    assert_eq!(refused.status(), 400);

    let page = http.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("return to the terminal"));

    let (ok, stdout, stderr) = finish_command(child, lines).await;
    assert!(ok, "dropgate auth failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("token_file = "), "{stdout}");

    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {:o}", mode & 0o777);
    let saved = read_token_file(&token_file);
    let refresh = saved["refresh_token"].as_str().unwrap();
    assert_eq!(saved["email"].as_str(), Some(demo::PERSONAL_EMAIL));
    assert_eq!(
        saved["account_id"].as_str(),
        Some(demo::PERSONAL_ACCOUNT_ID)
    );
    assert_eq!(saved["team"].as_bool(), Some(false));
    for secret in [refresh, demo::APP_SECRET] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret was printed"
        );
    }

    // The refresh token works.
    let client = refreshing_client(&base, demo::APP_KEY, demo::APP_SECRET, refresh);
    let account = client.get_current_account().await.unwrap();
    assert_eq!(account.email, demo::PERSONAL_EMAIL);

    // And a gateway runs on it, the config naming the token file.
    let mut config = GatewayConfig::without_accounts(&dir);
    config
        .accounts
        .push(Account::from_token_file("main", &base, &token_file));
    config
        .users
        .push(User::with_bench_key(&dir, "alice", "main", "/alice"));
    let (config_path, config) = load_config(&dir, &config);
    let gateway = Gateway::start(&config).await.unwrap();
    replace_gateway(&mut bench, gateway).await;
    std::fs::write(bench.path("hello.txt"), "hello").unwrap();
    bench.sftp_ok(&bench.user("alice"), "put hello.txt\n").await;
    assert_eq!(bench.dropbox_download("/alice/hello.txt").await, b"hello");

    // check-config is content with the scopes the flow granted, and warns about a missing one
    // (an app whose permissions lack files.content.write signs in, then fails every upload).
    let (ok, stdout, stderr) = check_config(&config_path, &[]).await;
    assert!(ok && !stdout.contains("WARNING"), "{stdout}\n{stderr}");
    let mut narrowed = read_token_file(&token_file);
    let scopes = narrowed["scope"]
        .as_str()
        .unwrap()
        .replace("files.content.write", "");
    narrowed.insert("scope".into(), toml::Value::String(scopes));
    std::fs::write(&token_file, toml::to_string(&narrowed).unwrap()).unwrap();
    let (ok, stdout, stderr) = check_config(&config_path, &[]).await;
    assert!(
        ok,
        "a missing scope is a warning, not a failure: {stdout}\n{stderr}"
    );
    let main = line_containing(&stdout, "main");
    assert!(
        main.contains("WARNING") && main.contains("files.content.write"),
        "{stdout}"
    );
}

/// Puts `gateway` (same host key, new port) in place of the bench's own.
async fn replace_gateway(bench: &mut Bench, gateway: Gateway) {
    let old = std::mem::replace(&mut bench.gateway, gateway);
    old.shutdown().await.unwrap();
    bench.write_known_hosts();
}

#[tokio::test]
async fn headless_auth_of_a_team_app_stores_a_team_token() {
    let (dir, emulator) = emulator().await;
    let base = emulator.base_url();
    let token_file = dir.path().join("team.token");
    let mut child = dropgate()
        .args(["auth", "--account", "team", "--no-browser", "--app-key"])
        .arg(demo::APP_KEY)
        .args(["--api-url", &base])
        .arg("--token-file")
        .arg(&token_file)
        .env("DROPGATE_APP_SECRET", demo::APP_SECRET)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = authorize_url_from(&mut lines).await;
    assert!(query_param(&url, "redirect_uri").is_none(), "{url}");

    // The admin signs in as the team (emulator_as) and Dropbox shows the code.
    let page = no_redirects()
        .get(format!("{url}&emulator_as={}", demo::TEAM_ID))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    type_code_from(&page, &mut child).await;

    let (ok, stdout, stderr) = finish_command(child, lines).await;
    assert!(ok, "dropgate auth failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("team_member_email"), "{stdout}");
    let saved = read_token_file(&token_file);
    assert_eq!(saved["team"].as_bool(), Some(true));
    assert_eq!(saved["team_id"].as_str(), Some(demo::TEAM_ID));

    // A team token without a member to act as is a clear start-up error.
    let mut config = GatewayConfig::without_accounts(dir.path());
    config
        .accounts
        .push(Account::from_token_file("team", &base, &token_file));
    let err = start_error(dir.path(), &config).await;
    assert!(
        err.contains("account \"team\"") && err.contains("set team_member_email"),
        "{err}"
    );

    // With the member named, it starts.
    config.account("team").team_member_email = Some(demo::ALICE_EMAIL.into());
    let (_, config) = load_config(dir.path(), &config);
    let _counters = share_process_counters().await;
    let gateway = Gateway::start(&config).await.unwrap();
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_explains_a_bad_redirect_url_and_a_wrong_secret() {
    let out = dropgate()
        .args(["auth", "--account", "a", "--app-key", "k~s"])
        .args(["--redirect-url", "http://localhost:53682/callback"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("must end with \"?command=register_dropbox_api\""),
        "{stderr}"
    );

    let (dir, emulator) = emulator().await;
    let token_file = dir.path().join("wrong.token");
    let mut child = dropgate()
        .args(["auth", "--account", "a", "--no-browser", "--app-key"])
        .arg(demo::APP_KEY)
        .args(["--app-secret", "not-the-secret", "--api-url"])
        .arg(emulator.base_url())
        .arg("--token-file")
        .arg(&token_file)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = authorize_url_from(&mut lines).await;
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    type_code_from(&page, &mut child).await;
    let (ok, _, stderr) = finish_command(child, lines).await;
    assert!(!ok);
    assert!(
        stderr.contains("Dropbox refused the app key or app secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
    assert!(!token_file.exists());
}

/// `dropgate auth --config` writes the token file where the config's account expects it
/// (not in the folder it runs in), mode 0600, reaches Dropbox at the account's api_url, and the
/// gateway then signs in with that config. Run as root into a folder the service user owns,
/// the file becomes that user's. An account the config lacks, or one without token_file, is
/// refused before anything is asked.
#[tokio::test]
async fn auth_with_the_config_writes_the_token_where_the_account_expects_it() {
    use std::os::unix::fs::MetadataExt;
    let (dir, emulator) = emulator().await;
    let base = emulator.base_url();
    let elsewhere = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let as_root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    const SERVICE_UID: u32 = 65534;
    if as_root {
        std::os::unix::fs::chown(&state, Some(SERVICE_UID), Some(SERVICE_UID)).unwrap();
    }
    let token_file = state.join("main.token");
    let mut config = GatewayConfig::without_accounts(dir.path());
    config
        .accounts
        .push(Account::from_token_file("main", &base, &token_file));
    config.accounts.push(Account::personal("inline", &base));
    let config_path = dir.path().join("dropgate.toml");
    config.write(&config_path);
    let auth = |account: &str| {
        let mut command = dropgate();
        command
            .args(["auth", "--no-browser", "--account", account, "--app-key"])
            .arg(demo::APP_KEY)
            .arg("--config")
            .arg(&config_path)
            .env("DROPGATE_APP_SECRET", demo::APP_SECRET)
            .current_dir(elsewhere.path())
            .stdin(Stdio::piped());
        command
    };

    let mut child = auth("main").spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = authorize_url_from(&mut lines).await;
    assert!(url.starts_with(&format!("{base}/oauth2/")), "{url}");
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    type_code_from(&page, &mut child).await;
    let (ok, stdout, stderr) = finish_command(child, lines).await;
    assert!(ok, "dropgate auth failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "token_file = {:?}",
            token_file.display().to_string()
        )),
        "{stdout}"
    );
    let meta = std::fs::metadata(&token_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    if as_root {
        assert_eq!((meta.uid(), meta.gid()), (SERVICE_UID, SERVICE_UID));
    }
    assert!(!elsewhere.path().join("keys").exists());
    let loaded = Config::load(&config_path).unwrap();
    let _counters = share_process_counters().await;
    let gateway = Gateway::start(&loaded).await.unwrap();
    gateway.shutdown().await.unwrap();

    for (account, expected) in [
        ("nobody", "has no account named \"nobody\""),
        ("inline", "accounts.inline in"),
    ] {
        let out = auth(account).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let both = dropgate()
        .args([
            "auth",
            "--account",
            "main",
            "--app-key",
            "k~s",
            "--token-file",
            "x",
        ])
        .arg("--config")
        .arg(&config_path)
        .output()
        .await
        .unwrap();
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

// ---- tokens at run time ----

/// An expired token on an upload-session append is retried by the upload pipeline (the client
/// cannot replay a streamed body itself). The file is a session upload with one small append
/// at CLOSE, so that the 401 is always read (a 4 MiB body may still be in flight when the
/// server answers and hangs up) and nothing but the retry can save the upload.
#[tokio::test]
async fn a_token_that_expires_during_an_append_is_refreshed_and_the_append_retried() {
    let bench = Bench::with_upload_sessions(1000, 4 * MIB).await;
    let hash = write_random_file(&bench.path("small.bin"), 16 * 1024);
    bench.reset_emulator_stats().await;
    bench
        .set_emulator_faults(json!([{
            "kind": "expired_token",
            "route": "files/upload_session/append_v2",
            "count": 1
        }]))
        .await;
    bench.sftp_ok(&bench.user("alice"), "put small.bin\n").await;
    let stored = bench.dropbox_metadata("/alice/small.bin").await.unwrap();
    assert_eq!(stored["content_hash"].as_str(), Some(hash.as_str()));
    let requests = bench.upload_requests().await;
    assert_eq!(requests.session_start, 1, "{requests:?}");
    assert_eq!(requests.session_append, 2, "{requests:?}");
    assert_eq!(requests.session_finish, 1, "{requests:?}");
}

/// Every access token expires while a multi-chunk upload is under way; the upload still
/// succeeds (through the append retry, or the commit's fresh session when the 401 is lost to a
/// connection the server closed mid-body).
#[tokio::test]
async fn tokens_expiring_in_the_middle_of_a_multi_chunk_upload_do_not_fail_it() {
    let bench = Bench::with_upload_sessions(4 * MIB, 4 * MIB).await;
    let hash = write_random_file(&bench.path("big.bin"), 48 * MIB);
    bench.reset_emulator_stats().await;
    let mut sftp = bench
        .sftp_command(&bench.user("alice"), "put big.bin\n", &[])
        .spawn()
        .unwrap();
    // Once Dropbox has some of the file, every access token it issued stops working.
    let started = crate::common::poll_until(Duration::from_secs(60), || async {
        bench.upload_requests().await.session_append >= 2
    })
    .await;
    assert!(started, "the upload never got going");
    bench.emulator_hook("expire_tokens").await;
    let out = tokio::time::timeout(Duration::from_secs(120), sftp.wait())
        .await
        .expect("sftp did not finish")
        .unwrap();
    assert!(out.success(), "the upload failed after the tokens expired");
    let stored = bench.dropbox_metadata("/alice/big.bin").await.unwrap();
    assert_eq!(stored["content_hash"].as_str(), Some(hash.as_str()));
}

/// Dropbox may invalidate access tokens before they expire (a revocation, its token store
/// starting over). A restarted emulator forgets every access token it issued and answers
/// `invalid_access_token`; the gateway gets a fresh one with its refresh token, once, and
/// carries on without a restart of its own.
#[tokio::test]
async fn access_tokens_dropbox_forgot_are_replaced_without_restarting_the_gateway() {
    let mut bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("before.txt"), "before").unwrap();
    bench.sftp_ok(&alice, "put before.txt\n").await;
    bench.restart_emulator().await;
    std::fs::write(bench.path("after.txt"), "after").unwrap();
    let listing = bench.sftp_ok(&alice, "ls\nput after.txt\n").await;
    assert!(listing.contains("before.txt"), "{listing}");
    assert_eq!(bench.dropbox_download("/alice/after.txt").await, b"after");
    let stats = bench.emulator_stats().await;
    assert_eq!(request_count(&stats, "oauth2/token"), 1, "{stats}");
}

/// When Dropbox refuses the refresh token too, the operator has to act (the log says what);
/// the partner's client is told that Dropbox is unavailable, not to re-run `dropgate auth`.
#[tokio::test]
async fn a_refused_refresh_tells_the_client_dropbox_is_unavailable() {
    let bench = Bench::start().await;
    bench.revoke_refresh_token().await;
    let script = r#"
try:
    sftp.listdir(".")
    result["error"] = None
except IOError as e:
    result["error"] = str(e)
"#;
    let result = paramiko_as_alice(&bench, script).await;
    let error = result["error"].as_str().expect("the listing should fail");
    assert!(
        error.contains("Dropbox is unavailable; try again later"),
        "{error}"
    );
    assert!(!error.contains("dropgate auth"), "{error}");
}

#[tokio::test]
async fn a_revoked_refresh_token_is_a_clear_start_up_error() {
    let (dir, emulator) = emulator().await;
    let base = emulator.base_url();
    let mut config = GatewayConfig::without_accounts(dir.path());
    let mut old = Account::personal("old", &base);
    old.refresh_token = Some("revoked-long-ago".into());
    config.accounts.push(old);
    let err = start_error(dir.path(), &config).await;
    assert!(err.contains("account \"old\""), "{err}");
    assert!(
        err.contains("the refresh token was revoked or is invalid: re-run dropgate auth"),
        "{err}"
    );
    assert!(!err.contains("revoked-long-ago"), "{err}");
}

// ---- Business ----

#[tokio::test]
async fn several_accounts_and_a_team_member_each_see_their_own_dropbox() {
    let bench = Bench::configured(|config, dir| {
        let url = config.account("main").api_url.clone();
        config.accounts = vec![
            Account::personal("personal", &url),
            Account::team("bob-at-work", &url, demo::BOB_EMAIL, false),
        ];
        config.users = vec![
            User::with_bench_key(dir, "alice", "personal", "/alice"),
            User::with_bench_key(dir, "bob", "bob-at-work", "/"),
        ];
    })
    .await;
    let base = bench.emulator.base_url();
    std::fs::write(bench.path("a.txt"), random_bytes(1000)).unwrap();
    std::fs::write(bench.path("b.txt"), random_bytes(2000)).unwrap();
    bench.sftp_ok(&bench.user("alice"), "put a.txt\n").await;
    bench
        .sftp_ok(
            &bench.user("bob"),
            "mkdir reports\nput b.txt reports/b.txt\n",
        )
        .await;

    // alice's file is in the personal account.
    assert!(bench.dropbox_metadata("/alice/a.txt").await.is_some());
    // bob's is in his member namespace (his home, "Bob Jones" in the team space), not
    // alice-the-member's and not the personal account's.
    let bob = demo::BOB_TEAM_MEMBER_ID;
    let alice = demo::ALICE_TEAM_MEMBER_ID;
    let meta = team_metadata(&base, "/reports/b.txt", bob, false).await;
    assert_eq!(meta.unwrap()["size"], 2000);
    let in_space = format!("/{}/reports/b.txt", demo::BOB_HOME_FOLDER);
    assert!(team_metadata(&base, &in_space, bob, true).await.is_some());
    assert!(team_metadata(&base, "/reports/b.txt", alice, false)
        .await
        .is_none());
    assert!(bench.dropbox_metadata("/reports/b.txt").await.is_none());
    // And bob's listing does not show the team space.
    let listing = bench.sftp_ok(&bench.user("bob"), "ls -1\n").await;
    assert!(!listing.contains(demo::TEAM_FOLDER_NAME), "{listing}");
}

#[tokio::test]
async fn a_team_space_user_sees_the_team_folders_and_writes_into_them() {
    let bench = Bench::configured(|config, dir| {
        let url = config.account("main").api_url.clone();
        config.accounts = vec![Account::team("team", &url, demo::ALICE_EMAIL, true)];
        config.users = vec![User::with_bench_key(dir, "alice", "team", "/")];
    })
    .await;
    let base = bench.emulator.base_url();
    let alice = bench.user("alice");
    let listing = bench.sftp_ok(&alice, "ls -1\n").await;
    assert!(listing.contains(demo::TEAM_FOLDER_NAME), "{listing}");
    assert!(listing.contains(demo::ALICE_HOME_FOLDER), "{listing}");

    std::fs::write(bench.path("plan.txt"), "team plan").unwrap();
    let folder = demo::TEAM_FOLDER_NAME;
    bench
        .sftp_ok(&alice, &format!("put plan.txt \"{folder}/plan.txt\"\n"))
        .await;
    let path = format!("/{folder}/plan.txt");
    let stored = team_metadata(&base, &path, demo::ALICE_TEAM_MEMBER_ID, true).await;
    assert_eq!(stored.unwrap()["size"], 9);
}

#[tokio::test]
async fn an_unknown_team_member_email_is_a_clear_start_up_error() {
    let (dir, emulator) = emulator().await;
    let mut config = GatewayConfig::without_accounts(dir.path());
    config.accounts.push(Account::team(
        "team",
        &emulator.base_url(),
        "nobody@team.example",
        false,
    ));
    let err = start_error(dir.path(), &config).await;
    assert!(
        err.contains("account \"team\"")
            && err.contains("no member with the email \"nobody@team.example\""),
        "{err}"
    );
}

// ---- proxies and check-config ----

async fn check_config(config: &Path, envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = dropgate();
    command
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for (name, value) in envs {
        command.env(name, value);
    }
    let out = command.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_prints_who_gets_what() {
    let (dir, emulator) = emulator().await;
    let url = emulator.base_url();
    for name in ["alice", "bob"] {
        host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
    }
    let mut config = GatewayConfig::without_accounts(dir.path());
    config.accounts = vec![
        Account::personal("personal", &url),
        Account::team("team", &url, demo::ALICE_EMAIL, true),
    ];
    config.users = vec![
        User::with_bench_key(dir.path(), "alice", "personal", "/partners/alice"),
        User::with_bench_key(dir.path(), "bob", "team", "/"),
    ];
    let (path, _) = load_config(dir.path(), &config);
    let (ok, stdout, stderr) = check_config(&path, &[]).await;
    assert!(ok, "{stdout}\n{stderr}");
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("alice "),
        "alice personal /partners/alice all anywhere ok"
    );
    assert_eq!(line("bob "), "bob team / all anywhere ok");
    assert!(line("personal ").contains(demo::PERSONAL_EMAIL));
    let team = line("team ");
    assert!(team.contains(demo::ALICE_TEAM_MEMBER_ID), "{team}");
    assert!(team.contains("team space"), "{team}");

    // A revoked token fails the check, and says so in the table.
    config.account("personal").refresh_token = Some("revoked-token".into());
    let (path, _) = load_config(dir.path(), &config);
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok);
    assert!(
        line_containing(&stdout, "personal").contains("FAILED"),
        "{stdout}"
    );
    assert!(stdout.contains("re-run dropgate auth"), "{stdout}");
}

fn line_containing<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(start)).unwrap_or("")
}

#[tokio::test]
async fn proxies_from_the_environment_the_server_and_the_account() {
    let (dir, emulator) = emulator().await;
    let url = emulator.base_url();
    // Nothing listens on port 1: a request sent through this "proxy" cannot get anywhere.
    let dead = "http://127.0.0.1:1";

    // HTTP(S)_PROXY from the environment is honoured by default...
    let mut config = GatewayConfig::without_accounts(dir.path());
    config.accounts.push(Account::personal("personal", &url));
    let (path, _) = load_config(dir.path(), &config);
    let env = [
        ("HTTP_PROXY", dead),
        ("HTTPS_PROXY", dead),
        ("ALL_PROXY", dead),
    ];
    let (ok, stdout, _) = check_config(&path, &env).await;
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("could not reach Dropbox"), "{stdout}");
    // ...and an account can opt out of it.
    config.account("personal").proxy = Some("none".into());
    let (path, _) = load_config(dir.path(), &config);
    let (ok, stdout, stderr) = check_config(&path, &env).await;
    assert!(ok, "{stdout}\n{stderr}");

    // [server] proxy applies to every account without its own.
    let mut config = GatewayConfig::without_accounts(dir.path());
    config.server.proxy = Some(dead.into());
    let mut direct = Account::personal("direct", &url);
    direct.proxy = Some("none".into());
    config.accounts = vec![Account::personal("via-server", &url), direct];
    let (path, _) = load_config(dir.path(), &config);
    let (ok, stdout, _) = check_config(&path, &[]).await;
    assert!(!ok);
    // The table says FAILED; the reason follows the tables, naming the account.
    assert!(
        line_containing(&stdout, "via-server").contains("FAILED [1]"),
        "{stdout}"
    );
    assert!(
        line_containing(&stdout, "FAILED [1] accounts.via-server: ")
            .contains("could not reach Dropbox"),
        "{stdout}"
    );
    assert!(
        line_containing(&stdout, "direct").contains(demo::PERSONAL_EMAIL),
        "{stdout}"
    );
}
