//! End-to-end tests of the client against the emulator (`dropbox_emulator`) over real sockets:
//! routes, streaming downloads, upload sessions, token refresh, retries and team headers.
//! How the client rides out injected faults is in [`retries`]; what it records of its own
//! health, in [`health`].

mod batch;
mod health;
mod retries;

use std::time::Duration;

use bytes::Bytes;
use reqwest::Body;
use serde_json::{json, Value};
use tempfile::TempDir;

use super::*;
use dropbox_emulator::demo_credentials as demo;
use dropbox_emulator::{Emulator, EmulatorConfig};

struct Harness {
    emulator: Emulator,
    _root: TempDir,
}

impl Harness {
    async fn start(page_size: usize) -> Self {
        let root = TempDir::new().unwrap();
        let config = EmulatorConfig {
            root: root.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            page_size,
            realism: Default::default(),
            distance: Default::default(),
        };
        let emulator = Emulator::start(config).await.unwrap();
        Self {
            emulator,
            _root: root,
        }
    }

    fn options(&self, credentials: Credentials) -> ClientOptions {
        let endpoints = Endpoints::all(&self.emulator.base_url()).unwrap();
        let mut options = ClientOptions::new(endpoints, credentials);
        options.request_timeout = Duration::from_secs(10);
        options
    }

    fn client(&self, credentials: Credentials) -> DropboxClient {
        let retry = RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            rate_limit_wait: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        };
        DropboxClient::with_retry(self.options(credentials), retry).unwrap()
    }

    fn static_client(&self) -> DropboxClient {
        self.client(Credentials::AccessToken(demo::ACCESS_TOKEN.into()))
    }

    fn refreshing_client(&self) -> DropboxClient {
        self.client(refresh_credentials(demo::REFRESH_TOKEN))
    }

    async fn hook(&self, method: reqwest::Method, hook: &str, body: Option<Value>) -> Value {
        let url = format!("{}/__emulator/{hook}", self.emulator.base_url());
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "hook {hook}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn faults(&self, rules: Value) {
        self.hook(
            reqwest::Method::POST,
            "faults",
            Some(json!({ "rules": rules })),
        )
        .await;
    }

    /// Requests the emulator saw for `route` so far.
    async fn count(&self, route: &str) -> u64 {
        let stats = self.hook(reqwest::Method::GET, "stats", None).await;
        stats["requests"][route].as_u64().unwrap_or(0)
    }
}

fn refresh_credentials(refresh_token: &str) -> Credentials {
    Credentials::Refresh {
        app_key: demo::APP_KEY.into(),
        app_secret: demo::APP_SECRET.into(),
        refresh_token: refresh_token.into(),
    }
}

async fn read_all(download: &mut Download) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

async fn put(client: &DropboxClient, path: &str, bytes: &'static [u8]) -> FileMetadata {
    let mut arg = UploadArg::new(path, WriteMode::Add);
    arg.content_hash = Some(content_hash(bytes));
    client.upload(&arg, Body::from(bytes)).await.unwrap()
}

#[tokio::test]
async fn upload_download_and_metadata_round_trip() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let path = "/Docs/résumé 日本 🎉.txt";
    let mut arg = UploadArg::new(path, WriteMode::Add);
    arg.client_modified = Some(timestamp(1_431_445_838));
    arg.content_hash = Some(content_hash(b"hello world"));
    let file = client
        .upload(&arg, Body::from("hello world"))
        .await
        .unwrap();
    assert_eq!(file.size, 11);
    assert_eq!(file.path_display.as_deref(), Some(path));
    assert_eq!(parse_timestamp(&file.client_modified), Some(1_431_445_838));
    assert_eq!(
        file.content_hash.as_deref(),
        Some(content_hash(b"hello world").as_str())
    );

    let Metadata::File(meta) = client.get_metadata(&path.to_uppercase()).await.unwrap() else {
        panic!("not a file")
    };
    assert_eq!(meta.id, file.id);

    let mut whole = client.download(path, None).await.unwrap();
    assert!(!whole.is_partial());
    assert_eq!(whole.metadata.rev, file.rev);
    assert_eq!(read_all(&mut whole).await, b"hello world");

    let mut part = client
        .download(path, ByteRange::with_len(6, 5))
        .await
        .unwrap();
    assert!(part.is_partial());
    let range = part.content_range().unwrap();
    assert_eq!((range.start, range.end, range.total), (6, 10, Some(11)));
    assert_eq!(read_all(&mut part).await, b"world");

    arg.content_hash = None;
    let conflict = client.upload(&arg, Body::from("again")).await.unwrap_err();
    assert!(conflict.is_conflict(), "{conflict:?}");
    let missing = client.get_metadata("/nope").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    assert_eq!(
        missing.to_string(),
        "Dropbox rejected the request: path/not_found"
    );
}

#[tokio::test]
async fn folders_listing_pages_and_relocation() {
    let h = Harness::start(2).await;
    let client = h.static_client();
    let folder = client.create_folder("/Box").await.unwrap();
    assert_eq!(folder.name, "Box");
    assert!(client
        .create_folder("/box")
        .await
        .unwrap_err()
        .is_conflict());
    for name in ["a", "b", "c", "d", "e"] {
        put(&client, &format!("/Box/{name}.txt"), b"x").await;
    }

    let mut page = client.list_folder("/Box", None).await.unwrap();
    let mut names: Vec<String> = page.entries.iter().map(|e| e.name().to_owned()).collect();
    while page.has_more {
        page = client.list_folder_continue(&page.cursor).await.unwrap();
        names.extend(page.entries.iter().map(|e| e.name().to_owned()));
    }
    names.sort();
    assert_eq!(names, ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]);
    let root = client.list_folder("", Some(100)).await.unwrap();
    assert!(root
        .entries
        .iter()
        .any(|e| matches!(e, Metadata::Folder(f) if f.name == "Box")));

    let a = client.get_metadata("/Box/a.txt").await.unwrap();
    let moved = client
        .move_entry("/Box/a.txt", "/Box/z.txt", a.id().unwrap())
        .await
        .unwrap();
    assert_eq!(moved.path_lower(), Some("/box/z.txt"));
    let onto_existing = client
        .move_entry("/Box/b.txt", "/Box/z.txt", "id:b")
        .await
        .unwrap_err();
    assert!(onto_existing.is_conflict(), "{onto_existing:?}");
    client
        .copy_entry("/Box/b.txt", "/Box/b2.txt")
        .await
        .unwrap();
    client.delete("/Box/b.txt").await.unwrap();
    assert!(client
        .get_metadata("/Box/b.txt")
        .await
        .unwrap_err()
        .is_not_found());
    assert!(client
        .delete("/Box/b.txt")
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn upload_session_with_offset_recovery() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let start = UploadSessionStartArg::default();
    let session_id = client
        .upload_session_start(&start, Body::from("abc"))
        .await
        .unwrap();
    let cursor = |offset| UploadSessionCursor {
        session_id: session_id.clone(),
        offset,
    };

    let wrong = UploadSessionAppendArg {
        cursor: cursor(1),
        close: false,
        content_hash: None,
    };
    let err = client
        .upload_session_append(&wrong, Body::from("def"))
        .await
        .unwrap_err();
    assert_eq!(err.correct_offset(), Some(3), "{err:?}");

    let append = UploadSessionAppendArg {
        cursor: cursor(3),
        close: false,
        content_hash: Some(content_hash(b"def")),
    };
    // A streaming body works too (sent once, no replay).
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"def"))]);
    client
        .upload_session_append(&append, Body::wrap_stream(stream))
        .await
        .unwrap();

    let mut commit = CommitInfo::new("/big.bin", WriteMode::Overwrite);
    commit.client_modified = Some(timestamp(0));
    let finish = UploadSessionFinishArg {
        cursor: cursor(6),
        commit,
        content_hash: None,
    };
    let file = client
        .upload_session_finish(&finish, Body::from("gh"))
        .await
        .unwrap();
    assert_eq!(file.size, 8);
    assert_eq!(
        file.content_hash.as_deref(),
        Some(content_hash(b"abcdefgh").as_str())
    );
}

#[tokio::test]
async fn refresh_token_is_used_once_and_renewed_on_expiry() {
    let h = Harness::start(500).await;
    let client = h.refreshing_client();
    // Many callers at once, one refresh.
    let calls = (0..16).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get_current_account().await })
    });
    for call in calls {
        let account = call.await.unwrap().unwrap();
        assert_eq!(account.email, demo::PERSONAL_EMAIL);
    }
    assert_eq!(h.count("oauth2/token").await, 1);

    // Dropbox says the token expired: refresh once and repeat the request.
    h.hook(reqwest::Method::POST, "expire_tokens", None).await;
    let usage = client.get_space_usage().await.unwrap();
    assert!(usage.allocated() > 0);
    assert_eq!(h.count("oauth2/token").await, 2);

    // Also for an upload with an in-memory body.
    h.hook(reqwest::Method::POST, "expire_tokens", None).await;
    put(&client, "/after-expiry.txt", b"ok").await;
    assert_eq!(h.count("oauth2/token").await, 3);
}

#[tokio::test]
async fn revoked_refresh_token_is_explained() {
    let h = Harness::start(500).await;
    let client = h.client(refresh_credentials("not-a-real-refresh-token"));
    let err = client.get_current_account().await.unwrap_err();
    assert!(
        matches!(err, DropboxError::RefreshRejected { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the refresh token was revoked or is invalid: re-run dropgate auth"
    );
    assert!(!format!("{err:?}").contains("not-a-real"));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_when_safe() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    put(&client, "/f.txt", b"data").await;

    h.faults(json!([{ "kind": "status_429", "route": "files/get_metadata", "count": 1, "retry_after": 0 }]))
        .await;
    client.get_metadata("/f.txt").await.unwrap();

    h.faults(json!([{ "kind": "status_503", "route": "files/list_folder", "count": 2 }]))
        .await;
    client.list_folder("", None).await.unwrap();

    // A change is sent again after a server error only once a look found it absent (the look
    // asks more than once: Dropbox's lag could hide a folder that had landed).
    h.faults(json!([{ "kind": "status_503", "route": "files/create_folder_v2", "count": 1 }]))
        .await;
    let looks = h.count("files/get_metadata").await;
    client.create_folder("/new").await.unwrap();
    assert_eq!(h.count("files/create_folder_v2").await, 2);
    assert!(h.count("files/get_metadata").await > looks);

    // A Retry-After longer than we are willing to wait goes to the caller.
    h.faults(json!([{ "kind": "status_429", "route": "files/get_metadata", "count": 1, "retry_after": 60 }]))
        .await;
    let err = client.get_metadata("/f.txt").await.unwrap_err();
    assert!(
        matches!(
            err,
            DropboxError::RateLimited {
                retry_after: Some(60)
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn team_token_selects_member_and_team_space() {
    let h = Harness::start(500).await;
    let team = h.client(Credentials::AccessToken(demo::TEAM_ACCESS_TOKEN.into()));
    let member = team
        .team_member_id_for_email(demo::ALICE_EMAIL)
        .await
        .unwrap();
    assert_eq!(member.as_deref(), Some(demo::ALICE_TEAM_MEMBER_ID));
    assert_eq!(
        team.team_member_id_for_email("nobody@team.example")
            .await
            .unwrap(),
        None
    );

    let mut options = h.options(Credentials::AccessToken(demo::TEAM_ACCESS_TOKEN.into()));
    options.select_user = member;
    let alice = DropboxClient::new(options.clone()).unwrap();
    let account = alice.get_current_account().await.unwrap();
    assert_eq!(account.email, demo::ALICE_EMAIL);
    assert_eq!(
        account.root_info.root_namespace_id,
        demo::TEAM_ROOT_NAMESPACE_ID
    );

    options.path_root = Some(account.root_info.root_namespace_id.clone());
    let team_space = DropboxClient::new(options).unwrap();
    let root = team_space.list_folder("", None).await.unwrap();
    let names: Vec<&str> = root.entries.iter().map(Metadata::name).collect();
    assert!(names.contains(&demo::TEAM_FOLDER_NAME), "{names:?}");
}
