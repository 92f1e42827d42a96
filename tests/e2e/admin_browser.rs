//! The admin web page in a real browser (headless Chromium through chromedriver): what an
//! operator does and sees, from signing in to watching a 200 MiB upload arrive. Screenshots of
//! each page go to `target/screenshots/admin-*.png` (the README's come from here).

use std::time::Duration;

use dropbox_emulator::demo_credentials as demo;

use crate::common::browser::Browser;
use crate::common::config::Admin;
use crate::common::{stderr, Bench};

const ADMIN: &str = "ops";
const PASSWORD: &str = "an admin's long passphrase";

/// The upload watched on the activity page: large enough to be seen while it runs.
const BIG: usize = 200 * 1024 * 1024;
/// `sftp -l` in Kbit/s: about 16 MB/s, so the 200 MiB take some 13 s.
const LIMIT_KBIT: &str = "130000";

async fn bench_with_admin() -> (Bench, dropgate::admin::AdminServer) {
    let bench = Bench::audited(|config, dir| {
        let api_url = config.accounts[0].api_url.clone();
        config.admin = Some(Admin::on_loopback(dir, &api_url, ADMIN, PASSWORD));
    })
    .await;
    let admin = bench.start_admin().await;
    (bench, admin)
}

async fn sign_in(browser: &Browser, base: &str, password: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.fill("#username", ADMIN).await;
    browser.fill("#password", password).await;
    browser.click("form.login button[type=submit]").await;
}

#[tokio::test]
async fn an_operator_signs_in_connects_an_account_and_watches_an_upload() {
    let (bench, admin) = bench_with_admin().await;
    let base = admin.url().to_string();
    let browser = Browser::start().await;

    // Signed out, every page leads to the sign-in form; a wrong password stays there.
    browser.goto(&format!("{base}/activity")).await;
    assert_eq!(browser.current_url().await.path(), "/login");
    browser.screenshot("admin-login").await;
    sign_in(&browser, &base, "not the password").await;
    browser
        .wait_for_text(
            ".flash",
            "Wrong user name or password",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(browser.current_url().await.path(), "/login");

    sign_in(&browser, &base, PASSWORD).await;
    wait_for_path(&browser, "/activity").await;

    // Connect Dropbox: the browser goes to the emulator's authorize page, which approves and
    // sends it back to ?command=register_dropbox_api; the account is healthy at once.
    browser.goto(&format!("{base}/accounts")).await;
    browser.fill("#name", "partners").await;
    browser.fill("#app_key", demo::APP_KEY).await;
    browser.fill("#app_secret", demo::APP_SECRET).await;
    browser.click("#connect button[type=submit]").await;
    let connected = browser
        .wait_for_text(".flash", "Connected partners", Duration::from_secs(10))
        .await;
    assert!(connected.contains(demo::PERSONAL_EMAIL), "{connected}");
    assert_eq!(browser.current_url().await.path(), "/accounts");
    let row = browser.text_of("tr[data-account=\"partners\"]").await;
    assert!(row.contains("healthy"), "{row}");
    assert!(bench.path("accounts/partners.token").exists());
    let page = browser.client().source().await.unwrap();
    assert!(
        !page.contains(demo::APP_SECRET),
        "the secret is never shown"
    );
    browser.screenshot("admin-accounts").await;

    // A form whose CSRF token was taken out is refused, and nothing is connected.
    browser
        .client()
        .execute(
            "document.querySelector('#connect input[name=csrf]').remove();",
            vec![],
        )
        .await
        .unwrap();
    browser.fill("#name", "forged").await;
    browser
        .fill(
            "#app_key",
            &format!("{}~{}", demo::APP_KEY, demo::APP_SECRET),
        )
        .await;
    browser.click("#connect button[type=submit]").await;
    browser
        .wait_for_text("main", "security token", Duration::from_secs(10))
        .await;
    assert!(!bench.path("accounts/forged.token").exists());

    // A 200 MiB upload, rate-limited so that it is still arriving while the page is looked at.
    let local = bench.path("big.bin");
    std::fs::write(&local, crate::common::random_bytes(BIG)).unwrap();
    let upload = bench
        .sftp_command(
            &bench.user("alice"),
            "put big.bin big.bin\n",
            &["-l", LIMIT_KBIT],
        )
        .spawn()
        .unwrap();
    browser.goto(&format!("{base}/activity")).await;
    let receiving = browser
        .wait_for_text("#transfers", "receiving", Duration::from_secs(30))
        .await;
    assert!(receiving.contains("/big.bin"), "{receiving}");
    assert!(receiving.contains("alice"), "{receiving}");
    let connections = live_text(&browser, "#connections").await;
    assert!(connections.contains("OpenSSH"), "{connections}");
    // The page updates itself: the bytes so far change without a reload.
    let first = live_text(&browser, "#transfers .bytes").await;
    let grown = wait_for_change(&browser, "#transfers .bytes", &first).await;
    assert_ne!(first, grown);
    browser.screenshot("admin-activity").await;
    browser.set_window(390, 844).await;
    browser.screenshot("admin-activity-phone").await;
    let (width, height) = crate::common::browser::WINDOW;
    browser.set_window(width, height).await;

    let out = crate::common::wait_for_client(upload, "the 200 MiB upload").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let events = browser
        .wait_for_text("#events", "/big.bin", Duration::from_secs(30))
        .await;
    let line = events
        .lines()
        .find(|line| line.contains("/big.bin"))
        .unwrap();
    assert!(
        line.contains("operation upload") && line.contains("ok"),
        "{line}"
    );
    browser
        .wait_for_text(
            "#transfers",
            "No transfer in progress",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        bench.dropbox_metadata("/alice/big.bin").await.unwrap()["size"],
        BIG as u64
    );

    browser.goto(&format!("{base}/users")).await;
    let alice = browser.text_of("tr[data-user=\"alice\"]").await;
    assert!(alice.contains("ago"), "alice's last login: {alice}");
    browser.screenshot("admin-users").await;
    browser.close().await;
}

/// Waits until the browser shows the page at `path` (a form's post may still be answered when
/// the click returns: the password check takes a moment).
async fn wait_for_path(browser: &Browser, path: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while browser.current_url().await.path() != path {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the browser stayed at {} instead of {path}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of an element of the activity page's live part, which its script replaces every
/// second: an element found just before it was replaced is looked for again.
async fn live_text(browser: &Browser, css: &str) -> String {
    for _ in 0..20 {
        if let Ok(element) = browser.client().find(fantoccini::Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no stable `{css}` on the activity page")
}

/// Waits until the element's text is no longer `before`; its new text.
async fn wait_for_change(browser: &Browser, css: &str, before: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = live_text(browser, css).await;
        if now != before {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} stayed {before:?} for 10 s: the page did not update itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
