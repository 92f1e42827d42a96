//! files/upload and the upload session routes (start, append_v2, finish).
//!
//! Arguments come from `Dropbox-API-Arg`; bodies must be `application/octet-stream`, are
//! streamed to disk and limited to 150 MiB a request. Session rules follow the spec:
//! sequential sessions take appends in order at the exact offset (else `incorrect_offset` with
//! the right one); concurrent sessions take 4 MiB-aligned pieces in any order, with data neither
//! at start nor at finish. A piece that overlaps data the session already holds (a repeat whose
//! first try landed, its answer lost) is refused with `incorrect_offset`, as the spec describes
//! that error ("a previous request was received and processed successfully but the client did
//! not receive the response"); its `correct_offset` is where the session's data from 0 ends,
//! which says little about a concurrent session. Any append after the closing piece that does
//! not fill a gap before it is `closed`. A commit that fails with a WriteError keeps the data in a session
//! (a single upload reports that session's id in UploadWriteFailed) so finish can be retried.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller::Caller;
use super::commit::{commit_file, CommitError, CommitInfoArg};
use super::content_hash::{content_hash, ContentHasher};
use super::error::{json_response, nested, tag, ApiError, ApiResult};
use super::server::{AppState, Call};
use super::sessions::{
    unix_now, within_max_size, SessionState, CONCURRENT_UNIT, SESSION_LIFETIME_SECS,
};
use super::spool::{
    hash_file, receive, receive_continuing, receive_with_blocks, Continued, ReceiveError, Received,
    REQUEST_LIMIT,
};
use super::wire::check_upload_content_type;
use super::write_lock::{self, Busy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadArg {
    path: String,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default)]
    autorename: bool,
    #[serde(default)]
    client_modified: Option<String>,
    #[serde(default)]
    mute: bool,
    #[serde(default)]
    property_groups: Option<Value>,
    #[serde(default)]
    strict_conflict: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

impl UploadArg {
    fn split(self) -> (CommitInfoArg, Option<String>) {
        let commit = CommitInfoArg {
            path: self.path,
            mode: self.mode,
            autorename: self.autorename,
            client_modified: self.client_modified,
            mute: self.mute,
            property_groups: self.property_groups,
            strict_conflict: self.strict_conflict,
        };
        (commit, self.content_hash)
    }
}

/// Sha256HexHash: exactly 64 characters.
fn check_hash_arg(route: &str, hash: &Option<String>) -> ApiResult<()> {
    match hash {
        Some(hash) if hash.len() != 64 => Err(ApiError::bad_request(
            route,
            format!("content_hash: '{hash}' must be 64 characters long"),
        )),
        _ => Ok(()),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Common checks of every upload-style call before its body is read.
fn check_upload_call(call: &Call, too_large: Value) -> ApiResult<()> {
    check_upload_content_type(&call.route, &call.headers)?;
    if declared_length(&call.headers).is_some_and(|len| len > REQUEST_LIMIT) {
        return Err(ApiError::Route(too_large));
    }
    Ok(())
}

/// Maps a failed receive to the route error (`too_large`) or a transport failure.
fn receive_failed(route: &str, err: ReceiveError, too_large: Value) -> ApiError {
    match err {
        ReceiveError::TooLarge => ApiError::Route(too_large),
        ReceiveError::Body(message) => {
            ApiError::bad_request(route, format!("request body: {message}"))
        }
        ReceiveError::Io(err) => ApiError::Internal(err.to_string()),
    }
}

fn ok_json(value: &Value) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, value))
}

pub async fn upload(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let arg: UploadArg = call.header_arg()?;
    let route = call.route.clone();
    let (commit_arg, content_hash) = arg.split();
    check_hash_arg(&route, &content_hash)?;
    let (commit, malformed) = commit_arg.validate(&route)?;
    check_upload_call(&call, tag("payload_too_large"))?;
    let temp = tempfile::Builder::new().tempfile_in(state.layout.tmp())?;
    let (file, temp_path) = temp.into_parts();
    let received = receive(call.body, file, REQUEST_LIMIT)
        .await
        .map_err(|err| receive_failed(&route, err, tag("payload_too_large")))?;
    if content_hash.is_some_and(|hash| hash != received.content_hash) {
        return Err(ApiError::Route(tag("content_hash_mismatch")));
    }
    // The namespace's lock is taken for the commit only, once the bytes are in.
    let held = match write_lock::begin(state, &caller) {
        Ok(held) => Some(held),
        Err(Busy::RouteError) => None,
        Err(busy) => return Err(busy.into_error(&route)),
    };
    let outcome = match &held {
        _ if malformed => Err(CommitError::Write(tag("malformed_path"))),
        None => Err(CommitError::Write(write_lock::write_error())),
        Some(_) => commit_file(state, &caller, &commit, &temp_path, &received),
    };
    if let Some(held) = held {
        held.finish().await;
    }
    match outcome {
        Ok(metadata) => ok_json(&metadata),
        Err(CommitError::Write(reason)) => {
            let session = SessionState {
                concurrent: false,
                tree: caller.view.tree.clone(),
                closed: true,
                size: received.size,
                pieces: Default::default(),
                end: None,
                started: unix_now(),
            };
            let session_id = state.sessions.create(&session)?;
            let data = state
                .sessions
                .data_path(&session_id)
                .ok_or(std::io::ErrorKind::NotFound)?;
            temp_path.persist(data).map_err(|err| err.error)?;
            Err(ApiError::Route(json!({
                ".tag": "path",
                "reason": reason,
                "upload_session_id": session_id,
            })))
        }
        Err(CommitError::Io(err)) => Err(err.into()),
    }
}

/// files.UploadSessionType (absent = sequential).
fn is_concurrent(route: &str, session_type: Option<&Value>) -> ApiResult<bool> {
    let tag = match session_type {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::String(tag)) => tag.as_str(),
        Some(value) => value
            .get(".tag")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    };
    match tag {
        "sequential" => Ok(false),
        "concurrent" => Ok(true),
        other => Err(ApiError::bad_request(
            route,
            format!("session_type: unknown tag '{other}'"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartArg {
    #[serde(default)]
    close: bool,
    #[serde(default)]
    session_type: Option<Value>,
    #[serde(default)]
    content_hash: Option<String>,
}

pub async fn session_start(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let arg: StartArg = call.header_arg()?;
    let route = call.route.clone();
    check_hash_arg(&route, &arg.content_hash)?;
    let concurrent = is_concurrent(&route, arg.session_type.as_ref())?;
    check_upload_call(&call, tag("payload_too_large"))?;
    if concurrent && arg.close {
        return Err(ApiError::Route(tag("concurrent_session_close_not_allowed")));
    }
    let mut session = SessionState {
        concurrent,
        tree: caller.view.tree.clone(),
        closed: arg.close,
        size: 0,
        pieces: Default::default(),
        end: None,
        started: unix_now(),
    };
    let id = state.sessions.create(&session)?;
    if concurrent {
        state.stats.count_concurrent_session();
    }
    let data = state
        .sessions
        .data_path(&id)
        .ok_or(std::io::ErrorKind::NotFound)?;
    let file = std::fs::OpenOptions::new().write(true).open(&data)?;
    let outcome = receive_continuing(
        call.body,
        file,
        0,
        REQUEST_LIMIT,
        ContentHasher::new(),
        false,
    )
    .await;
    let failure = match &outcome {
        Err(_) => None,
        Ok((received, _)) if concurrent && received.size > 0 => {
            Some("concurrent_session_data_not_allowed")
        }
        // A fresh running hash covers exactly this call's body.
        Ok((_, running))
            if arg
                .content_hash
                .as_ref()
                .is_some_and(|h| *h != running.clone().finish()) =>
        {
            Some("content_hash_mismatch")
        }
        Ok(_) => None,
    };
    let received = match (outcome, failure) {
        (Ok((received, running)), None) => {
            if !concurrent {
                state.sessions.set_running_hash(&id, received.size, running);
            }
            received
        }
        (Ok(_), Some(error)) => {
            state.sessions.remove(&id);
            return Err(ApiError::Route(tag(error)));
        }
        (Err(err), _) => {
            state.sessions.remove(&id);
            return Err(receive_failed(&route, err, tag("payload_too_large")));
        }
    };
    session.size = received.size;
    state.sessions.save(&id, &session)?;
    ok_json(&json!({ "session_id": id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub session_id: String,
    pub offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendArg {
    cursor: Cursor,
    #[serde(default)]
    close: bool,
    #[serde(default)]
    content_hash: Option<String>,
}

/// UploadSessionLookupError / AppendError `incorrect_offset` (a struct variant, inlined).
fn incorrect_offset(correct: u64) -> Value {
    json!({ ".tag": "incorrect_offset", "correct_offset": correct })
}

/// The session if it exists, has not expired and belongs to this caller's tree.
fn owned_session(state: &AppState, caller: &Caller, id: &str) -> Option<SessionState> {
    let lifetime = state
        .realism
        .get()
        .session_lifetime_secs
        .unwrap_or(SESSION_LIFETIME_SECS);
    let session = state.sessions.load(id)?;
    if session.expired(lifetime, unix_now()) {
        state.sessions.remove(id);
        return None;
    }
    (session.tree == caller.view.tree).then_some(session)
}

/// The session may not grow past Dropbox's largest file.
fn check_max_size(session: &SessionState, received: &Continued) -> Result<(), Value> {
    within_max_size(session.size, received.size)
        .then_some(())
        .ok_or(tag("too_large"))
}

pub async fn session_append(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let arg: AppendArg = call.header_arg()?;
    let route = call.route.clone();
    check_hash_arg(&route, &arg.content_hash)?;
    check_upload_call(&call, tag("payload_too_large"))?;
    let id = arg.cursor.session_id.clone();
    let session = owned_session(state, &caller, &id).ok_or(ApiError::Route(tag("not_found")))?;
    if session.concurrent {
        append_concurrent(state, &caller, call, arg).await?;
    } else {
        let lock = state.sessions.lock_of(&id);
        let _guard = lock.lock().await;
        let mut session =
            owned_session(state, &caller, &id).ok_or(ApiError::Route(tag("not_found")))?;
        if session.closed {
            return Err(ApiError::Route(tag("closed")));
        }
        if arg.cursor.offset != session.size {
            return Err(ApiError::Route(incorrect_offset(session.size)));
        }
        let hash_call = arg.content_hash.is_some();
        let check = |received: &Continued| {
            check_max_size(&session, received)?;
            call_hash_matches(&arg.content_hash, received)
        };
        let received =
            append_sequential(state, &id, &session, call.body, &route, hash_call, check).await?;
        session.size += received.size;
        session.closed = arg.close;
        state.sessions.save(&id, &session)?;
    }
    ok_json(&Value::Null)
}

fn check_call_hash(expected: &Option<String>, actual: Option<&str>) -> bool {
    expected
        .as_ref()
        .is_none_or(|hash| Some(hash.as_str()) == actual)
}

/// The `content_hash` argument of an append or finish covers "the file content uploaded in
/// this call" (the spec's words), never what earlier calls sent.
fn call_hash_matches(expected: &Option<String>, received: &Continued) -> Result<(), Value> {
    check_call_hash(expected, received.call_hash.as_deref())
        .then_some(())
        .ok_or(tag("content_hash_mismatch"))
}

/// Appends a body to a sequential session's data at its current size; on any failure (also a
/// `check` refusing what arrived) the data is cut back, so the session is as before.
async fn append_sequential(
    state: &AppState,
    id: &str,
    session: &SessionState,
    body: axum::body::Body,
    route: &str,
    hash_call: bool,
    check: impl FnOnce(&Continued) -> Result<(), Value>,
) -> ApiResult<Continued> {
    let data = state
        .sessions
        .data_path(id)
        .ok_or(std::io::ErrorKind::NotFound)?;
    let file = std::fs::OpenOptions::new().write(true).open(&data)?;
    let running = state.sessions.running_hash(id, session.size);
    let outcome = receive_continuing(
        body,
        file,
        session.size,
        REQUEST_LIMIT,
        running.clone().unwrap_or_default(),
        hash_call,
    )
    .await;
    let failure = match &outcome {
        Ok((received, _)) => check(received).err().map(ApiError::Route),
        Err(_) => None,
    };
    let outcome = outcome.map(|(received, hasher)| {
        // Only a hash that covered the session from byte 0 is worth keeping.
        if running.is_some() && failure.is_none() {
            state
                .sessions
                .set_running_hash(id, session.size + received.size, hasher);
        }
        received
    });
    match (outcome, failure) {
        (Ok(received), None) => Ok(received),
        (outcome, failure) => {
            let file = std::fs::OpenOptions::new().write(true).open(&data)?;
            file.set_len(session.size)?;
            Err(match (outcome, failure) {
                (_, Some(failure)) => failure,
                (Err(err), None) => receive_failed(route, err, tag("payload_too_large")),
                (Ok(_), None) => unreachable!("handled above"),
            })
        }
    }
}

async fn append_concurrent(
    state: &AppState,
    caller: &Caller,
    call: Call,
    arg: AppendArg,
) -> ApiResult<()> {
    let id = arg.cursor.session_id.clone();
    let offset = arg.cursor.offset;
    if !offset.is_multiple_of(CONCURRENT_UNIT) {
        return Err(ApiError::Route(tag("concurrent_session_invalid_offset")));
    }
    let temp = state.sessions.temp_in(&id)?;
    let (file, temp_path) = temp.into_parts();
    let (received, blocks) = receive_with_blocks(call.body, file, REQUEST_LIMIT)
        .await
        .map_err(|err| receive_failed(&call.route, err, tag("payload_too_large")))?;
    if !arg.close && (received.size == 0 || !received.size.is_multiple_of(CONCURRENT_UNIT)) {
        return Err(ApiError::Route(tag("concurrent_session_invalid_data_size")));
    }
    if !check_call_hash(&arg.content_hash, Some(&received.content_hash)) {
        return Err(ApiError::Route(tag("content_hash_mismatch")));
    }
    if !within_max_size(offset, received.size) {
        return Err(ApiError::Route(tag("too_large")));
    }
    let lock = state.sessions.lock_of(&id);
    let _guard = lock.lock().await;
    let mut session = owned_session(state, caller, &id).ok_or(ApiError::Route(tag("not_found")))?;
    let piece_end = offset + received.size;
    match session.end {
        // After the closing piece, only the gaps before it may still arrive.
        Some(end) if arg.close || piece_end > end => return Err(ApiError::Route(tag("closed"))),
        _ => {}
    }
    if session.overlaps(offset, piece_end) {
        return Err(ApiError::Route(incorrect_offset(session.contiguous_end())));
    }
    if arg.close {
        session.closed = true;
        session.end = Some(piece_end);
    }
    let data = state
        .sessions
        .data_path(&id)
        .ok_or(std::io::ErrorKind::NotFound)?;
    write_piece(temp_path, data, offset).await?;
    state.sessions.set_piece_blocks(&id, offset, blocks);
    session.pieces.insert(offset, received.size);
    state.sessions.save(&id, &session)?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishArg {
    cursor: Cursor,
    commit: CommitInfoArg,
    #[serde(default)]
    content_hash: Option<String>,
}

pub async fn session_finish(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let arg: FinishArg = call.header_arg()?;
    let route = call.route.clone();
    check_hash_arg(&route, &arg.content_hash)?;
    let (commit, malformed) = arg.commit.validate(&route)?;
    check_upload_call(&call, tag("payload_too_large"))?;
    let id = arg.cursor.session_id.clone();
    let lookup_failed = |error: Value| ApiError::Route(nested("lookup_failed", error));
    let lock = state.sessions.lock_of(&id);
    let _guard = lock.lock().await;
    let mut session =
        owned_session(state, &caller, &id).ok_or_else(|| lookup_failed(tag("not_found")))?;
    // Taken before the session changes, so that a refused finish can be sent again as it was.
    let held = write_lock::begin(state, &caller).map_err(|busy| busy.into_error(&route))?;
    let (staged, whole) = if session.concurrent {
        let temp = state.sessions.temp_in(&id)?;
        let (file, _discard) = temp.into_parts();
        let received = receive(call.body, file, REQUEST_LIMIT)
            .await
            .map_err(|err| receive_failed(&route, err, tag("payload_too_large")))?;
        if received.size > 0 {
            return Err(ApiError::Route(tag("concurrent_session_data_not_allowed")));
        }
        // This call uploads nothing, so only the hash of nothing matches.
        if !check_call_hash(&arg.content_hash, Some(&content_hash(b""))) {
            return Err(ApiError::Route(tag("content_hash_mismatch")));
        }
        assemble_concurrent(state, &id, &session, arg.cursor.offset).await?
    } else {
        if arg.cursor.offset != session.size {
            return Err(lookup_failed(incorrect_offset(session.size)));
        }
        let hash_call = arg.content_hash.is_some();
        let check = |received: &Continued| {
            check_max_size(&session, received).map_err(|e| nested("lookup_failed", e))?;
            call_hash_matches(&arg.content_hash, received)
        };
        let received =
            append_sequential(state, &id, &session, call.body, &route, hash_call, check).await?;
        session.size += received.size;
        session.closed = true;
        state.sessions.save(&id, &session)?;
        sequential_whole(state, &id, &session).await?
    };
    if malformed {
        return Err(ApiError::Route(nested("path", tag("malformed_path"))));
    }
    let outcome = commit_file(state, &caller, &commit, staged.path(), &whole);
    held.finish().await;
    match outcome {
        Ok(metadata) => {
            state.sessions.remove(&id);
            ok_json(&metadata)
        }
        Err(CommitError::Write(error)) => Err(ApiError::Route(nested("path", error))),
        Err(CommitError::Io(err)) => Err(err.into()),
    }
}

/// A concurrent session's pieces joined into one file, once it is closed and complete and
/// `offset` is its size (UploadSessionFinishError otherwise).
async fn assemble_concurrent(
    state: &AppState,
    id: &str,
    session: &SessionState,
    offset: u64,
) -> ApiResult<(Staged, Received)> {
    if !session.closed {
        return Err(ApiError::Route(tag("concurrent_session_not_closed")));
    }
    let size = session
        .assembled_size()
        .ok_or(ApiError::Route(tag("concurrent_session_missing_data")))?;
    if offset != size {
        return Err(ApiError::Route(nested(
            "lookup_failed",
            incorrect_offset(size),
        )));
    }
    let data = state
        .sessions
        .data_path(id)
        .ok_or(std::io::ErrorKind::NotFound)?;
    let offsets: Vec<u64> = session.pieces.keys().copied().collect();
    // Every piece but the closing one is whole blocks, so the pieces' block digests, joined,
    // are the file's: finishing a large file costs no pass of SHA-256 (after a restart,
    // which forgets the digests, the file is hashed once).
    let whole = match state.sessions.joined_hash(id, &offsets) {
        Some(content_hash) => Received { size, content_hash },
        None => hash_file(&data).await?,
    };
    Ok((Staged(data), whole))
}

/// Puts a received piece (checked, and not overlapping any other) in place in the session's
/// data file: the file is whole when the pieces are, and finishing moves it, with no copy.
/// Only ranges that no recorded piece holds are written, so a refused or repeated piece can
/// never change bytes already accepted.
async fn write_piece(
    piece: tempfile::TempPath,
    data: std::path::PathBuf,
    offset: u64,
) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Seek, SeekFrom};
        let mut input = std::fs::File::open(&piece)?;
        let mut output = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data)?;
        output.seek(SeekFrom::Start(offset))?;
        // An in-kernel copy (copy_file_range) from the piece's temp file.
        std::io::copy(&mut input, &mut output)?;
        drop(piece);
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A sequential session's data file and the whole content's size and hash.
async fn sequential_whole(
    state: &AppState,
    id: &str,
    session: &SessionState,
) -> ApiResult<(Staged, Received)> {
    let data = state
        .sessions
        .data_path(id)
        .ok_or(std::io::ErrorKind::NotFound)?;
    let whole = match state.sessions.running_hash(id, session.size) {
        Some(hasher) => Received {
            size: session.size,
            content_hash: hasher.finish(),
        },
        None => hash_file(&data).await?,
    };
    Ok((Staged(data), whole))
}

/// A session that must be complete already (an entry of finish_batch, which carries no data):
/// its content and hash, or the entry's UploadSessionFinishError as a route error. The
/// caller holds the session's lock.
pub async fn stage_closed(
    state: &AppState,
    caller: &Caller,
    cursor: &Cursor,
) -> ApiResult<(Staged, Received)> {
    let lookup_failed = |error: Value| ApiError::Route(nested("lookup_failed", error));
    let id = &cursor.session_id;
    let session =
        owned_session(state, caller, id).ok_or_else(|| lookup_failed(tag("not_found")))?;
    if session.concurrent {
        return assemble_concurrent(state, id, &session, cursor.offset).await;
    }
    if !session.closed {
        return Err(lookup_failed(tag("not_closed")));
    }
    if cursor.offset != session.size {
        return Err(lookup_failed(incorrect_offset(session.size)));
    }
    sequential_whole(state, id, &session).await
}

/// The complete content waiting for its commit: a session's data file (kept for a retried
/// finish).
pub struct Staged(std::path::PathBuf);

impl Staged {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}
