//! The namespace write lock (realism model `write_lock`): Dropbox commits one change at a time
//! per namespace, and a commit that overlaps another in the same namespace is refused with
//! `too_many_write_operations` (Dropbox did nothing; the client should try again later).
//!
//! A real commit takes time, and a client that waits for its answer never meets its own lock.
//! So each commit (files/upload, upload_session/finish, a whole finish_batch, create_folder_v2,
//! delete_v2, move_v2, copy_v2) takes its namespace's lock before it is applied and keeps it for `hold_ms` before
//! it answers; a commit arriving meanwhile is refused. Without the hold, commits in the emulator
//! take microseconds and would almost never overlap, so a test could not show what a client
//! does about the lock.
//!
//! Dropbox refuses in two shapes, and the model gives either or alternates between them:
//! - a 409 with the route's own member: `WriteError.too_many_write_operations` where the route's
//!   error holds a WriteError (`path/…` for create_folder_v2, `to/…` for move_v2 and copy_v2,
//!   `path/reason/…` with an `upload_session_id` for files/upload, as UploadWriteFailed
//!   requires), or the union's own `too_many_write_operations` member where it has one
//!   (DeleteError, UploadSessionFinishError);
//! - a 429 RateLimitError whose reason is `too_many_write_operations`, with `retry_after` and a
//!   `Retry-After` header only when configured (Dropbox often sends none).
//!
//! The lock is per namespace the call addresses (the caller's home, or the one
//! `Dropbox-API-Path-Root` names). Refusals are counted for `GET /__emulator/stats`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::caller::Caller;
use super::error::{nested, tag, ApiError};
use super::server::AppState;

const TOO_MANY_WRITE_OPERATIONS: &str = "too_many_write_operations";

/// The model's settings (`"write_lock": {...}` in the realism JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteLock {
    /// How long each commit holds its namespace's lock before it answers, in milliseconds.
    pub hold_ms: u64,
    /// How a commit that meets a held lock is refused.
    pub shape: Shape,
    /// Seconds in the 429 shape's `retry_after` and `Retry-After`; none if absent.
    pub retry_after: Option<u64>,
}

impl Default for WriteLock {
    fn default() -> Self {
        Self {
            hold_ms: 200,
            shape: Shape::Alternate,
            retry_after: None,
        }
    }
}

/// The refusal's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// 409 with the route's own error member.
    RouteError,
    /// 429 RateLimitError with reason `too_many_write_operations`.
    RateLimit,
    /// One, then the other, refusal after refusal.
    Alternate,
}

/// A refusal: the namespace was busy.
#[derive(Debug)]
pub enum Busy {
    /// A 409 with the route's member (files/upload builds its own, with a session).
    RouteError,
    /// A 429, ready to send.
    RateLimit(ApiError),
}

impl Busy {
    /// The error to answer `route` with. files/upload's 409 needs an upload session, which
    /// only its handler can make; it matches [`Busy::RouteError`] itself.
    pub fn into_error(self, route: &str) -> ApiError {
        match self {
            Busy::RateLimit(error) => error,
            Busy::RouteError => ApiError::Route(route_error(route)),
        }
    }
}

/// The route's own error member for the lock, as its error union in the spec has it.
fn route_error(route: &str) -> Value {
    let write_error = tag(TOO_MANY_WRITE_OPERATIONS);
    match route {
        "files/create_folder_v2" => nested("path", write_error),
        "files/move_v2" | "files/copy_v2" => nested("to", write_error),
        // DeleteError and UploadSessionFinishError have a member of their own.
        _ => write_error,
    }
}

/// The WriteError a refused files/upload puts in its UploadWriteFailed `reason`.
pub fn write_error() -> Value {
    tag(TOO_MANY_WRITE_OPERATIONS)
}

/// The locks held now, by namespace id.
#[derive(Default)]
pub struct WriteLocks {
    held: Mutex<HashSet<String>>,
    /// Refusals so far (since start or the last stats reset); also picks the next shape.
    refusals: AtomicU64,
}

impl WriteLocks {
    fn held(&self) -> MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many commits were refused since start or the last [`WriteLocks::reset_count`].
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    pub fn reset_count(&self) {
        self.refusals.store(0, Ordering::Relaxed);
    }

    /// Takes `namespace`'s lock for one commit, or says it is busy.
    fn take(&self, model: &WriteLock, namespace: &str) -> Result<Held<'_>, Busy> {
        if self.held().insert(namespace.to_string()) {
            return Ok(Held {
                locks: Some(self),
                namespace: namespace.to_string(),
                hold: Duration::from_millis(model.hold_ms),
            });
        }
        let refusal = self.refusals.fetch_add(1, Ordering::Relaxed);
        let rate_limit = match model.shape {
            Shape::RouteError => false,
            Shape::RateLimit => true,
            Shape::Alternate => refusal % 2 == 1,
        };
        Err(match rate_limit {
            true => Busy::RateLimit(ApiError::RateLimited {
                reason: TOO_MANY_WRITE_OPERATIONS,
                retry_after: model.retry_after,
            }),
            false => Busy::RouteError,
        })
    }
}

/// One commit's hold on its namespace's lock (none while the model is off). Dropping it
/// releases the lock, so a commit cut off by a dropped connection does not keep it.
#[must_use = "the lock is released when this is dropped"]
pub struct Held<'a> {
    locks: Option<&'a WriteLocks>,
    namespace: String,
    hold: Duration,
}

impl Held<'_> {
    /// Keeps the lock for the commit's time, then releases it.
    pub async fn finish(self) {
        if self.locks.is_some() && !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(locks) = self.locks {
            locks.held().remove(&self.namespace);
        }
    }
}

/// Takes the lock of the namespace `caller` addresses for one commit, if the model is on.
pub fn begin<'a>(state: &'a AppState, caller: &Caller) -> Result<Held<'a>, Busy> {
    match state.realism.get().write_lock {
        Some(model) => state.write_locks.take(&model, &caller.view.id),
        None => Ok(Held {
            locks: None,
            namespace: String::new(),
            hold: Duration::ZERO,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(shape: Shape) -> WriteLock {
        WriteLock {
            hold_ms: 0,
            shape,
            retry_after: None,
        }
    }

    #[test]
    fn a_second_commit_in_a_held_namespace_is_refused_and_others_are_not() {
        let locks = WriteLocks::default();
        let model = model(Shape::RouteError);
        let first = locks.take(&model, "1001").unwrap();
        assert!(matches!(locks.take(&model, "1001"), Err(Busy::RouteError)));
        let other = locks
            .take(&model, "2001")
            .expect("another namespace is free");
        drop(first);
        let again = locks.take(&model, "1001").expect("released when dropped");
        drop((other, again));
        assert_eq!(locks.refusals(), 1);
    }

    #[test]
    fn the_shapes_are_the_routes_members_or_a_rate_limit() {
        assert_eq!(
            route_error("files/create_folder_v2"),
            serde_json::json!({".tag": "path", "path": {".tag": "too_many_write_operations"}})
        );
        assert_eq!(
            route_error("files/move_v2"),
            serde_json::json!({".tag": "to", "to": {".tag": "too_many_write_operations"}})
        );
        assert_eq!(
            route_error("files/delete_v2"),
            tag("too_many_write_operations")
        );
        assert_eq!(
            route_error("files/upload_session/finish"),
            tag("too_many_write_operations")
        );

        let locks = WriteLocks::default();
        let alternate = model(Shape::Alternate);
        let _held = locks.take(&alternate, "1").unwrap();
        let shapes: Vec<bool> = (0..4)
            .map(|_| matches!(locks.take(&alternate, "1"), Err(Busy::RateLimit(_))))
            .collect();
        assert_eq!(shapes, [false, true, false, true]);
        let limited = model(Shape::RateLimit);
        assert!(matches!(
            locks.take(&limited, "1"),
            Err(Busy::RateLimit(ApiError::RateLimited {
                reason: "too_many_write_operations",
                retry_after: None
            }))
        ));
    }
}
