//! The admin web page over HTTP, as any client (curl, a script) sees it: signing in through
//! its plain form, CSRF tokens, the OAuth state check, the token file it stores, the headers
//! every answer carries, and the ban logic it shares with SSH. The same page in a real browser
//! is `admin_browser`.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::common::admin::{AdminClient, Answer};
use crate::common::config::Admin;
use crate::common::{stderr, Bench};
use dropbox_emulator::demo_credentials as demo;

const ADMIN: &str = "ops";
const PASSWORD: &str = "correct horse battery staple";

/// A bench with its audit log and the admin page on, for `ops`.
async fn bench_with_admin(
    configure: impl FnOnce(&mut crate::common::GatewayConfig, &std::path::Path) + Send + 'static,
) -> (Bench, dropgate::admin::AdminServer) {
    let bench = Bench::audited(move |config, dir| {
        let api_url = config.accounts[0].api_url.clone();
        config.admin = Some(Admin::on_loopback(dir, &api_url, ADMIN, PASSWORD));
        configure(config, dir);
    })
    .await;
    let admin = bench.start_admin().await;
    (bench, admin)
}

async fn signed_in(admin: &dropgate::admin::AdminServer) -> AdminClient {
    let mut client = AdminClient::new(admin.url());
    let answer = client.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), "/activity");
    client
}

fn admin_lines(bench: &Bench, op: &str) -> Vec<Value> {
    bench
        .audit_lines()
        .into_iter()
        .filter(|line| line["event"] == "admin" && line["op"] == op)
        .collect()
}

#[tokio::test]
async fn signs_in_through_the_plain_form_and_refuses_a_wrong_password() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = AdminClient::new(admin.url());

    let page = client.get("/activity").await;
    assert_eq!((page.status, page.location().as_str()), (303, "/login"));

    let form = client.get("/login").await;
    assert_eq!(form.status, 200);
    for field in ["name=\"username\"", "name=\"password\"", "name=\"csrf\""] {
        assert!(form.body.contains(field), "{field} in {}", form.body);
    }
    let cookie = form.set_cookies().join("\n");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let wrong = client
        .post(
            "/login",
            &[
                ("username", ADMIN),
                ("password", "wrong"),
                ("csrf", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong user name or password"));
    assert!(!client.cookies.contains_key("dropgate_admin"));
    assert_eq!(
        client.get("/activity").await.status,
        303,
        "still signed out"
    );
    let failed = admin_lines(&bench, "login");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["result"], "failed");
    assert_eq!(failed[0]["user"], ADMIN);

    let ok = client.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(ok.status, 303);
    let session = ok.set_cookies().join("\n");
    assert!(session.contains("dropgate_admin=") && session.contains("HttpOnly"));
    let page = client.get("/activity").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Transfers in progress"));
    assert_eq!(admin_lines(&bench, "login")[1]["result"], "ok");

    let signed_out = client.post("/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!(signed_out.status, 303);
    assert_eq!(client.get("/users").await.status, 303, "signed out");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_not_acted_on() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    let page = client.get("/users").await;
    let token = page.csrf();

    let missing = client.post("/users/reload", &[]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(missing.body.contains("security token"));
    let wrong = client
        .post("/users/reload", &[("csrf", "not-the-token")])
        .await;
    assert_eq!(wrong.status, 403);
    let connect = client
        .post("/accounts/connect", &[("name", "x"), ("app_key", "k~s")])
        .await;
    assert_eq!(connect.status, 403);
    assert!(admin_lines(&bench, "reload_config").is_empty());
    assert!(admin_lines(&bench, "connect_account").is_empty());

    let done = client.post("/users/reload", &[("csrf", &token)]).await;
    assert_eq!(done.status, 303);
    assert_eq!(admin_lines(&bench, "reload_config").len(), 1);

    // The sign-in form's own token: a post without the cookie's twin is refused unread.
    let mut stranger = AdminClient::new(admin.url());
    let forged = stranger
        .post(
            "/login",
            &[
                ("username", ADMIN),
                ("password", PASSWORD),
                ("csrf", "guess"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(!stranger.cookies.contains_key("dropgate_admin"));
}

#[tokio::test]
async fn every_answer_carries_a_strict_policy_and_no_secret_is_rendered() {
    let (_bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    for path in [
        "/login",
        "/activity",
        "/accounts",
        "/users",
        "/assets/style.css",
    ] {
        let answer = client.get(path).await;
        let header = |name: &str| {
            answer
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
    }
    let accounts = client.get("/accounts").await.body;
    assert!(
        !accounts.contains(demo::APP_SECRET),
        "the app secret is never shown"
    );
    assert!(!accounts.contains(demo::REFRESH_TOKEN), "no token is shown");
    for external in ["http://", "https://"] {
        let linked = accounts
            .match_indices(external)
            .map(|(at, _)| &accounts[at..(at + 60).min(accounts.len())])
            .filter(|text| !text.starts_with(admin.url()))
            .collect::<Vec<_>>();
        assert!(linked.is_empty(), "no external asset or link: {linked:?}");
    }
}

/// Posts the Connect form for `name` and follows the browser's way through the emulator's
/// authorize page (`extra` added to its query) back to the page; the answer to the return.
async fn connect(client: &mut AdminClient, name: &str, extra: &str) -> (Answer, String) {
    let page = client.get("/accounts").await;
    let started = client
        .post(
            "/accounts/connect",
            &[
                ("csrf", &page.csrf()),
                ("name", name),
                ("app_key", demo::APP_KEY),
                ("app_secret", demo::APP_SECRET),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let authorize = started.location();
    let query: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["token_access_type"], "offline");
    assert!(query["redirect_uri"].ends_with("/?command=register_dropbox_api"));
    let at_dropbox = client.get(&format!("{authorize}{extra}")).await;
    assert_eq!(at_dropbox.status, 302, "{}", at_dropbox.body);
    let back = at_dropbox.location();
    assert!(back.starts_with(&client.base), "{back}");
    (client.get(&back).await, query["state"].clone())
}

#[tokio::test]
async fn connect_stores_the_token_file_0600_and_the_account_is_healthy_at_once() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;

    let (back, _) = connect(&mut client, "partners", "").await;
    assert_eq!((back.status, back.location().as_str()), (303, "/accounts"));
    let page = client.get("/accounts").await;
    assert!(page.body.contains("Connected partners"), "{}", page.body);
    assert!(
        page.body.contains(demo::PERSONAL_EMAIL),
        "signed in as the demo person"
    );
    let row = row_of(&page.body, "partners");
    assert!(row.contains("healthy"), "{row}");

    let token_file = bench.path("accounts/partners.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&token_file).unwrap();
    assert!(text.contains("refresh_token"));
    assert!(!page.body.contains(demo::APP_SECRET));

    let lines = admin_lines(&bench, "connect_account");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (&lines[0]["result"], &lines[0]["account"]),
        (&"ok".into(), &"partners".into())
    );
    let line = serde_json::to_string(&lines[0]).unwrap();
    assert!(
        !line.contains(demo::APP_SECRET),
        "no secret in the audit log: {line}"
    );
}

#[tokio::test]
async fn an_answer_with_another_state_is_not_acted_on() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    let page = client.get("/accounts").await;
    let started = client
        .post(
            "/accounts/connect",
            &[
                ("csrf", &page.csrf()),
                ("name", "intruded"),
                ("app_key", "k~s"),
            ],
        )
        .await;
    assert_eq!(started.status, 303);
    let forged = client
        .get("/?command=register_dropbox_api&code=stolen-code&state=not-this-sessions")
        .await;
    assert_eq!(
        (forged.status, forged.location().as_str()),
        (303, "/accounts")
    );
    let page = client.get("/accounts").await;
    assert!(page.body.contains("state does not match"), "{}", page.body);
    assert!(!bench.path("accounts/intruded.token").exists());
    let refused = admin_lines(&bench, "connect_account");
    assert_eq!(refused.last().unwrap()["result"], "refused");

    // Another admin session's answer, even with the right state, is not this one's.
    let (_, state) = {
        let mut other = signed_in(&admin).await;
        let page = other.get("/accounts").await;
        let started = other
            .post(
                "/accounts/connect",
                &[
                    ("csrf", &page.csrf()),
                    ("name", "other"),
                    ("app_key", "k~s"),
                ],
            )
            .await;
        let state = url::Url::parse(&started.location())
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        (other, state)
    };
    let crossed = client
        .get(&format!(
            "/?command=register_dropbox_api&code=c&state={state}"
        ))
        .await;
    assert_eq!(crossed.status, 303);
    assert!(client
        .get("/accounts")
        .await
        .body
        .contains("state does not match"));
    assert!(!bench.path("accounts/other.token").exists());
}

#[tokio::test]
async fn a_cancelled_authorization_shows_dropboxs_reason_and_stores_nothing() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    let (back, _) = connect(&mut client, "cancelled", "&emulator_decision=deny").await;
    assert_eq!(back.status, 303);
    let page = client.get("/accounts").await;
    assert!(page.body.contains("access_denied"), "{}", page.body);
    assert!(page.body.contains("chose not to give"), "{}", page.body);
    assert!(!bench.path("accounts/cancelled.token").exists());
    assert_eq!(
        admin_lines(&bench, "connect_account")[0]["result"],
        "failed"
    );
}

#[tokio::test]
async fn dropboxs_answer_without_the_session_cookie_moves_on_once_then_asks_to_sign_in() {
    let (_bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut visitor = AdminClient::new(admin.url());
    let first = visitor
        .get("/?command=register_dropbox_api&code=c&state=s")
        .await;
    assert_eq!(first.status, 200);
    assert!(
        first.body.contains("http-equiv=\"refresh\""),
        "{}",
        first.body
    );
    assert!(first.body.contains("resume=1"));
    let second = visitor
        .get("/?command=register_dropbox_api&code=c&state=s&resume=1")
        .await;
    assert_eq!(second.status, 401);
    assert!(second.body.contains("Sign in"));
}

#[tokio::test]
async fn failed_sign_ins_ban_the_address_for_ssh_too() {
    let (bench, admin) = bench_with_admin(|config, _| {
        config.limits.max_login_failures = Some(3);
    })
    .await;
    let mut client = AdminClient::new(admin.url());
    for _ in 0..3 {
        assert_eq!(client.sign_in(ADMIN, "guess").await.status, 401);
    }
    let banned = client.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(banned.status, 403, "{}", banned.body);
    assert!(banned.body.contains("Too many failed sign-ins"));
    assert!(!client.cookies.contains_key("dropgate_admin"));

    let out = bench.sftp(&bench.user("alice"), "ls\n").await;
    assert!(
        !out.status.success(),
        "SSH from the banned address is refused too"
    );
    bench.assert_closed_without_banner().await;
}

/// The table row of `name` on the accounts page.
fn row_of<'a>(body: &'a str, name: &str) -> &'a str {
    let start = body
        .find(&format!("data-account=\"{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}: {body}"));
    let end = body[start..].find("</tr>").unwrap() + start;
    &body[start..end]
}

#[tokio::test]
async fn with_a_certificate_the_page_speaks_https_only_and_its_cookie_is_secure() {
    let ca = test_ca();
    let (bench, admin) = bench_with_admin(move |config, dir| {
        let admin = config.admin.as_mut().unwrap();
        std::fs::write(dir.join("admin.crt"), &ca.1).unwrap();
        std::fs::write(dir.join("admin.key"), &ca.2).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.0).unwrap();
        admin.tls_certificate = Some(dir.join("admin.crt"));
        admin.tls_key = Some(dir.join("admin.key"));
    })
    .await;
    assert!(
        admin.url().starts_with("https://127.0.0.1:"),
        "{}",
        admin.url()
    );
    let ca_pem = std::fs::read(bench.path("ca.pem")).unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap());
    let mut client = AdminClient::with_http(admin.url(), trusting);
    let signed_in = client.sign_in(ADMIN, PASSWORD).await;
    assert_eq!(signed_in.status, 303);
    let cookies = signed_in.set_cookies().join("\n");
    assert!(
        cookies.contains("dropgate_admin=") && cookies.contains("; Secure"),
        "{cookies}"
    );
    let page = client.get("/accounts").await;
    assert_eq!(page.status, 200);
    assert!(page
        .headers
        .get("strict-transport-security")
        .is_some_and(|v| v.to_str().unwrap().contains("max-age")));

    let plain = admin.url().replace("https://", "http://");
    let answer = reqwest::get(format!("{plain}/login")).await;
    assert!(
        answer.is_err() || !answer.unwrap().status().is_success(),
        "plain HTTP is not served on the TLS port"
    );
}

/// A test CA's certificate, and a certificate and key for 127.0.0.1 it signed (all PEM).
fn test_ca() -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "dropgate admin test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), server_cert.pem(), server_key.serialize_pem())
}

#[tokio::test]
async fn an_account_the_config_names_is_usable_as_soon_as_it_is_connected_from_the_page() {
    let (bench, admin) = bench_with_admin(|config, dir| {
        let api_url = config.accounts[0].api_url.clone();
        config
            .accounts
            .push(crate::common::config::Account::from_token_file(
                "later",
                &api_url,
                &dir.join("later.token"),
            ));
        config.user("bob").account = "later".into();
    })
    .await;
    let bob = bench.user("bob");
    std::fs::write(bench.path("hello.txt"), b"hello from bob").unwrap();
    let before = bench.sftp(&bob, "put hello.txt\n").await;
    assert!(
        !before.status.success(),
        "no token yet: bob's session is refused"
    );
    assert!(stderr(&before).contains("later"), "{}", stderr(&before));

    let mut client = signed_in(&admin).await;
    let page = client.get("/accounts").await;
    assert!(row_of(&page.body, "later").contains("not connected"));
    let (back, _) = connect(&mut client, "later", "").await;
    assert_eq!(back.status, 303);
    let page = client.get("/accounts").await;
    assert!(
        row_of(&page.body, "later").contains("healthy"),
        "{}",
        page.body
    );
    let mode = std::fs::metadata(bench.path("later.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the token went where the config names it"
    );

    bench.sftp_ok(&bob, "put hello.txt\n").await;
    assert_eq!(
        bench.dropbox_download("/bob/hello.txt").await,
        b"hello from bob"
    );
}

#[tokio::test]
async fn a_reconnect_that_cannot_sign_in_leaves_the_old_token_and_the_account_as_they_were() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    connect(&mut client, "partners", "").await;
    let token_file = bench.path("accounts/partners.token");
    let before = std::fs::read(&token_file).unwrap();

    // Dropbox authorizes the team this time: a team token, but the account names no member.
    let extra = format!("&emulator_as={}", demo::TEAM_ID);
    let (back, _) = connect(&mut client, "partners", &extra).await;
    assert_eq!(back.status, 303);
    let page = client.get("/accounts").await;
    assert!(
        page.body.contains("partners was not connected"),
        "{}",
        page.body
    );
    assert!(page.body.contains("team_member_email"), "{}", page.body);
    assert_eq!(
        std::fs::read(&token_file).unwrap(),
        before,
        "the old token stays"
    );
    assert_eq!(staged_files(&bench), Vec::<String>::new());
    let lines = admin_lines(&bench, "connect_account");
    assert_eq!(lines.last().unwrap()["result"], "failed");

    // The account runs on as it was, and stays healthy: the new credentials failed, not it.
    let row = row_of(&page.body, "partners");
    assert!(
        row.contains("healthy") && row.contains("demo@example.com"),
        "{row}"
    );
}

#[tokio::test]
async fn an_account_whose_token_was_revoked_is_reconnected_with_the_app_of_its_token_file() {
    let (bench, admin) = bench_with_admin(|config, dir| {
        let api_url = config.accounts[0].api_url.clone();
        let token_file = dir.join("revoked.token");
        crate::common::write_token_file(&token_file, "revoked", "a-refresh-token-dropbox-revoked");
        config
            .accounts
            .push(crate::common::config::Account::from_token_file(
                "revoked",
                &api_url,
                &token_file,
            ));
    })
    .await;
    let mut client = signed_in(&admin).await;
    let page = client.get("/accounts").await;
    let row = row_of(&page.body, "revoked");
    assert!(
        row.contains("not connected") && row.contains("Re-connect"),
        "{row}"
    );

    // Re-connect: only the name; the app key and secret come from the account's token file.
    let started = client
        .post(
            "/accounts/connect",
            &[("csrf", &page.csrf()), ("name", "revoked")],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let authorize = started.location();
    assert!(
        authorize.contains(&format!("client_id={}", demo::APP_KEY)),
        "{authorize}"
    );
    let back = client.get(&authorize).await.location();
    assert_eq!(client.get(&back).await.location(), "/accounts");
    let page = client.get("/accounts").await;
    assert!(
        row_of(&page.body, "revoked").contains("healthy"),
        "{}",
        page.body
    );
    let stored = std::fs::read_to_string(bench.path("revoked.token")).unwrap();
    assert!(
        !stored.contains("a-refresh-token-dropbox-revoked"),
        "a new token was stored"
    );
}

/// Token files staged for a connect and left behind in `accounts/` (there should be none).
fn staged_files(bench: &Bench) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(bench.path("accounts")) else {
        return Vec::new(); // nothing was ever written there
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".token.new"))
        .collect()
}

#[tokio::test]
async fn two_admins_connecting_one_account_at_once_both_succeed_and_leave_one_token() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let (mut first, mut second) = (signed_in(&admin).await, signed_in(&admin).await);
    let (one, two) = tokio::join!(
        connect(&mut first, "shared", ""),
        connect(&mut second, "shared", "")
    );
    for back in [one.0, two.0] {
        assert_eq!((back.status, back.location().as_str()), (303, "/accounts"));
    }
    for client in [&mut first, &mut second] {
        let page = client.get("/accounts").await;
        assert!(page.body.contains("Connected shared"), "{}", page.body);
        assert!(row_of(&page.body, "shared").contains("healthy"));
    }
    let lines = admin_lines(&bench, "connect_account");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|line| line["result"] == "ok"), "{lines:?}");
    assert_eq!(staged_files(&bench), Vec::<String>::new());
    let mode = std::fs::metadata(bench.path("accounts/shared.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_token_exchange_that_fails_or_whose_answer_is_lost_connects_nothing() {
    let (bench, admin) = bench_with_admin(|_, _| {}).await;
    let mut client = signed_in(&admin).await;
    let faults = [
        (
            "busy",
            serde_json::json!({"kind": "error", "route": "oauth2/token", "status": 503}),
        ),
        (
            "throttled",
            serde_json::json!({"kind": "error", "route": "oauth2/token", "status": 429, "retry_after": 1}),
        ),
        // Dropbox used the code and issued a token, but the answer never came back.
        (
            "lost",
            serde_json::json!({"kind": "drop_after", "route": "oauth2/token"}),
        ),
    ];
    for (name, fault) in faults {
        bench.set_emulator_faults(serde_json::json!([fault])).await;
        let (back, _) = connect(&mut client, name, "").await;
        bench.clear_emulator_faults().await;
        assert_eq!((back.status, back.location().as_str()), (303, "/accounts"));
        let page = client.get("/accounts").await;
        assert!(
            page.body.contains(&format!("{name} was not connected")),
            "{name}: {}",
            page.body
        );
        assert!(
            !bench.path(&format!("accounts/{name}.token")).exists(),
            "{name}"
        );
        assert!(
            !page.body.contains(&format!("data-account=\"{name}\"")),
            "{name}"
        );
        assert_eq!(
            admin_lines(&bench, "connect_account").last().unwrap()["result"],
            "failed"
        );
    }
    assert_eq!(staged_files(&bench), Vec::<String>::new());
}
