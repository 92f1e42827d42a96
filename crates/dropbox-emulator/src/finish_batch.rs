//! files/upload_session/finish_batch_v2, finish_batch and finish_batch/check: many closed
//! upload sessions committed by one request.
//!
//! Dropbox's advice for bulk uploads is to upload each file's data into a session in
//! parallel and commit them together, because commits into one namespace are serialised (the
//! `write_lock` model): a batch is one commit for the lock, however many entries it holds. So
//! the whole batch runs under one hold of the namespace's lock, and its entries are applied
//! one after the other in their order.
//!
//! The routes are RPCs (`UploadSessionFinishBatchArg {entries: List(UploadSessionFinishArg,
//! max_items=1000)}` in the body). Their error type is Void, so nothing about one entry can
//! fail the call: each entry answers at its position, `{".tag": "success", ...FileMetadata}`
//! (a struct member, inlined) or `{".tag": "failure", "failure": UploadSessionFinishError}`.
//! An entry whose session is not closed is `lookup_failed/not_closed` (a concurrent one,
//! `concurrent_session_not_closed`); its `content_hash` covers the data of this call, which
//! is none. Too many entries, or an argument that does not parse, is a 400 for the whole call.
//!
//! A batch that meets a held lock: with no route error to carry it, the whole call is refused
//! as a 429 RateLimitError `too_many_write_operations` (the `rate_limit` shape); in the
//! `route_error` shape every entry fails with the union's own `too_many_write_operations`
//! member instead. Either way nothing of the batch was applied.
//!
//! finish_batch (v1, deprecated) is the asynchronous form: it answers an `async_job_id` that
//! finish_batch/check turns into the same result (`{".tag": "complete", "entries": [...]}`).
//! Here the job has run by the time its id is answered, so a check never sees `in_progress`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::caller::Caller;
use super::commit::{commit_file, CommitError, CommitInfoArg};
use super::content_hash::content_hash;
use super::disk::random_token;
use super::error::{json_response, nested, tag, ApiError, ApiResult};
use super::server::{AppState, Call};
use super::upload::{stage_closed, Cursor};
use super::wire;
use super::write_lock::{self, Busy};

/// UploadSessionFinishBatchArg.entries: max_items.
const MAX_ENTRIES: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchArg {
    entries: Vec<EntryArg>,
}

/// UploadSessionFinishArg.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryArg {
    cursor: Cursor,
    commit: CommitInfoArg,
    #[serde(default)]
    content_hash: Option<String>,
}

/// An entry whose argument is well formed.
struct Entry {
    cursor: Cursor,
    commit: super::commit::Commit,
    malformed_path: bool,
    content_hash: Option<String>,
}

/// The results of finish_batch jobs, by `async_job_id`, with the tree of the account that
/// launched each (no other account can check it).
#[derive(Default)]
pub struct BatchJobs {
    done: Mutex<HashMap<String, (String, Value)>>,
}

/// Checks the whole argument the way Dropbox does before anything is applied: a 400 if it
/// does not fit the spec.
fn parse(route: &str, body: &[u8], headers: &axum::http::HeaderMap) -> ApiResult<Vec<Entry>> {
    let arg: BatchArg = wire::rpc_arg(route, headers, body)?;
    if arg.entries.len() > MAX_ENTRIES {
        return Err(ApiError::bad_request(
            route,
            format!(
                "request body: entries: list has {} items, more than the maximum of {MAX_ENTRIES}",
                arg.entries.len()
            ),
        ));
    }
    arg.entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            if let Some(hash) = entry.content_hash.as_ref().filter(|h| h.len() != 64) {
                return Err(ApiError::bad_request(
                    route,
                    format!("request body: entries[{index}].content_hash: '{hash}' must be 64 characters long"),
                ));
            }
            let (commit, malformed_path) = entry.commit.validate(route)?;
            Ok(Entry {
                cursor: entry.cursor,
                commit,
                malformed_path,
                content_hash: entry.content_hash,
            })
        })
        .collect()
}

fn success(metadata: Value) -> Value {
    let mut entry = Map::new();
    entry.insert(".tag".into(), Value::String("success".into()));
    if let Value::Object(fields) = metadata {
        entry.extend(fields);
    }
    Value::Object(entry)
}

fn failure(error: Value) -> Value {
    nested("failure", error)
}

/// Applies one entry (the namespace's lock is held); its result entry, or an emulator failure.
async fn finish_entry(state: &AppState, caller: &Caller, entry: &Entry) -> ApiResult<Value> {
    if entry.malformed_path {
        return Ok(failure(nested("path", tag("malformed_path"))));
    }
    // The entry's hash covers what this call uploads for it: nothing.
    if entry
        .content_hash
        .as_ref()
        .is_some_and(|hash| *hash != content_hash(b""))
    {
        return Ok(failure(tag("content_hash_mismatch")));
    }
    let id = &entry.cursor.session_id;
    let lock = state.sessions.lock_of(id);
    let _guard = lock.lock().await;
    let (staged, whole) = match stage_closed(state, caller, &entry.cursor).await {
        Ok(staged) => staged,
        Err(ApiError::Route(error)) => return Ok(failure(error)),
        Err(other) => return Err(other),
    };
    match commit_file(state, caller, &entry.commit, staged.path(), &whole) {
        Ok(metadata) => {
            state.sessions.remove(id);
            Ok(success(metadata))
        }
        Err(CommitError::Write(error)) => Ok(failure(nested("path", error))),
        Err(CommitError::Io(err)) => Err(err.into()),
    }
}

/// Runs a batch: every entry under one hold of the namespace's lock. The result entries, in
/// the order of the arguments.
async fn run(state: &AppState, caller: &Caller, call: Call) -> ApiResult<Vec<Value>> {
    let (route, headers, body) = call.small_body().await?;
    let entries = parse(&route, &body, &headers)?;
    let held = match write_lock::begin(state, caller) {
        Ok(held) => held,
        Err(Busy::RouteError) => {
            let refused = failure(write_lock::write_error());
            return Ok(vec![refused; entries.len()]);
        }
        Err(busy) => return Err(busy.into_error(&route)),
    };
    let mut results = Vec::with_capacity(entries.len());
    for entry in &entries {
        results.push(finish_entry(state, caller, entry).await?);
    }
    held.finish().await;
    state.stats.count_batch_entries(entries.len() as u64);
    Ok(results)
}

/// files/upload_session/finish_batch_v2: UploadSessionFinishBatchResult.
pub async fn finish_batch_v2(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let entries = run(state, &caller, call).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "entries": entries }),
    ))
}

/// files/upload_session/finish_batch: UploadSessionFinishBatchLaunch, always `async_job_id`.
pub async fn finish_batch(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let entries = run(state, &caller, call).await?;
    let job_id = format!("dbjid:{}", random_token(40));
    let complete = json!({ ".tag": "complete", "entries": entries });
    state
        .batch_jobs
        .done
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(job_id.clone(), (caller.view.tree.clone(), complete));
    let launch = json!({ ".tag": "async_job_id", "async_job_id": job_id });
    Ok(json_response(StatusCode::OK, &launch))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollArg {
    async_job_id: String,
}

/// files/upload_session/finish_batch/check: UploadSessionFinishBatchJobStatus, or PollError.
pub fn finish_batch_check(
    state: &AppState,
    caller: &Caller,
    _route: &str,
    arg: PollArg,
) -> ApiResult<Value> {
    let jobs = state
        .batch_jobs
        .done
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    jobs.get(&arg.async_job_id)
        .filter(|(tree, _)| *tree == caller.view.tree)
        .map(|(_, status)| status.clone())
        .ok_or(ApiError::Route(tag("invalid_async_job_id")))
}
