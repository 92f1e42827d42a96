//! Test hooks under `/__emulator/`: fault injection, request statistics, token expiry.
//!
//! These are not part of Dropbox. A middleware counts every Dropbox-style request per route and
//! applies the first matching fault rule before (or after) the real handler. `drop_before` and
//! `drop_after` close the connection without any response: the request task unwinds with
//! `resume_unwind` (no panic message), which makes hyper drop the connection as a crashed or
//! cut-off server would. With HTTP/2 that resets the stream rather than the whole connection.
//! `delay_after` runs the real handler and holds its answer back for `delay_ms`, which opens a
//! window a test can fill with another change (a file arriving between a check and an act).
//! `cut_body` sends the answer's head and the first `after_bytes` of its body, then drops the
//! connection: a transfer broken half way, as a reset or a dying proxy would leave it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::StreamExt;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{error_body, json_response, tag, ApiError};
use super::server::AppState;
use super::wire;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum FaultKind {
    #[serde(rename = "status_429")]
    Status429,
    #[serde(rename = "status_503")]
    Status503,
    #[serde(rename = "expired_token")]
    ExpiredToken,
    #[serde(rename = "drop_before")]
    DropBefore,
    #[serde(rename = "drop_after")]
    DropAfter,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "delay_after")]
    DelayAfter,
    #[serde(rename = "cut_body")]
    CutBody,
}

/// One rule of `POST /__emulator/faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    pub kind: FaultKind,
    /// Route such as `files/upload` or `oauth2/token`; default: every API and OAuth route.
    #[serde(default)]
    pub route: Option<String>,
    /// Apply to the next N matching requests (then the rule is gone).
    #[serde(default)]
    pub count: Option<u64>,
    /// Let this many matching requests through untouched before the rule applies.
    #[serde(default)]
    pub skip: Option<u64>,
    /// Apply to each matching request with this probability.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Seconds for `Retry-After` (429); default 1.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Status of an `error` fault; default 409.
    #[serde(default)]
    pub status: Option<u16>,
    /// JSON body of an `error` fault.
    #[serde(default)]
    pub body: Option<Value>,
    /// Milliseconds a `delay_after` fault holds the answer back; default 1000.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Bytes of the body a `cut_body` fault lets through before the cut; default 64 KiB.
    #[serde(default)]
    pub after_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSet {
    pub rules: Vec<FaultRule>,
}

/// The active fault rules.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault to apply to a request of `route`, consuming one use of a counted rule (or one
    /// of the requests a rule still lets through).
    fn take(&self, route: &str) -> Option<FaultRule> {
        let mut rules = self.rules();
        let index = rules.iter().position(|rule| {
            let route_matches = rule.route.as_deref().is_none_or(|r| r == route);
            let chance = rule.probability.is_none_or(|p| rand::random::<f64>() < p);
            route_matches && chance
        })?;
        if let Some(skip) = rules[index].skip.as_mut().filter(|skip| **skip > 0) {
            *skip -= 1;
            return None;
        }
        let rule = rules[index].clone();
        if let Some(count) = &mut rules[index].count {
            *count = count.saturating_sub(1);
            if *count == 0 {
                rules.remove(index);
            }
        }
        Some(rule)
    }
}

/// Requests per route since start or the last reset, and the time the emulator spent handling
/// them (until the response head; a download's body streams after that), so a benchmark can
/// tell the emulator's cost from the gateway's.
#[derive(Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<String, u64>>,
    busy_micros: Mutex<BTreeMap<String, u64>>,
    /// Faults injected, by kind (`status_503`, ...), so a soak can say what it rode through.
    injected: Mutex<BTreeMap<String, u64>>,
    /// Entries committed by finish_batch routes (whatever each entry's outcome).
    batch_entries: AtomicU64,
    /// Concurrent upload sessions started.
    concurrent_sessions: AtomicU64,
    /// Appends being received now, per session.
    appends_in_flight: Mutex<HashMap<String, u64>>,
    /// The most appends one session has had in flight at once.
    peak_appends_in_flight: AtomicU64,
    /// Downloads whose body is being sent, now and at most at once.
    pub downloads: Arc<DownloadGauge>,
}

/// One append of a session being received; it is over when this is dropped.
pub struct AppendInFlight<'a> {
    stats: &'a Stats,
    session_id: String,
}

impl Drop for AppendInFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.stats.appends_in_flight();
        if let Some(count) = in_flight.get_mut(&self.session_id) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.session_id);
            }
        }
    }
}

/// How many download bodies are being sent at once, and the most there were since the last
/// reset: a client that fetches one file over several connections shows up here.
#[derive(Default)]
pub struct DownloadGauge {
    now: AtomicU64,
    peak: AtomicU64,
}

/// One download body being sent; it counts until it is dropped (sent, or its connection gone).
pub struct DownloadInFlight(Arc<DownloadGauge>);

impl DownloadGauge {
    pub fn enter(gauge: &Arc<DownloadGauge>) -> DownloadInFlight {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        DownloadInFlight(gauge.clone())
    }

    fn reset_peak(&self) {
        self.peak
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for DownloadInFlight {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stats {
    fn counts(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn busy_micros(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.busy_micros.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn injected(&self) -> MutexGuard<'_, BTreeMap<String, u64>> {
        self.injected.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_injected(&self, kind: FaultKind) {
        let name = serde_json::to_value(kind)
            .ok()
            .and_then(|name| name.as_str().map(str::to_string))
            .unwrap_or_default();
        *self.injected().entry(name).or_default() += 1;
    }

    /// Counts the entries of one applied finish_batch call.
    pub fn count_batch_entries(&self, entries: u64) {
        self.batch_entries.fetch_add(entries, Ordering::Relaxed);
    }

    pub fn count_concurrent_session(&self) {
        self.concurrent_sessions.fetch_add(1, Ordering::Relaxed);
    }

    fn appends_in_flight(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.appends_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Notes an append to `session_id` arriving, for the peak of appends in flight.
    pub fn append_arriving(&self, session_id: &str) -> AppendInFlight<'_> {
        let mut in_flight = self.appends_in_flight();
        let count = in_flight.entry(session_id.to_string()).or_default();
        *count += 1;
        self.peak_appends_in_flight
            .fetch_max(*count, Ordering::Relaxed);
        AppendInFlight {
            stats: self,
            session_id: session_id.to_string(),
        }
    }
}

/// Runs the route's handler, adding its time to the route's busy time.
async fn timed(
    state: &AppState,
    route: &str,
    response: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let response = response.await;
    *state
        .stats
        .busy_micros()
        .entry(route.to_string())
        .or_default() += started.elapsed().as_micros() as u64;
    response
}

/// The route name of a Dropbox-style request path, `None` for the hooks themselves.
fn route_of(path: &str) -> Option<String> {
    if let Some(route) = path.strip_prefix("/2/") {
        return Some(route.to_string());
    }
    path.strip_prefix('/')
        .filter(|p| p.starts_with("oauth2/"))
        .map(str::to_string)
}

/// The session an append names, if the request is one.
fn appended_session(route: &str, request: &Request) -> Option<String> {
    if route != "files/upload_session/append_v2" {
        return None;
    }
    let arg: Value = wire::header_arg(route, request.headers(), request.uri().query()).ok()?;
    arg["cursor"]["session_id"].as_str().map(str::to_string)
}

/// Ends the request's task without a response, so the connection is dropped.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("emulator fault: connection dropped"))
}

pub async fn fault_layer(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(route) = route_of(request.uri().path()) else {
        return next.run(request).await;
    };
    *state.stats.counts().entry(route.clone()).or_default() += 1;
    // From arrival to answer (a held-back answer included): in flight as a client sees it.
    let _in_flight = appended_session(&route, &request).map(|id| state.stats.append_arriving(&id));
    let Some(rule) = state.faults.take(&route) else {
        return timed(&state, &route, next.run(request)).await;
    };
    state.stats.count_injected(rule.kind);
    match rule.kind {
        FaultKind::Status429 => ApiError::RateLimited {
            reason: "too_many_requests",
            retry_after: Some(rule.retry_after.unwrap_or(1)),
        }
        .into_response(),
        FaultKind::Status503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable (emulator fault)",
        )
            .into_response(),
        FaultKind::ExpiredToken => ApiError::Auth("expired_access_token").into_response(),
        FaultKind::DropBefore => drop_connection(),
        FaultKind::DropAfter => {
            let response = next.run(request).await;
            drop(response);
            drop_connection()
        }
        FaultKind::Error => {
            let status =
                StatusCode::from_u16(rule.status.unwrap_or(409)).unwrap_or(StatusCode::CONFLICT);
            let body = rule.body.unwrap_or_else(|| error_body(tag("other")));
            json_response(status, &body)
        }
        FaultKind::DelayAfter => {
            let response = timed(&state, &route, next.run(request)).await;
            let delay = std::time::Duration::from_millis(rule.delay_ms.unwrap_or(1000));
            tokio::time::sleep(delay).await;
            response
        }
        FaultKind::CutBody => {
            let response = timed(&state, &route, next.run(request)).await;
            cut_body(response, rule.after_bytes.unwrap_or(64 * 1024))
        }
    }
}

/// `response` with its body cut after `after` bytes: the stream then fails, and hyper drops the
/// connection short of the promised Content-Length.
fn cut_body(response: Response, after: u64) -> Response {
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream();
    let cut = futures::stream::unfold(Some((body, after)), |state| async move {
        let (mut body, left) = state?;
        if left == 0 {
            // A pause first, so that hyper flushes what went before instead of dropping it
            // with the connection.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let cut = std::io::Error::other("emulator fault: body cut");
            return Some((Err(cut), None));
        }
        match body.next().await? {
            Ok(mut chunk) => {
                chunk.truncate(left.min(chunk.len() as u64) as usize);
                let left = left - chunk.len() as u64;
                Some((Ok(chunk), Some((body, left))))
            }
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Response::from_parts(parts, axum::body::Body::from_stream(cut))
}

pub async fn set_faults(State(state): State<Arc<AppState>>, Json(set): Json<FaultSet>) -> Response {
    *state.faults.rules() = set.rules;
    Json(json!({})).into_response()
}

pub async fn clear_faults(State(state): State<Arc<AppState>>) -> Response {
    state.faults.rules().clear();
    Json(json!({})).into_response()
}

pub async fn get_stats(State(state): State<Arc<AppState>>) -> Response {
    let counts = state.stats.counts().clone();
    let busy_ms: BTreeMap<String, f64> = state
        .stats
        .busy_micros()
        .iter()
        .map(|(route, micros)| (route.clone(), *micros as f64 / 1000.0))
        .collect();
    let injected = state.stats.injected().clone();
    let batch_entries = state.stats.batch_entries.load(Ordering::Relaxed);
    let concurrent_sessions = state.stats.concurrent_sessions.load(Ordering::Relaxed);
    let peak_appends = state.stats.peak_appends_in_flight.load(Ordering::Relaxed);
    let downloads = &state.stats.downloads;
    Json(json!({
        "requests": counts,
        "busy_ms": busy_ms,
        "write_lock_refusals": state.write_locks.refusals(),
        "rate_limit_refusals": state.rate_limits.refusals(),
        "batch_entries": batch_entries,
        "concurrent_sessions": concurrent_sessions,
        "peak_appends_in_flight": peak_appends,
        "faults_injected": injected,
        "downloads_in_flight": downloads.now.load(Ordering::SeqCst),
        "peak_downloads_in_flight": downloads.peak.load(Ordering::SeqCst),
    }))
    .into_response()
}

pub async fn reset_stats(State(state): State<Arc<AppState>>) -> Response {
    state.stats.counts().clear();
    state.stats.busy_micros().clear();
    state.stats.injected().clear();
    state.stats.batch_entries.store(0, Ordering::Relaxed);
    state.stats.concurrent_sessions.store(0, Ordering::Relaxed);
    state
        .stats
        .peak_appends_in_flight
        .store(0, Ordering::Relaxed);
    state.stats.downloads.reset_peak();
    state.write_locks.reset_count();
    state.rate_limits.reset_count();
    Json(json!({})).into_response()
}

pub async fn expire_tokens(State(state): State<Arc<AppState>>) -> Response {
    state.tokens.expire_all();
    Json(json!({})).into_response()
}
