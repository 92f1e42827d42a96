//! Tests of the emulator over real sockets, with reqwest as the client.

mod auth;
mod distance;
mod files;
mod finish_batch;
mod names;
mod rate_limit;
mod sessions;
mod write_lock;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::demo_credentials as demo;
use super::{Emulator, EmulatorConfig};

/// A running emulator on a fresh root, with a client.
pub struct Harness {
    pub emulator: Emulator,
    pub root: TempDir,
    pub http: reqwest::Client,
    pub token: String,
}

pub async fn start() -> Harness {
    start_with(TempDir::new().unwrap(), 500).await
}

pub async fn start_with(root: TempDir, page_size: usize) -> Harness {
    let config = EmulatorConfig {
        root: root.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        page_size,
        realism: Default::default(),
        distance: Default::default(),
    };
    let emulator = Emulator::start(config).await.unwrap();
    Harness {
        emulator,
        root,
        http: reqwest::Client::new(),
        token: demo::ACCESS_TOKEN.to_string(),
    }
}

/// Status and body (JSON when it parses, else a JSON string of the text).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    pub fn summary(&self) -> &str {
        self.body["error_summary"].as_str().unwrap_or_default()
    }
}

impl Harness {
    pub fn url(&self, route: &str) -> String {
        format!("{}/2/{route}", self.emulator.base_url())
    }

    pub async fn rpc(&self, route: &str, arg: Value) -> Answer {
        let response = self
            .http
            .post(self.url(route))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/json")
            .body(arg.to_string())
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    /// An upload-style call with a raw `Dropbox-API-Arg` header value.
    pub async fn upload_raw(&self, route: &str, arg: &str, body: Vec<u8>) -> Answer {
        let response = self
            .http
            .post(self.url(route))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", arg)
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    /// Replaces the realism models in force (`PUT /__emulator/realism`).
    pub async fn set_realism(&self, realism: Value) {
        let response = self
            .http
            .put(format!("{}/__emulator/realism", self.emulator.base_url()))
            .json(&realism)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub async fn upload(&self, path: &str, body: &[u8]) -> Answer {
        let arg = super::wire::ascii_json(&json!({ "path": path, "mode": "add" }));
        self.upload_raw("files/upload", &arg, body.to_vec()).await
    }

    pub async fn download(&self, path: &str, range: Option<&str>) -> (Answer, Option<Value>) {
        let mut request = self
            .http
            .post(self.url("files/download"))
            .bearer_auth(&self.token)
            .header(
                "Dropbox-API-Arg",
                super::wire::ascii_json(&json!({ "path": path })),
            );
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let answer = Answer::from(request.send().await.unwrap()).await;
        let result = answer
            .headers
            .get("dropbox-api-result")
            .map(|v| serde_json::from_str(v.to_str().unwrap()).unwrap());
        (answer, result)
    }

    pub async fn hook(&self, method: reqwest::Method, hook: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(
            method,
            format!("{}/__emulator/{hook}", self.emulator.base_url()),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success());
        response.json().await.unwrap()
    }
}
