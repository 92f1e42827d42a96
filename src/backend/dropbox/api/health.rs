//! How an account's client is doing, for the operator: its last failure, its last success and
//! when its access token runs out.
//!
//! The transport records the outcome of every request once, when its retries are over (a try
//! that a retry then saved is not a failure of the account). Only failures that say something
//! about the account count as errors: its credentials, Dropbox being unreachable or failing,
//! rate limits, a full account. A path that is not there or already taken is an answer about
//! that path, which Dropbox gave with the account's credentials, so it counts as a success.
//! Nothing is cleared by a later success: the page compares `last_error_at` with `last_ok_at`.
//! The error is kept as its Display text, which never holds a token (`error`, `secret`).

use std::sync::Mutex;
use std::time::SystemTime;

use super::error::DropboxError;

/// A client's health at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// When the current access token expires; None before the first one (or with a fixed
    /// access token, whose expiry Dropbox does not tell).
    pub token_expires_at: Option<SystemTime>,
    /// The last request that failed for a reason of the account's (see the module doc).
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// The last request Dropbox answered with the account's credentials accepted.
    pub last_ok_at: Option<SystemTime>,
}

/// Where one client (and every clone of it) records its outcomes.
#[derive(Debug, Default)]
pub(super) struct HealthRecorder {
    outcomes: Mutex<Health>,
}

impl HealthRecorder {
    /// Records how a request ended, its retries included.
    pub fn request_done<T>(&self, result: &Result<T, DropboxError>) {
        self.request_done_at(result.as_ref().err(), SystemTime::now());
    }

    fn request_done_at(&self, error: Option<&DropboxError>, now: SystemTime) {
        let mut outcomes = self.lock();
        match error {
            Some(error) if concerns_the_account(error) => {
                outcomes.last_error = Some(error.to_string());
                outcomes.last_error_at = Some(now);
            }
            _ => outcomes.last_ok_at = Some(now),
        }
    }

    /// The outcomes so far, with the token's expiry as the token source knows it.
    pub fn snapshot(&self, token_expires_at: Option<SystemTime>) -> Health {
        Health {
            token_expires_at,
            ..self.lock().clone()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        // Each update is one assignment: a panicking holder cannot leave it half done.
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// False for answers about a path or a range (not found, conflict, a bad name, an upload
/// session's offset), which Dropbox gives a healthy account too.
fn concerns_the_account(error: &DropboxError) -> bool {
    match error {
        DropboxError::Route { .. } => error.is_insufficient_space(),
        DropboxError::RangeNotSatisfiable => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn route_error(error: serde_json::Value) -> DropboxError {
        DropboxError::Route {
            summary: String::new(),
            error,
        }
    }

    #[test]
    fn a_failure_is_kept_after_a_later_success() {
        let health = HealthRecorder::default();
        assert_eq!(health.snapshot(None), Health::default());
        health.request_done_at(Some(&DropboxError::Server { status: 503 }), at(10));
        health.request_done_at(None, at(20));
        let seen = health.snapshot(Some(at(99)));
        assert_eq!(
            seen.last_error.as_deref(),
            Some("Dropbox had a temporary server error (HTTP 503); try again later")
        );
        assert_eq!(seen.last_error_at, Some(at(10)));
        assert_eq!(seen.last_ok_at, Some(at(20)));
        assert_eq!(seen.token_expires_at, Some(at(99)));

        health.request_done_at(
            Some(&DropboxError::RefreshRejected {
                error: "invalid_grant".into(),
            }),
            at(30),
        );
        let seen = health.snapshot(None);
        assert_eq!(seen.last_error_at, Some(at(30)));
        assert!(
            seen.last_error.unwrap().contains("re-run dropgate auth"),
            "the newest failure replaces the older one"
        );
    }

    #[test]
    fn answers_about_a_path_are_not_failures_of_the_account() {
        let health = HealthRecorder::default();
        let not_found = route_error(json!({".tag": "path", "path": {".tag": "not_found"}}));
        let conflict = route_error(json!({".tag": "path", "path": {".tag": "conflict"}}));
        health.request_done_at(Some(&not_found), at(1));
        health.request_done_at(Some(&conflict), at(2));
        health.request_done_at(Some(&DropboxError::RangeNotSatisfiable), at(3));
        let seen = health.snapshot(None);
        assert_eq!(seen.last_error, None);
        assert_eq!(seen.last_ok_at, Some(at(3)));

        let full = route_error(json!({".tag": "path", "path": {".tag": "insufficient_space"}}));
        health.request_done_at(Some(&full), at(4));
        assert_eq!(health.snapshot(None).last_error_at, Some(at(4)));
        health.request_done_at(Some(&DropboxError::Transport("refused".into())), at(5));
        assert_eq!(health.snapshot(None).last_error_at, Some(at(5)));
    }
}
