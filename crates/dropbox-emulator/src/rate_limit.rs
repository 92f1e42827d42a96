//! Dropbox's rate limit: a budget of calls per user over every API route, and a 429 with
//! `Retry-After` once it is spent.
//!
//! Dropbox limits each user (each team member, for a team app acting as one) across all
//! routes, so every client of one account shares one budget; a caller that overdraws it is
//! refused for the `retry_after` it is told, however it behaves meanwhile. The model is a
//! token bucket per caller: `burst` calls at once, refilled at `per_second`; the call that
//! finds it empty starts a penalty of `retry_after_secs`, during which every call is refused
//! with the seconds still to wait. Calls refused by authentication never reach it (Dropbox
//! does not know whose budget they would be).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::accounts::Subject;
use super::caller::authenticate;
use super::error::ApiError;
use super::server::AppState;

/// The model's settings (`"rate_limit"` in [`Realism`](super::Realism)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Calls a caller may make at once (the bucket's size).
    pub burst: u32,
    /// Calls per second the bucket refills by.
    pub per_second: f64,
    /// Seconds a caller that overdraws is refused for, announced in `Retry-After`.
    pub retry_after_secs: u64,
}

/// Refuses a call whose caller has spent their budget, when the model is on. A call that
/// fails authentication passes, to be refused as such by its handler.
pub fn check(state: &AppState, route: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(limit) = state.realism.get().rate_limit else {
        return Ok(());
    };
    let Ok(subject) = authenticate(&state.tokens, route, headers) else {
        return Ok(());
    };
    let key = caller_key(&subject, route, headers);
    state.rate_limits.admit(&limit, &key, Instant::now())
}

/// One caller's budget.
struct Bucket {
    calls: f64,
    refilled: Instant,
    penalised_until: Option<Instant>,
}

/// Every caller's bucket, by [`caller_key`].
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Calls refused so far, for `GET /__emulator/stats`.
    refusals: AtomicU64,
}

impl RateLimiter {
    fn buckets(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    pub fn reset_count(&self) {
        self.refusals.store(0, Ordering::Relaxed);
    }

    /// Spends one call of `key`'s budget, or refuses it with the 429 Dropbox would send.
    pub fn admit(&self, limit: &RateLimit, key: &str, now: Instant) -> Result<(), ApiError> {
        let admitted = self.spend(limit, key, now);
        if admitted.is_err() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn spend(&self, limit: &RateLimit, key: &str, now: Instant) -> Result<(), ApiError> {
        let mut buckets = self.buckets();
        let capacity = f64::from(limit.burst);
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            calls: capacity,
            refilled: now,
            penalised_until: None,
        });
        if let Some(until) = bucket.penalised_until.filter(|until| *until > now) {
            return Err(refusal(until - now));
        }
        let earned =
            now.saturating_duration_since(bucket.refilled).as_secs_f64() * limit.per_second;
        bucket.calls = (bucket.calls + earned).min(capacity);
        bucket.refilled = now;
        if bucket.calls >= 1.0 {
            bucket.calls -= 1.0;
            return Ok(());
        }
        let penalty = Duration::from_secs(limit.retry_after_secs);
        bucket.penalised_until = Some(now + penalty);
        Err(refusal(penalty))
    }
}

/// The 429 for a caller who must wait `remaining` more (whole seconds, at least one, as the
/// header cannot say less).
fn refusal(remaining: Duration) -> ApiError {
    let whole = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    ApiError::RateLimited {
        reason: "too_many_requests",
        retry_after: Some(whole.max(1)),
    }
}

/// Whose budget a call spends: a personal account's; a team member's when a team token acts
/// as one (`Dropbox-API-Select-User` or `-Select-Admin` on a user route); the team's own for
/// team routes.
pub fn caller_key(subject: &Subject, route: &str, headers: &HeaderMap) -> String {
    match subject {
        Subject::Account(account_id) => account_id.clone(),
        Subject::Team(team_id) => {
            let member = headers
                .get("dropbox-api-select-user")
                .or_else(|| headers.get("dropbox-api-select-admin"))
                .and_then(|value| value.to_str().ok())
                .filter(|_| !route.starts_with("team/"));
            match member {
                Some(member) => format!("{team_id}/{member}"),
                None => team_id.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RateLimit {
        RateLimit {
            burst: 2,
            per_second: 1.0,
            retry_after_secs: 3,
        }
    }

    fn retry_after(result: Result<(), ApiError>) -> u64 {
        match result {
            Err(ApiError::RateLimited { retry_after, .. }) => {
                retry_after.expect("a rate limit says how long to wait")
            }
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_beyond_the_bucket_is_refused_until_the_penalty_is_over() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        assert!(limiter.admit(&limit(), "a", start).is_ok());
        assert!(limiter.admit(&limit(), "a", start).is_ok());
        assert_eq!(retry_after(limiter.admit(&limit(), "a", start)), 3);
        // Refilled meanwhile, but still penalised: told the time that is left.
        let later = start + Duration::from_millis(1500);
        assert_eq!(retry_after(limiter.admit(&limit(), "a", later)), 2);
        let after = start + Duration::from_secs(3);
        assert!(limiter.admit(&limit(), "a", after).is_ok());
    }

    #[test]
    fn each_caller_has_a_bucket_of_its_own() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..2 {
            limiter.admit(&limit(), "a", now).unwrap();
        }
        assert!(limiter.admit(&limit(), "a", now).is_err());
        assert!(limiter.admit(&limit(), "b", now).is_ok());
    }

    #[test]
    fn team_members_are_keyed_apart_and_team_routes_by_the_team() {
        let team = Subject::Team("dbtid:t".into());
        let mut alice = HeaderMap::new();
        alice.insert("dropbox-api-select-user", "dbmid:alice".parse().unwrap());
        let mut bob = HeaderMap::new();
        bob.insert("dropbox-api-select-admin", "dbmid:bob".parse().unwrap());
        let alice_key = caller_key(&team, "files/upload", &alice);
        assert_ne!(alice_key, caller_key(&team, "files/upload", &bob));
        assert_eq!(
            caller_key(&team, "team/members/get_info_v2", &alice),
            caller_key(&team, "team/members/get_info_v2", &HeaderMap::new())
        );
        assert_ne!(
            alice_key,
            caller_key(&team, "team/members/get_info_v2", &alice)
        );
    }
}
