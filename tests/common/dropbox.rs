//! The emulator as the source of truth: what Dropbox holds is read back through the emulator's
//! own API with its static tokens, never through the gateway under test; its `/__emulator`
//! hooks count requests and inject faults.
//!
//! Dropbox's content_hash and header JSON are computed here independently of dropgate's own
//! implementations, which are under test elsewhere.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use dropbox_emulator::{demo_credentials, Emulator, EmulatorConfig, Realism};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// An emulator of its own, storing under `dir/dropbox`, on a free port, with `page_size`
/// entries per listing page.
pub async fn start_emulator_paged(dir: &Path, page_size: usize) -> Emulator {
    start_emulator_at(dir, "127.0.0.1:0".parse().unwrap(), page_size).await
}

/// An emulator storing under `dir/dropbox`, listening on `listen` (to restart one in place).
pub async fn start_emulator_at(dir: &Path, listen: SocketAddr, page_size: usize) -> Emulator {
    Emulator::start(EmulatorConfig {
        root: dir.join("dropbox"),
        listen,
        page_size,
        realism: suite_realism(),
        distance: Default::default(),
    })
    .await
    .unwrap()
}

/// The models of real Dropbox behaviour every emulator of this run starts with: none, or with
/// `DROPGATE_TEST_PROFILE=realistic` the emulator's realistic profile (rate limits, the
/// namespace write lock, lag, name rules, session expiry), so that a suite can be run against
/// a Dropbox as unkind as the real one (`.ci/run` does this for the data-path tests).
pub fn suite_realism() -> Realism {
    match std::env::var("DROPGATE_TEST_PROFILE").as_deref() {
        Err(_) | Ok("") | Ok("plain") => Realism::default(),
        Ok("realistic") => Realism::realistic(),
        Ok(other) => panic!("DROPGATE_TEST_PROFILE={other}: expected plain or realistic"),
    }
}

/// An emulator of its own, storing under `dir/dropbox`, on a free port.
pub async fn start_emulator(dir: &Path) -> Emulator {
    start_emulator_paged(dir, 500).await
}

/// Sends the request `make` builds as a patient Dropbox client would, and returns the status
/// and body: a 429 is sent again after its Retry-After, a `too_many_write_operations` after a
/// short wait, since the realistic profile's rate limit and write lock refuse the tests' own
/// calls too (they did nothing, so sending them again is safe).
async fn patiently(make: impl Fn() -> reqwest::RequestBuilder) -> (u16, bytes::Bytes) {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let response = make().send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let body = response.bytes().await.unwrap();
        let busy = String::from_utf8_lossy(&body).contains("too_many_write_operations");
        let wait = match status {
            429 => Duration::from_secs(retry_after.unwrap_or(1)),
            409 if busy => Duration::from_millis(100),
            _ => return (status, body),
        };
        assert!(Instant::now() < give_up, "Dropbox refused for two minutes");
        tokio::time::sleep(wait).await;
    }
}

/// A client of one emulator's API and hooks.
#[derive(Clone)]
pub struct DropboxView {
    base_url: String,
    http: reqwest::Client,
}

impl DropboxView {
    pub fn of(emulator: &Emulator) -> DropboxView {
        DropboxView {
            base_url: emulator.base_url(),
            http: reqwest::Client::new(),
        }
    }

    async fn rpc(&self, route: &str, arg: Value) -> (u16, Value) {
        let url = format!("{}/2/{route}", self.base_url);
        let (status, body) = patiently(|| {
            self.http
                .post(&url)
                .bearer_auth(demo_credentials::ACCESS_TOKEN)
                .json(&arg)
        })
        .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// files/get_metadata, or None if the path does not exist. Under the suite's lag model a
    /// path written just now may not be found yet, so a `not_found` is believed only once the
    /// lag is over, as a careful Dropbox client does.
    pub async fn metadata(&self, path: &str) -> Option<Value> {
        let lag = Duration::from_millis(suite_realism().lag_ms.unwrap_or(0));
        let believed_after = Instant::now() + lag;
        loop {
            let (status, body) = self
                .rpc("files/get_metadata", json!({ "path": path }))
                .await;
            match status {
                200 => return Some(body),
                409 if Instant::now() >= believed_after => return None,
                409 => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("get_metadata {path}: HTTP {other}: {body}"),
            }
        }
    }

    /// The bytes stored at `path`.
    pub async fn download(&self, path: &str) -> Vec<u8> {
        let arg = serde_json::to_string(&json!({ "path": path })).unwrap();
        let url = format!("{}/2/files/download", self.base_url);
        let (status, body) = patiently(|| {
            self.http
                .post(&url)
                .bearer_auth(demo_credentials::ACCESS_TOKEN)
                .header("Dropbox-API-Arg", ascii_json(&arg))
        })
        .await;
        assert_eq!(status, 200, "download {path}");
        body.to_vec()
    }

    /// Stores a file directly (test setup that bypasses the gateway).
    pub async fn upload(&self, path: &str, data: Vec<u8>) {
        let arg = serde_json::to_string(&json!({ "path": path, "mode": "overwrite" })).unwrap();
        let url = format!("{}/2/files/upload", self.base_url);
        let (status, body) = patiently(|| {
            self.http
                .post(&url)
                .bearer_auth(demo_credentials::ACCESS_TOKEN)
                .header("Dropbox-API-Arg", ascii_json(&arg))
                .header("Content-Type", "application/octet-stream")
                .body(data.clone())
        })
        .await;
        assert_eq!(
            status,
            200,
            "upload {path}: {}",
            String::from_utf8_lossy(&body)
        );
        // A test's setup means "this file is in Dropbox": under the suite's lag model that
        // holds once it can be found by path.
        if suite_realism().lag_ms.is_some() {
            self.metadata(path).await;
        }
    }

    /// Names in a folder, following every page.
    pub async fn list(&self, path: &str) -> Vec<String> {
        let (status, mut page) = self
            .rpc(
                "files/list_folder",
                json!({ "path": path, "recursive": false }),
            )
            .await;
        assert_eq!(status, 200, "list_folder {path}: {page}");
        let mut names = Vec::new();
        loop {
            for entry in page["entries"].as_array().unwrap() {
                names.push(entry["name"].as_str().unwrap().to_string());
            }
            if page["has_more"] != json!(true) {
                return names;
            }
            let cursor = page["cursor"].clone();
            page = self
                .rpc("files/list_folder/continue", json!({ "cursor": cursor }))
                .await
                .1;
        }
    }

    /// Request counts per route since the emulator started (or its stats were reset).
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/__emulator/stats", self.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `DELETE /__emulator/stats`: request counts start again from zero.
    pub async fn reset_stats(&self) {
        let response = self
            .http
            .delete(format!("{}/__emulator/stats", self.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "resetting the emulator's stats");
    }

    /// `POST /__emulator/faults` with these rules (replacing any earlier ones).
    pub async fn set_faults(&self, rules: Value) {
        let response = self
            .http
            .post(format!("{}/__emulator/faults", self.base_url))
            .json(&json!({ "rules": rules }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "setting emulator faults: {text}");
    }

    /// `DELETE /__emulator/faults`.
    pub async fn clear_faults(&self) {
        let response = self
            .http
            .delete(format!("{}/__emulator/faults", self.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "clearing emulator faults");
    }

    /// `POST /__emulator/{hook}`, a hook without arguments (e.g. `expire_tokens`).
    pub async fn hook(&self, hook: &str) {
        let response = self
            .http
            .post(format!("{}/__emulator/{hook}", self.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "POST /__emulator/{hook}");
    }

    /// `PUT /__emulator/realism`: these models of real Dropbox behaviour are on, all others off.
    pub async fn set_realism(&self, realism: Value) {
        let response = self
            .http
            .put(format!("{}/__emulator/realism", self.base_url))
            .json(&realism)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "setting the emulator's realism: {text}");
    }
}

/// A fault rule for [`DropboxView::set_faults`]: every `files/upload` fails as for a full
/// Dropbox (UploadError.path: UploadWriteFailed), so a commit fails after the client sent it all.
pub fn insufficient_space_fault() -> Value {
    json!([{
        "kind": "error", "route": "files/upload", "status": 409,
        "body": {
            "error_summary": "path/insufficient_space/..",
            "error": {
                ".tag": "path",
                "reason": { ".tag": "insufficient_space" },
                "upload_session_id": "pid_upload_session:emulator-fault"
            }
        }
    }])
}

/// Upload-related request counts, read from `GET /__emulator/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRequests {
    /// `files/upload`: single-request uploads.
    pub upload: u64,
    pub session_start: u64,
    pub session_append: u64,
    pub session_finish: u64,
}

impl UploadRequests {
    pub fn from_stats(stats: &Value) -> UploadRequests {
        UploadRequests {
            upload: request_count(stats, "files/upload"),
            session_start: request_count(stats, "files/upload_session/start"),
            session_append: request_count(stats, "files/upload_session/append_v2")
                + request_count(stats, "files/upload_session/append"),
            session_finish: request_count(stats, "files/upload_session/finish"),
        }
    }

    /// Requests that could have stored a file: files/upload and upload_session/finish.
    pub fn commits(&self) -> u64 {
        self.upload + self.session_finish
    }

    /// Every upload-session request (start, append, finish).
    pub fn session_requests(&self) -> u64 {
        self.session_start + self.session_append + self.session_finish
    }
}

/// How many requests of `route` (e.g. `files/upload`) a stats answer counts.
pub fn request_count(stats: &Value, route: &str) -> u64 {
    stats["requests"][route].as_u64().unwrap_or(0)
}

/// Requests over every route in emulator stats.
pub fn total_requests(stats: &Value) -> u64 {
    stats["requests"]
        .as_object()
        .map(|routes| routes.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// JSON for an HTTP header: every non-ASCII character as \uXXXX (UTF-16, surrogate pairs).
pub fn ascii_json(json: &str) -> String {
    let mut out = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Dropbox's content_hash: SHA-256 over the SHA-256 of each 4 MiB block.
pub fn content_hash(data: &[u8]) -> String {
    let mut overall = Sha256::new();
    for block in data.chunks(4 * 1024 * 1024) {
        overall.update(Sha256::digest(block));
    }
    hex::encode(overall.finalize())
}

/// Writes `len` random bytes to `path` without holding them all in memory; returns their
/// Dropbox content_hash.
pub fn write_random_file(path: &Path, len: u64) -> String {
    use rand::RngCore;
    use std::io::Write;
    const BLOCK: u64 = 4 * 1024 * 1024;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut overall = Sha256::new();
    let mut block = vec![0u8; BLOCK as usize];
    let mut written = 0;
    while written < len {
        let n = BLOCK.min(len - written) as usize;
        rand::thread_rng().fill_bytes(&mut block[..n]);
        overall.update(Sha256::digest(&block[..n]));
        file.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
    hex::encode(overall.finalize())
}

/// A token file for the emulator's personal account, as `dropgate auth` (or the page) writes it.
pub fn write_token_file(path: &std::path::Path, account: &str, refresh_token: &str) {
    dropgate::backend::dropbox::token_file::TokenFile {
        account: account.into(),
        app_key: dropbox_emulator::demo_credentials::APP_KEY.into(),
        app_secret: dropbox_emulator::demo_credentials::APP_SECRET.into(),
        refresh_token: refresh_token.into(),
        team: false,
        account_id: Some(dropbox_emulator::demo_credentials::PERSONAL_ACCOUNT_ID.into()),
        email: Some(dropbox_emulator::demo_credentials::PERSONAL_EMAIL.into()),
        team_id: None,
        scope: None,
        created: "2026-01-01T00:00:00Z".into(),
        team_member_email: None,
        team_space: false,
    }
    .write(path)
    .unwrap();
}
