//! The HTTP server: shared state, the router and the per-route dispatch.
//!
//! Every Dropbox route is `POST /2/<namespace>/<route>` on this one server (api, content and
//! oauth hosts all point here); `/__emulator/` holds the test hooks. Requests pass through the
//! fault-injection and statistics layer ([`faults`](super::faults)) before reaching a handler.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::caller::{authenticate, team_caller, user_caller, Caller, Directory};
use super::disk::Layout;
use super::distance::{self, DistanceSwitch};
use super::error::{json_response, ApiError, ApiResult};
use super::faults::{self, Faults, Stats};
use super::finish_batch::{self, BatchJobs};
use super::rate_limit::{self, RateLimiter};
use super::realism::{self, RealismSwitch};
use super::sessions::Sessions;
use super::store::Store;
use super::tokens::Tokens;
use super::write_lock::{self, WriteLocks};
use super::{download, files_read, files_write, oauth, team, upload, users, wire};

/// Largest RPC body read into memory.
const RPC_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Everything the handlers share.
pub struct AppState {
    pub layout: Layout,
    pub directory: Directory,
    pub tokens: Tokens,
    pub store: Mutex<Store>,
    pub sessions: Sessions,
    pub faults: Faults,
    pub stats: Stats,
    /// Which models of real Dropbox behaviour are on ([`realism`]).
    pub realism: RealismSwitch,
    /// How far away the emulator pretends to be ([`distance`]).
    pub distance: Arc<DistanceSwitch>,
    /// The namespaces with a commit under way ([`write_lock`]).
    pub write_locks: WriteLocks,
    /// Each caller's budget of calls, for the rate-limit model.
    pub rate_limits: RateLimiter,
    /// Results of finish_batch (v1) jobs ([`finish_batch`]).
    pub batch_jobs: BatchJobs,
    pub page_size: usize,
}

impl AppState {
    /// The store, even if a handler panicked while holding it (the drop_* faults unwind on
    /// purpose, never while holding a lock, but a poisoned lock must not wedge the emulator).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub type Shared = Arc<AppState>;

/// One API call, taken apart.
pub struct Call {
    pub route: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Body,
}

impl Call {
    /// Reads the whole (small) body of an RPC call.
    pub async fn small_body(self) -> ApiResult<(String, HeaderMap, Vec<u8>)> {
        let bytes = axum::body::to_bytes(self.body, RPC_BODY_LIMIT)
            .await
            .map_err(|err| ApiError::bad_request(&self.route, format!("request body: {err}")))?;
        Ok((self.route, self.headers, bytes.to_vec()))
    }

    /// Authenticates a user route and resolves its caller.
    pub fn user(&self, state: &AppState) -> ApiResult<Caller> {
        let subject = authenticate(&state.tokens, &self.route, &self.headers)?;
        user_caller(&state.directory, subject, &self.route, &self.headers)
    }

    /// Parses the `Dropbox-API-Arg` header (or `arg` parameter).
    pub fn header_arg<T: DeserializeOwned>(&self) -> ApiResult<T> {
        wire::header_arg(&self.route, &self.headers, self.query.as_deref())
    }
}

/// A user-route RPC handler: caller and parsed argument in, result JSON out.
type RpcHandler<A> = fn(&AppState, &Caller, &str, A) -> ApiResult<Value>;

async fn rpc<A: DeserializeOwned>(
    state: &AppState,
    call: Call,
    handler: RpcHandler<A>,
) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let (route, headers, body) = call.small_body().await?;
    let arg = wire::rpc_arg(&route, &headers, &body)?;
    let result = handler(state, &caller, &route, arg)?;
    Ok(json_response(StatusCode::OK, &result))
}

/// A user-route RPC that commits a change: it holds its namespace's write lock while it is
/// applied (the `write_lock` model; nothing while that is off).
async fn rpc_commit<A: DeserializeOwned>(
    state: &AppState,
    call: Call,
    handler: RpcHandler<A>,
) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let (route, headers, body) = call.small_body().await?;
    let arg = wire::rpc_arg(&route, &headers, &body)?;
    let held = write_lock::begin(state, &caller).map_err(|busy| busy.into_error(&route))?;
    let result = handler(state, &caller, &route, arg);
    held.finish().await;
    Ok(json_response(StatusCode::OK, &result?))
}

/// A user-route RPC without arguments.
async fn rpc_void(
    state: &AppState,
    call: Call,
    handler: fn(&AppState, &Caller) -> ApiResult<Value>,
) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let (route, headers, body) = call.small_body().await?;
    wire::void_arg(&route, &headers, &body)?;
    Ok(json_response(StatusCode::OK, &handler(state, &caller)?))
}

async fn dispatch(state: &Shared, call: Call) -> ApiResult<Response> {
    if call.method != Method::POST
        && !(call.method == Method::GET && call.route == "files/download")
    {
        return Err(ApiError::bad_request(
            &call.route,
            "Expecting an HTTP POST request.",
        ));
    }
    rate_limit::check(state, &call.route, &call.headers)?;
    match call.route.as_str() {
        "files/get_metadata" => rpc(state, call, files_read::get_metadata).await,
        "files/list_folder" => rpc(state, call, files_read::list_folder).await,
        "files/list_folder/continue" => rpc(state, call, files_read::list_folder_continue).await,
        "files/create_folder_v2" => rpc_commit(state, call, files_write::create_folder).await,
        "files/delete_v2" => rpc_commit(state, call, files_write::delete).await,
        "files/move_v2" => rpc_commit(state, call, files_write::move_entry).await,
        "files/copy_v2" => rpc_commit(state, call, files_write::copy_entry).await,
        "files/upload" => upload::upload(state, call).await,
        "files/upload_session/start" => upload::session_start(state, call).await,
        "files/upload_session/append_v2" => upload::session_append(state, call).await,
        "files/upload_session/finish" => upload::session_finish(state, call).await,
        "files/upload_session/finish_batch_v2" => finish_batch::finish_batch_v2(state, call).await,
        "files/upload_session/finish_batch" => finish_batch::finish_batch(state, call).await,
        "files/upload_session/finish_batch/check" => {
            rpc(state, call, finish_batch::finish_batch_check).await
        }
        "files/download" => download::download(state, call).await,
        "users/get_current_account" => rpc_void(state, call, users::get_current_account).await,
        "users/get_space_usage" => rpc_void(state, call, users::get_space_usage).await,
        "team/members/get_info_v2" => {
            let subject = authenticate(&state.tokens, &call.route, &call.headers)?;
            let team = team_caller(&state.directory, subject, &call.route)?;
            let (route, headers, body) = call.small_body().await?;
            let arg = wire::rpc_arg(&route, &headers, &body)?;
            let result = team::members_get_info(team, arg);
            Ok(json_response(StatusCode::OK, &result))
        }
        other => Ok((
            StatusCode::NOT_FOUND,
            format!("Unknown API function: \"{other}\""),
        )
            .into_response()),
    }
}

async fn api(State(state): State<Shared>, Path(route): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let call = Call {
        route,
        method: parts.method,
        headers: parts.headers,
        query: parts.uri.query().map(str::to_string),
        body,
    };
    dispatch(&state, call)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The whole router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/2/{*route}", any(api))
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/authorize", get(oauth::authorize))
        .route(
            "/__emulator/faults",
            post(faults::set_faults).delete(faults::clear_faults),
        )
        .route(
            "/__emulator/stats",
            get(faults::get_stats).delete(faults::reset_stats),
        )
        .route("/__emulator/expire_tokens", post(faults::expire_tokens))
        .route(
            "/__emulator/realism",
            get(realism::get_realism).put(realism::put_realism),
        )
        .route(
            "/__emulator/distance",
            get(distance::get_distance).put(distance::put_distance),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::fault_layer,
        ))
        // Outermost: the round trip is added to what the client sees, faults included.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            distance::delay_answers,
        ))
        .with_state(state)
}
