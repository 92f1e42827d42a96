//! A real browser for the tests of the web pages: headless Chromium driven through WebDriver.
//!
//! What an admin sees is what a browser makes of the page (its forms, redirects, cookies and the
//! scripts that update it), so these tests drive the real thing: Debian's `chromium` through its
//! `chromedriver`, spoken to by fantoccini. Each [`Browser`] has a chromedriver of its own on a
//! free port and a fresh profile, so tests run in parallel without sharing cookies. chromedriver
//! is started in a process group of its own, and the browser processes it starts stay in that
//! group: dropping a `Browser` (a failed test included) kills the whole group, so no Chromium
//! outlives its test.
//!
//! The helpers panic with what they were looking for and where, like the rest of tests/common;
//! [`Browser::client`] gives the full WebDriver API for anything else.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

/// The laptop-sized window every browser starts with. Its page area, and so a screenshot, is as
/// wide and somewhat less high (headless Chromium keeps room for its toolbars: 1280 × 761).
pub const WINDOW: (u32, u32) = (1280, 900);

/// How long a helper waits for the element it names to appear (pages may still be loading or
/// writing it with a script).
const FIND_WAIT: Duration = Duration::from_secs(5);

/// How long chromedriver gets to answer /status after it is started.
const DRIVER_START: Duration = Duration::from_secs(15);

/// The PNG file signature, for tests that check a screenshot is one.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Headless Chromium behind a chromedriver of its own.
pub struct Browser {
    // Declared first, dropped first: the session goes before its driver is killed.
    client: Option<Client>,
    driver: Driver,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a session of headless Chromium in a fresh profile, with a
    /// [`WINDOW`]-sized window. Panics, naming the Debian packages, when either is not installed.
    pub async fn start() -> Browser {
        let search_path = std::env::var_os("PATH").unwrap_or_default();
        let chromedriver = required_program("chromedriver", "chromium-driver", &search_path);
        let chromium = required_program("chromium", "chromium", &search_path);
        let profile = tempfile::tempdir().unwrap();
        let driver = Driver::start(&chromedriver, profile.path()).await;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&chromium, &profile.path().join("chromium")))
            .connect(&driver.url())
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "chromedriver did not open a Chromium session: {error}\n{}",
                    driver.log()
                )
            });
        // A page that never finishes loading fails its test instead of hanging it.
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(20)),
                Some(Duration::ZERO),
            ))
            .await
            .unwrap();
        Browser {
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver session, for what the helpers below do not cover (scripts, cookies, keys).
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// The process group of chromedriver and the browser it started.
    pub fn process_group(&self) -> u32 {
        self.driver.child.id()
    }

    /// Loads `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("loading {url}: {error}"));
    }

    /// The URL the browser shows now (after any redirects).
    pub async fn current_url(&self) -> url::Url {
        self.client().current_url().await.unwrap()
    }

    /// Replaces the value of the input `css` selects with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.element(css).await;
        field.clear().await.unwrap_or_else(|e| failed(css, e));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| failed(css, e));
    }

    /// Clicks the element `css` selects; a click that submits a form returns once the next page
    /// has loaded.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        element.click().await.unwrap_or_else(|e| failed(css, e));
    }

    /// The text the element `css` selects shows (as rendered: hidden parts left out).
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.element(css).await;
        element.text().await.unwrap_or_else(|e| failed(css, e))
    }

    /// Waits until the element `css` selects shows `needle` (for pages that update themselves),
    /// and returns its whole text. Panics after `timeout` with what it showed last.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Absent, or replaced between finding and reading it: not there yet.
            let shown = match self.client().find(Locator::Css(css)).await {
                Ok(element) => element.text().await.ok(),
                Err(_) => None,
            };
            if let Some(text) = shown.as_deref().filter(|text| text.contains(needle)) {
                return text.to_string();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "`{css}` did not show {needle:?} within {timeout:?} on {}; it showed {}",
                    self.current_url().await,
                    shown.map_or("nothing (no such element)".into(), |text| format!(
                        "{text:?}"
                    ))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves what the window shows as `target/screenshots/<name>.png`, and returns that path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "a screenshot's name is a file name: {name:?}"
        );
        let png = self.client().screenshot().await.unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Resizes the window, e.g. to a phone's 390 × 844 to see the narrow layout.
    pub async fn set_window(&self, width: u32, height: u32) {
        self.client()
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|error| panic!("resizing the window to {width}x{height}: {error}"));
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            // The driver is killed next whatever the answer; a failed quit leaves nothing behind.
            let _ = client.close().await;
        }
    }

    /// The element `css` selects, waiting up to [`FIND_WAIT`] for it to appear.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client()
            .wait()
            .at_most(FIND_WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => panic!(
                "no element `{css}` on {} within {FIND_WAIT:?}: {error}",
                self.current_url().await
            ),
        }
    }
}

fn failed(css: &str, error: fantoccini::error::CmdError) -> ! {
    panic!("`{css}`: {error}")
}

/// What chromedriver is asked for: headless Chromium as root (no sandbox), not relying on a
/// small /dev/shm (containers), in a window of [`WINDOW`] size, with its own profile.
fn capabilities(chromium: &Path, profile: &Path) -> fantoccini::wd::Capabilities {
    let (width, height) = WINDOW;
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = fantoccini::wd::Capabilities::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities
}

/// `program` from `search_path` (a PATH value); panics naming the Debian package that has it.
/// Browser tests are not skipped when it is missing: a test that did not run must not pass.
pub fn required_program(program: &str, debian_package: &str, search_path: &OsStr) -> PathBuf {
    std::env::split_paths(search_path)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests need `{program}`, which is not on PATH: install Debian's \
                 `{debian_package}` package (`apt-get install chromium chromium-driver`; \
                 .ci/run installs them when missing)"
            )
        })
}

/// Where screenshots go: `screenshots/` in the target directory of this build.
pub fn screenshots_dir() -> PathBuf {
    target_dir().join("screenshots")
}

/// `CARGO_TARGET_DIR` when set, else the directory the test binary is in
/// (`<target>/<profile>/deps/<binary>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    }
    let binary = std::env::current_exe().unwrap();
    binary
        .ancestors()
        .find(|dir| dir.file_name() == Some(OsStr::new("deps")))
        .and_then(|deps| deps.parent()?.parent())
        .unwrap_or_else(|| panic!("{} is not in a cargo target directory", binary.display()))
        .to_path_buf()
}

/// chromedriver on a free port, in a process group of its own that dies with it.
struct Driver {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

impl Driver {
    /// Starts chromedriver and waits until it answers /status. The free port can be taken by
    /// someone else before chromedriver binds it, so a driver that exits at once is started
    /// again on another port.
    async fn start(chromedriver: &Path, dir: &Path) -> Driver {
        let log_path = dir.join("chromedriver.log");
        for _attempt in 0..3 {
            let port = super::free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|error| panic!("starting {}: {error}", chromedriver.display()));
            let mut driver = Driver {
                child,
                port,
                log_path: log_path.clone(),
            };
            if driver.wait_until_ready().await {
                return driver;
            }
        }
        panic!(
            "chromedriver did not start\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// True once /status says ready; false if chromedriver exited first.
    async fn wait_until_ready(&mut self) -> bool {
        let status = format!("{}/status", self.url());
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + DRIVER_START;
        while tokio::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(response) = http.get(&status).send().await {
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                if answer["value"]["ready"] == true {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "chromedriver did not answer {status} within {DRIVER_START:?}\n{}",
            self.log()
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        format!("chromedriver's log:\n{log}")
    }
}

impl Drop for Driver {
    /// Kills chromedriver and every browser process it started (they share its group).
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal, to the group this Driver created.
        unsafe { libc::killpg(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
