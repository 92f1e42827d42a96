//! The browser the web pages' tests use (tests/common/browser.rs), proven on pages that exist
//! without the admin page: the emulator's no-redirect OAuth page, and small pages served by the
//! test itself that show what a browser does and an HTTP client does not (typing into a form and
//! submitting it, a script that rewrites the page later, a phone-sized window).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use dropbox_emulator::demo_credentials as demo;
use futures::FutureExt;
use tokio::sync::mpsc;

use crate::common::browser::{required_program, PNG_SIGNATURE, WINDOW};
use crate::common::{poll_until, start_emulator, Browser};

/// The width and height a PNG's header says it has.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(&PNG_SIGNATURE), "not a PNG");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_code_read_off_the_emulators_authorize_page_is_one_dropbox_takes() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(dir.path()).await;
    let browser = Browser::start().await;
    let authorize = format!("{}/oauth2/authorize", emulator.base_url());

    browser
        .goto(&format!(
            "{authorize}?client_id={}&response_type=code&token_access_type=offline",
            demo::APP_KEY
        ))
        .await;
    let code = browser.text_of("pre#code").await;
    assert!(!code.trim().is_empty(), "the page shows no code");
    let screenshot = browser
        .screenshot("browser_harness-emulator-authorize")
        .await;

    // What the browser read is the code itself: the token endpoint exchanges it once.
    let token = reqwest::Client::new()
        .post(format!("{}/oauth2/token", emulator.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.trim()),
            ("client_id", demo::APP_KEY),
            ("client_secret", demo::APP_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let status = token.status();
    let answer: serde_json::Value = token.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer["refresh_token"].is_string(), "{answer}");

    // The screenshot is a PNG of the page as the window shows it (as wide as the window; less
    // high, headless Chromium keeps room for its toolbars), in the target directory.
    let png = std::fs::read(&screenshot).unwrap();
    let (width, height) = png_size(&png);
    assert_eq!(width, WINDOW.0);
    assert!(height > WINDOW.1 / 2 && height <= WINDOW.1, "{height}");
    let folder = screenshot.parent().unwrap();
    assert!(folder.ends_with("screenshots"), "{}", screenshot.display());
    let test_binary = std::env::current_exe().unwrap();
    assert!(
        test_binary.starts_with(folder.parent().unwrap()),
        "{} is not in the target directory of {}",
        screenshot.display(),
        test_binary.display()
    );

    // A refusal is a page too, and the browser reads it.
    browser
        .goto(&format!(
            "{authorize}?client_id=no-such-app&response_type=code"
        ))
        .await;
    assert_eq!(browser.text_of("body").await, "Invalid client_id.");
    browser.close().await;
}

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><meta name="viewport" content="width=device-width"></head><body>
<form method="post" action="/submit">
  <input type="hidden" name="csrf" value="token-from-the-page">
  <label>Account <input id="account" name="account" value="typed over"></label>
  <label>Password <input id="password" name="password" type="password"></label>
  <button id="send" type="submit">Connect</button>
</form>
<p id="width"></p>
<script>document.getElementById('width').textContent = 'width ' + window.innerWidth;</script>
</body></html>"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_form_filled_in_the_browser_reaches_the_server_with_what_was_typed() {
    let (received, mut submissions) = mpsc::unbounded_channel::<Vec<(String, String)>>();
    let app = Router::new()
        .route("/", get(|| async { Html(FORM_PAGE) }))
        .route(
            "/submit",
            post(
                move |Form(fields): Form<Vec<(String, String)>>| async move {
                    received.send(fields).unwrap();
                    Html("<p id=\"result\">stored</p>")
                },
            ),
        );
    let base = serve(app).await;
    let browser = Browser::start().await;

    // A phone-sized window: the page's own script sees the narrow viewport.
    browser.set_window(390, 844).await;
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for_text("#width", "width 390", Duration::from_secs(5))
        .await;
    let phone = std::fs::read(browser.screenshot("browser_harness-form-phone").await).unwrap();
    assert_eq!(png_size(&phone).0, 390);

    browser.fill("#account", "Zoë & Partners / 2").await;
    browser.fill("#password", "p@ss w0rd=&").await;
    browser.click("#send").await;
    assert_eq!(browser.text_of("#result").await, "stored");
    assert_eq!(browser.current_url().await.path(), "/submit");

    // The server got each field once, as typed (the prefilled value replaced, the hidden field
    // sent along), in one submission.
    let fields = submissions.try_recv().expect("the server received no form");
    let expected = [
        ("csrf", "token-from-the-page"),
        ("account", "Zoë & Partners / 2"),
        ("password", "p@ss w0rd=&"),
    ]
    .map(|(name, value)| (name.to_string(), value.to_string()));
    assert_eq!(fields, expected);
    assert!(submissions.try_recv().is_err(), "the form was sent twice");
    browser.close().await;
}

const LATER_PAGE: &str = r#"<!doctype html><html><body>
<p id="status">waiting</p>
<script>
setTimeout(() => { document.getElementById('status').textContent = 'connected: alice'; }, 400);
</script>
</body></html>"#;

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_text_sees_what_a_script_writes_later_and_names_what_it_saw_when_it_never_comes(
) {
    let base = serve(Router::new().route("/", get(|| async { Html(LATER_PAGE) }))).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.text_of("#status").await, "waiting");

    let seen = browser
        .wait_for_text("#status", "alice", Duration::from_secs(5))
        .await;
    assert_eq!(seen, "connected: alice");

    // A text that never comes fails the wait, saying what the element showed instead.
    let never =
        AssertUnwindSafe(browser.wait_for_text("#status", "bob", Duration::from_millis(300)))
            .catch_unwind()
            .await;
    let message = panic_message(never.expect_err("waiting for text that never comes succeeded"));
    assert!(
        message.contains("`#status` did not show \"bob\"") && message.contains("connected: alice"),
        "{message}"
    );
    browser.close().await;
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// The live processes (not zombies) in process group `group`, from /proc.
fn processes_in_group(group: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after its ')'.
        let Some((name, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string() {
            found.push(
                name.split_once('(')
                    .map_or(name, |(_, comm)| comm)
                    .to_string(),
            );
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_closed_or_dropped_leaves_no_chromedriver_or_chromium_behind() {
    let closed = Browser::start().await;
    let dropped = Browser::start().await;
    let groups = [closed.process_group(), dropped.process_group()];
    for group in groups {
        let running = processes_in_group(group);
        assert!(
            running.iter().any(|name| name == "chromedriver")
                && running
                    .iter()
                    .any(|name| name.starts_with("chrom") && name != "chromedriver"),
            "{running:?}"
        );
    }

    closed.close().await;
    drop(dropped);
    for group in groups {
        let gone = poll_until(Duration::from_secs(5), || async {
            processes_in_group(group).is_empty()
        })
        .await;
        assert!(gone, "still running: {:?}", processes_in_group(group));
    }
}

#[test]
fn a_missing_chromedriver_fails_naming_the_package_and_ci_run() {
    let empty = tempfile::tempdir().unwrap();
    let missing = std::panic::catch_unwind(|| {
        required_program("chromedriver", "chromium-driver", empty.path().as_os_str())
    });
    let message = panic_message(missing.expect_err("found chromedriver in an empty folder"));
    assert!(
        message.contains("`chromedriver`")
            && message.contains("chromium-driver")
            && message.contains(".ci/run"),
        "{message}"
    );
}
