//! [`DropboxClient`]: the Dropbox routes dropgate uses, as typed async methods.
//!
//! Each method names its route, says how safe it is to send twice (for the retry policy in
//! `retry`), builds its argument and decodes its result; requests are built in `request`,
//! sent (with tokens, timeouts and retries) by `transport`, and failures decoded by
//! [`super::error`]. Upload bodies are [`UploadBody`]s, so a caller can hand over a factory
//! that streams the bytes afresh for every try. The client is cheap to clone: one `Arc` around one
//! reqwest connection pool and one token cache.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::TokenSource;
use super::batch::Commits;
use super::body::UploadBody;
use super::download::{self, ByteRange, Download};
use super::error::{self, DropboxError};
use super::health::Health;
use super::lag::RecentWrites;
use super::options::{ClientOptions, NO_PROXY};
use super::request::{HttpClients, RequestFactory, Route};
use super::retry::{RetryPolicy, Safety};
use super::secret::scrub;
use super::transport::Transport;
use super::types::{
    FileMetadata, FolderMetadata, FullAccount, ListFolderResult, Metadata, SpaceUsage,
};
use super::upload_args::{
    UploadArg, UploadSessionAppendArg, UploadSessionFinishArg, UploadSessionStartArg, WriteMode,
};
use crate::tls_trust::Trust;

/// The routes, with what the transport must know about each.
pub(super) mod routes {
    use super::Route;

    pub const GET_METADATA: Route = Route::rpc("files/get_metadata").read_only();
    pub const LIST_FOLDER: Route = Route::rpc("files/list_folder").read_only();
    pub const LIST_FOLDER_CONTINUE: Route = Route::rpc("files/list_folder/continue").read_only();
    pub const DOWNLOAD: Route = Route::download("files/download");
    pub const UPLOAD: Route = Route::upload("files/upload");
    pub const SESSION_START: Route = Route::upload("files/upload_session/start");
    pub const SESSION_APPEND: Route = Route::upload("files/upload_session/append_v2");
    pub const SESSION_FINISH: Route = Route::upload("files/upload_session/finish");
    pub const SESSION_FINISH_BATCH: Route = Route::rpc("files/upload_session/finish_batch_v2");
    pub const CREATE_FOLDER: Route = Route::rpc("files/create_folder_v2");
    pub const DELETE: Route = Route::rpc("files/delete_v2");
    pub const MOVE: Route = Route::rpc("files/move_v2");
    pub const COPY: Route = Route::rpc("files/copy_v2");
    pub const CURRENT_ACCOUNT: Route = Route::rpc("users/get_current_account").read_only();
    pub const SPACE_USAGE: Route = Route::rpc("users/get_space_usage").read_only();
    pub const MEMBERS_GET_INFO: Route = Route::rpc("team/members/get_info_v2").read_only().team();
}

/// A Dropbox API v2 client for one account (or one team member).
#[derive(Clone)]
pub struct DropboxClient {
    transport: Arc<Transport>,
    /// Idle limit while a download body is read.
    idle_timeout: Duration,
    /// Paths written lately, whose `not_found` is doubted (`lag`).
    pub(super) recent: Arc<RecentWrites>,
    /// The changes in flight and the commits waiting for a batch (`batch`).
    pub(super) commits: Arc<Commits>,
}

impl std::fmt::Debug for DropboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropboxClient")
            .field("endpoints", self.transport.requests.endpoints())
            .finish_non_exhaustive()
    }
}

impl DropboxClient {
    pub fn new(options: ClientOptions) -> Result<Self, DropboxError> {
        Self::with_retry(options, RetryPolicy::default())
    }

    /// Like [`DropboxClient::new`] with a chosen retry policy (the gateway's configured
    /// rate-limit wait; tests use short backoffs).
    pub fn with_retry(options: ClientOptions, retry: RetryPolicy) -> Result<Self, DropboxError> {
        let http = http_clients(
            options.connect_timeout,
            options.request_timeout,
            options.proxy.as_deref(),
            &options.trust,
        )?;
        let requests = RequestFactory::new(
            http,
            options.endpoints,
            options.select_user.as_deref(),
            options.path_root.as_deref(),
            options.request_timeout,
        )?;
        let tokens = TokenSource::new(options.credentials);
        Ok(Self {
            transport: Arc::new(Transport::new(requests, tokens, retry)),
            idle_timeout: options.request_timeout,
            recent: Arc::default(),
            commits: Arc::default(),
        })
    }

    /// Metadata of a file or folder (not the root, which Dropbox does not describe).
    pub async fn get_metadata(&self, path: &str) -> Result<Metadata, DropboxError> {
        let arg = json!({ "path": path });
        self.recent
            .ride(path, || self.rpc(&routes::GET_METADATA, &arg))
            .await
    }

    /// The first page of a folder's entries (`""` is the root); `limit` is a hint (1–2000).
    pub async fn list_folder(
        &self,
        path: &str,
        limit: Option<u32>,
    ) -> Result<ListFolderResult, DropboxError> {
        #[derive(Serialize)]
        struct Arg<'a> {
            path: &'a str,
            recursive: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<u32>,
        }
        let arg = Arg {
            path,
            recursive: false,
            limit,
        };
        self.rpc(&routes::LIST_FOLDER, &arg).await
    }

    /// The next page after a listing whose `has_more` was true.
    pub async fn list_folder_continue(
        &self,
        cursor: &str,
    ) -> Result<ListFolderResult, DropboxError> {
        self.rpc(&routes::LIST_FOLDER_CONTINUE, &json!({ "cursor": cursor }))
            .await
    }

    /// Starts a download; the bytes are in `Download::response`, not yet read. With a range,
    /// a 206 carries just that range (check [`Download::is_partial`]).
    pub async fn download(
        &self,
        path: &str,
        range: Option<ByteRange>,
    ) -> Result<Download, DropboxError> {
        let route = &routes::DOWNLOAD;
        let response = self
            .call(
                route,
                safety_of(route),
                &json!({ "path": path }),
                None,
                range,
            )
            .await?;
        let metadata = download::result_metadata(&response)?;
        Ok(Download::new(metadata, response, self.idle_timeout))
    }

    /// Uploads a whole file (at most 150 MiB) in one request. In overwrite mode sending it
    /// twice stores the same bytes twice, so it is retried after any transient failure (given
    /// a replayable body); other modes could turn a success into a conflict, so they are not.
    pub async fn upload(
        &self,
        arg: &UploadArg,
        body: impl Into<UploadBody>,
    ) -> Result<FileMetadata, DropboxError> {
        let safety = match arg.mode {
            WriteMode::Overwrite => Safety::Idempotent,
            _ => Safety::Once,
        };
        let stored = self
            .upload_call(&routes::UPLOAD, safety, arg, body.into())
            .await?;
        self.recent.wrote(&arg.path);
        Ok(stored)
    }

    /// Starts an upload session, optionally with its first data; returns the session id.
    /// Retried freely: a session started twice leaves one unused, and Dropbox expires those.
    pub async fn upload_session_start(
        &self,
        arg: &UploadSessionStartArg,
        body: impl Into<UploadBody>,
    ) -> Result<String, DropboxError> {
        #[derive(Deserialize)]
        struct Started {
            session_id: String,
        }
        let started: Started = self
            .upload_call(&routes::SESSION_START, Safety::Idempotent, arg, body.into())
            .await?;
        Ok(started.session_id)
    }

    /// Appends data to a sequential upload session at `arg.cursor.offset`. Retried freely:
    /// Dropbox checks the offset, so a repeat of an append that had landed fails with
    /// `incorrect_offset` and the caller resynchronises from its `correct_offset`. A concurrent
    /// session's pieces go by [`DropboxClient::upload_session_append_piece`].
    pub async fn upload_session_append(
        &self,
        arg: &UploadSessionAppendArg,
        body: impl Into<UploadBody>,
    ) -> Result<(), DropboxError> {
        let route = &routes::SESSION_APPEND;
        let response = self
            .call(route, Safety::Idempotent, arg, Some(body.into()), None)
            .await?;
        // The answer is `null`; read it anyway so the connection goes back to the pool.
        response.bytes().await.map_err(error::from_transport)?;
        Ok(())
    }

    /// Commits an upload session (with optional last data) as a file. Sent again only when
    /// Dropbox certainly did not act; after a server error or a lost answer the caller must
    /// look before it tries again ([`DropboxClient::upload_session_finish_checked`] does).
    pub async fn upload_session_finish(
        &self,
        arg: &UploadSessionFinishArg,
        body: impl Into<UploadBody>,
    ) -> Result<FileMetadata, DropboxError> {
        let stored = self
            .upload_call(&routes::SESSION_FINISH, Safety::Checked, arg, body.into())
            .await?;
        self.recent.wrote(&arg.commit.path);
        Ok(stored)
    }

    /// Creates a folder (and missing parents); a conflict if something is already there.
    /// Sent once: [`DropboxClient::create_folder`] is the form that survives a lost answer.
    pub(super) async fn create_folder_once(
        &self,
        path: &str,
    ) -> Result<FolderMetadata, DropboxError> {
        #[derive(Deserialize)]
        struct Created {
            metadata: FolderMetadata,
        }
        let arg = json!({ "path": path, "autorename": false });
        let created: Created = self.rpc(&routes::CREATE_FOLDER, &arg).await?;
        Ok(created.metadata)
    }

    /// Deletes a file, or a folder WITH everything in it. Sent once (see
    /// [`DropboxClient::delete`]); a `not_found` for a path written just now is asked again.
    pub(super) async fn delete_once(&self, path: &str) -> Result<Metadata, DropboxError> {
        let arg = json!({ "path": path });
        self.recent
            .ride(path, || self.rpc_metadata(&routes::DELETE, &arg))
            .await
    }

    /// Moves or renames; a conflict if the target exists. Sent once (see
    /// [`DropboxClient::move_entry`]); a source written just now that Dropbox does not find
    /// yet is asked again.
    pub(super) async fn move_once(&self, from: &str, to: &str) -> Result<Metadata, DropboxError> {
        let arg = relocation(from, to);
        self.recent
            .ride(from, || self.rpc_metadata(&routes::MOVE, &arg))
            .await
    }

    /// Copies; a conflict if the target exists. Sent once (see [`DropboxClient::copy_entry`]);
    /// a source written just now that Dropbox does not find yet is asked again.
    pub(super) async fn copy_once(&self, from: &str, to: &str) -> Result<Metadata, DropboxError> {
        let arg = relocation(from, to);
        self.recent
            .ride(from, || self.rpc_metadata(&routes::COPY, &arg))
            .await
    }

    pub async fn get_current_account(&self) -> Result<FullAccount, DropboxError> {
        self.rpc(&routes::CURRENT_ACCOUNT, &()).await
    }

    pub async fn get_space_usage(&self) -> Result<SpaceUsage, DropboxError> {
        self.rpc(&routes::SPACE_USAGE, &()).await
    }

    /// The team_member_id of the team member with this email, None if there is none.
    /// A team route: needs a team token, sends no Select-User header.
    pub async fn team_member_id_for_email(
        &self,
        email: &str,
    ) -> Result<Option<String>, DropboxError> {
        #[derive(Deserialize)]
        struct Answer {
            members_info: Vec<Item>,
        }
        #[derive(Deserialize)]
        #[serde(tag = ".tag", rename_all = "snake_case")]
        enum Item {
            MemberInfo {
                profile: Profile,
            },
            #[serde(other)]
            NotFound,
        }
        #[derive(Deserialize)]
        struct Profile {
            team_member_id: String,
        }
        let arg = json!({ "members": [{ ".tag": "email", "email": email }] });
        let answer: Answer = self.rpc(&routes::MEMBERS_GET_INFO, &arg).await?;
        Ok(answer.members_info.into_iter().find_map(|item| match item {
            Item::MemberInfo { profile } => Some(profile.team_member_id),
            Item::NotFound => None,
        }))
    }

    /// How the account is doing: the last failed and the last successful request, and when
    /// the access token expires. Clones of a client share it.
    pub fn health(&self) -> Health {
        self.transport.health()
    }

    /// The retry policy this client follows.
    pub(super) fn retry_policy(&self) -> RetryPolicy {
        self.transport.retry_policy()
    }

    /// True if an expired access token can be renewed.
    pub(super) fn can_refresh(&self) -> bool {
        self.transport.can_refresh()
    }

    /// An RPC call with a JSON result. Only read-only routes are repeated after an ambiguous
    /// failure: creating, deleting, moving or copying twice could report a conflict for what
    /// in fact succeeded, so those are repeated by `checked`, after a look.
    pub(super) async fn rpc<A, R>(&self, route: &Route, arg: &A) -> Result<R, DropboxError>
    where
        A: Serialize + Sync + ?Sized,
        R: DeserializeOwned,
    {
        let response = self.call(route, safety_of(route), arg, None, None).await?;
        read_json(route, response).await
    }

    /// An RPC call whose result is `{"metadata": Metadata}` (delete, move, copy).
    async fn rpc_metadata<A: Serialize + Sync + ?Sized>(
        &self,
        route: &Route,
        arg: &A,
    ) -> Result<Metadata, DropboxError> {
        #[derive(Deserialize)]
        struct Result {
            metadata: Metadata,
        }
        let result: Result = self.rpc(route, arg).await?;
        Ok(result.metadata)
    }

    /// An upload call with a JSON result.
    pub(super) async fn upload_call<A, R>(
        &self,
        route: &Route,
        safety: Safety,
        arg: &A,
        body: UploadBody,
    ) -> Result<R, DropboxError>
    where
        A: Serialize + Sync + ?Sized,
        R: DeserializeOwned,
    {
        let response = self.call(route, safety, arg, Some(body), None).await?;
        read_json(route, response).await
    }

    /// Sends one call (with its retries); the 2xx response is returned unread.
    async fn call<A: Serialize + Sync + ?Sized>(
        &self,
        route: &Route,
        safety: Safety,
        arg: &A,
        body: Option<UploadBody>,
        range: Option<ByteRange>,
    ) -> Result<reqwest::Response, DropboxError> {
        let requests = &self.transport.requests;
        let build = |body| requests.build(route, arg, body, range);
        self.transport.send(route, safety, &build, body).await
    }
}

/// Reads can always be repeated; other RPCs only when Dropbox certainly did nothing, or after
/// their caller (`checked`) has looked.
fn safety_of(route: &Route) -> Safety {
    if route.read_only {
        Safety::Idempotent
    } else {
        Safety::Checked
    }
}

/// Arguments of move_v2 and copy_v2: never autorename, so the caller learns of conflicts.
fn relocation(from: &str, to: &str) -> serde_json::Value {
    json!({ "from_path": from, "to_path": to, "autorename": false })
}

async fn read_json<R: DeserializeOwned>(
    route: &Route,
    response: reqwest::Response,
) -> Result<R, DropboxError> {
    let bytes = response.bytes().await.map_err(error::from_transport)?;
    error::decode_json(route.name, &bytes)
}

/// The HTTP clients: keep-alive pools, connect timeout, optional proxy.
///
/// Two pools from the same settings. RPCs may share one HTTP/2 connection; bytes of files go
/// over HTTP/1.1 only, where every transfer in flight has a TCP connection of its own. Across
/// a long distance one connection carries far less than the gateway's own links, so the
/// parallel appends of one upload and the parallel ranges of one download must not be
/// multiplexed onto one connection (nor share its window with every other transfer).
///
/// No client-wide read timeout: reqwest starts that clock when a request is sent, so it would
/// also limit how long an upload may take to send. RPCs get a total timeout per request;
/// stalled uploads are caught by TCP_USER_TIMEOUT (unacknowledged data), stalled downloads by
/// [`Download::next_chunk`].
///
/// `proxy` None keeps reqwest's default, which honours HTTPS_PROXY / ALL_PROXY / NO_PROXY;
/// [`NO_PROXY`] turns every proxy off, the environment's included. `trust`: the system's CAs
/// and any `ca_file` (`crate::tls_trust`).
pub(super) fn http_clients(
    connect_timeout: Duration,
    request_timeout: Duration,
    proxy: Option<&str>,
    trust: &Trust,
) -> Result<HttpClients, DropboxError> {
    let rpc = trust.apply(http_builder(connect_timeout, request_timeout, proxy)?);
    let transfers = trust
        .apply(http_builder(connect_timeout, request_timeout, proxy)?)
        .http1_only();
    Ok(HttpClients {
        rpc: build_client(rpc)?,
        transfers: build_client(transfers)?,
    })
}

fn http_builder(
    connect_timeout: Duration,
    request_timeout: Duration,
    proxy: Option<&str>,
) -> Result<reqwest::ClientBuilder, DropboxError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("dropgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(90));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    {
        builder = builder.tcp_user_timeout(request_timeout);
    }
    match proxy {
        None => {}
        Some(NO_PROXY) => builder = builder.no_proxy(),
        Some(proxy) => {
            let proxy = reqwest::Proxy::all(proxy)
                .map_err(|_| DropboxError::Config(format!("invalid proxy URL {}", scrub(proxy))))?;
            builder = builder.proxy(proxy);
        }
    }
    Ok(builder)
}

fn build_client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, DropboxError> {
    builder.build().map_err(|e| {
        DropboxError::Config(format!("could not set up HTTPS: {}", scrub(&e.to_string())))
    })
}
