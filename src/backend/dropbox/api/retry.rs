//! The retry policy: which failed Dropbox requests are sent again, how soon, and for how long.
//!
//! Every retry in the client goes through [`RetryPolicy::retry_wait`], so the rules live here
//! and nowhere else:
//!
//! - A request that never left (no connection could be made, or no access token could be
//!   obtained) is sent again after a transient failure, whatever it does.
//! - An answer that proves Dropbox did nothing is followed by another try, whatever the request:
//!   429 (after `Retry-After`, from the header or the body's `retry_after`, else a backoff),
//!   `too_many_write_operations` (also as a 409 route error), and a 401 `expired_access_token`
//!   or `invalid_access_token` when the token can be refreshed (at once: the transport has
//!   dropped the stale token). Dropbox invalidates tokens early too, so both are worth one
//!   refresh; only one per request, since a token rejected right after a refresh is not stale
//!   but refused, and the refresh token itself is what needs looking at.
//! - A 5xx or a connection lost after the request was sent leaves us not knowing whether
//!   Dropbox acted. Only requests whose repetition is harmless ([`Safety::Idempotent`]) are
//!   sent again: reads, session start (an unused session expires) and sequential appends
//!   (Dropbox checks the offset; the caller resynchronises with `incorrect_offset`). A piece of
//!   a concurrent session is repeated by `concurrent_append`, which knows when a refusal of the
//!   repeat is the earlier try's success. Every change (create,
//!   delete, move, copy, upload, session finish) is [`Safety::Checked`]: its caller (`checked`)
//!   looks at what the last try did before trying again.
//! - Everything else (400, other 401s, 409, 422, ...) goes straight to the caller.
//!
//! Waits grow exponentially from [`RetryPolicy::first_backoff`] up to
//! [`RetryPolicy::max_backoff`], each drawn between half and all of that (jitter, so that
//! clients that failed together do not come back together). No try is made after
//! [`RetryPolicy::max_attempts`] tries or if its wait would end past [`RetryPolicy::deadline`]
//! counted from the first try.
//!
//! A rate limit (429) is different: Dropbox did nothing and says when to come back, often only
//! after minutes. Giving up then would fail a CLOSE whose file the client must send again, so
//! a request sits the limit out, whatever it is, for up to [`RetryPolicy::rate_limit_wait`] in
//! all; those tries and waits are not counted against `max_attempts` and `deadline`, which are
//! for errors. Every retry is counted in [`retries_made`] (tests and diagnostics).

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::error::DropboxError;
use crate::metrics;

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled on each further try, up to `max_backoff`, with jitter.
    pub first_backoff: Duration,
    /// Longest backoff between two tries.
    pub max_backoff: Duration,
    /// Longest time one request waits out rate limits (429), all its waits together; a
    /// `Retry-After` that would take it beyond goes to the caller.
    pub rate_limit_wait: Duration,
    /// No try starts later than this after the first one, not counting rate-limit waits.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            rate_limit_wait: DEFAULT_RATE_LIMIT_WAIT,
            deadline: Duration::from_secs(90),
        }
    }
}

/// Dropbox has been seen to ask for 300 s; a few minutes rides that out.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);

/// What happens if a request is sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Nothing worse than the first time: it may be repeated after any transient failure.
    Idempotent,
    /// It may be repeated only when Dropbox certainly did not act on it; after an ambiguous
    /// failure the caller checks what happened (every change to Dropbox, see `checked`).
    Checked,
    /// It may be repeated only when Dropbox certainly did not act on it, and nobody looks
    /// (a raw `files/upload` in `add` or `update` mode).
    Once,
}

/// A failed try, and whether the request left at all.
#[derive(Debug)]
pub struct Failure {
    pub error: DropboxError,
    /// False if nothing reached Dropbox (no connection, no access token).
    pub sent: bool,
}

impl Failure {
    pub fn sent(error: DropboxError) -> Self {
        Self { error, sent: true }
    }

    pub fn not_sent(error: DropboxError) -> Self {
        Self { error, sent: false }
    }

    /// A failure after which we cannot know whether Dropbox acted: a server error or a
    /// connection lost once the request was on its way.
    pub fn is_ambiguous(&self) -> bool {
        self.sent
            && matches!(
                self.error,
                DropboxError::Server { .. } | DropboxError::Transport(_)
            )
    }
}

/// Where a request stands in its retries.
pub struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    /// When the latest try began.
    try_started: Instant,
    /// Tries made so far.
    made: u32,
    /// Whether a rejected access token has already been replaced for this request.
    token_renewed: bool,
    /// Of those, the tries Dropbox refused with a rate limit.
    rate_limited: u32,
    /// The waits granted for rate limits so far: what [`RetryPolicy::rate_limit_wait`] bounds.
    rate_limit_waited: Duration,
    /// All the time lost to rate limits (the refused tries and the waits), which the
    /// deadline does not count.
    rate_limit_time: Duration,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        let now = Instant::now();
        Self {
            policy,
            started: now,
            try_started: now,
            made: 0,
            token_renewed: false,
            rate_limited: 0,
            rate_limit_waited: Duration::ZERO,
            rate_limit_time: Duration::ZERO,
        }
    }

    /// Counts the try about to be made; returns its number (1 for the first).
    pub fn begin(&mut self) -> u32 {
        self.try_started = Instant::now();
        self.made += 1;
        self.made
    }

    /// How long to wait before the next try after `failure`, or None to give up. A wait that
    /// is granted for a rate limit is booked against [`RetryPolicy::rate_limit_wait`].
    pub fn retry_wait(
        &mut self,
        failure: &Failure,
        safety: Safety,
        refreshable: bool,
    ) -> Option<Duration> {
        if failure.error.is_stale_token() {
            if self.token_renewed {
                return None;
            }
            self.token_renewed = true;
        }
        let wait = self
            .policy
            .retry_wait(failure, safety, refreshable, self.made)?;
        if failure.error.is_rate_limited() {
            return self.book_rate_limit_wait(wait);
        }
        let counted = self.made - self.rate_limited;
        let elapsed = self.started.elapsed().saturating_sub(self.rate_limit_time);
        (counted < self.policy.max_attempts && elapsed + wait <= self.policy.deadline)
            .then_some(wait)
    }

    fn book_rate_limit_wait(&mut self, wait: Duration) -> Option<Duration> {
        let waited = self.rate_limit_waited + wait;
        if waited > self.policy.rate_limit_wait {
            return None;
        }
        self.rate_limit_waited = waited;
        self.rate_limit_time += self.try_started.elapsed() + wait;
        self.rate_limited += 1;
        Some(wait)
    }
}

impl RetryPolicy {
    /// The wait before another try after `failure` on try number `attempt`, or None if the
    /// failure is not one to retry (see the module doc). Attempt and deadline limits are
    /// applied by [`Attempts::retry_wait`].
    pub fn retry_wait(
        &self,
        failure: &Failure,
        safety: Safety,
        refreshable: bool,
        attempt: u32,
    ) -> Option<Duration> {
        let error = &failure.error;
        if error.is_stale_token() {
            return refreshable.then_some(Duration::ZERO);
        }
        if let DropboxError::RateLimited { retry_after } = error {
            // No Retry-After, or 0, is no reason to come back at once: Dropbox would refuse
            // again, and a request could spin without ever using up its rate-limit wait.
            return match retry_after
                .filter(|secs| *secs > 0)
                .map(Duration::from_secs)
            {
                Some(wait) => (wait <= self.rate_limit_wait).then_some(wait),
                None => Some(self.backoff(attempt)),
            };
        }
        if error.has_tag("too_many_write_operations") {
            return Some(self.backoff(attempt));
        }
        let transient = matches!(
            error,
            DropboxError::Server { .. } | DropboxError::Transport(_)
        );
        (transient && (!failure.sent || safety == Safety::Idempotent))
            .then(|| self.backoff(attempt))
    }

    /// The backoff after try number `attempt`: `first_backoff · 2^(attempt-1)`, capped at
    /// `max_backoff`, then a random 50–100 % of that.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let base = self
            .first_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// How many Dropbox requests were sent again (by any client of this process) so far.
pub fn retries_made() -> u64 {
    metrics::dropbox_retries()
}

/// Notes one retry: counted, and logged for whoever reads the debug log.
pub fn record_retry(route: &str, attempt: u32, wait: Duration, failure: &Failure) {
    metrics::dropbox_retry();
    tracing::debug!(
        route,
        attempt,
        wait_ms = wait.as_millis() as u64,
        sent = failure.sent,
        error = %failure.error,
        "retrying"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            rate_limit_wait: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
        }
    }

    fn route_error(tag: &str) -> DropboxError {
        DropboxError::Route {
            summary: format!("{tag}/.."),
            error: json!({ ".tag": "path", "reason": { ".tag": tag } }),
        }
    }

    fn wait(error: DropboxError, sent: bool, safety: Safety) -> Option<Duration> {
        let failure = Failure { error, sent };
        policy().retry_wait(&failure, safety, true, 1)
    }

    #[test]
    fn answers_that_prove_nothing_happened_are_retried_for_every_request() {
        for safety in [Safety::Idempotent, Safety::Checked, Safety::Once] {
            let limited = DropboxError::RateLimited {
                retry_after: Some(2),
            };
            assert_eq!(wait(limited, true, safety), Some(Duration::from_secs(2)));
            let limited = DropboxError::RateLimited { retry_after: None };
            assert!(wait(limited, true, safety).is_some());
            assert!(wait(route_error("too_many_write_operations"), true, safety).is_some());
            for stale in ["expired_access_token", "invalid_access_token"] {
                let stale = DropboxError::Auth { tag: stale.into() };
                assert_eq!(wait(stale, true, safety), Some(Duration::ZERO));
            }
            // Never sent: nothing can have happened.
            assert!(wait(DropboxError::Transport("x".into()), false, safety).is_some());
        }
    }

    #[test]
    fn ambiguous_failures_are_retried_only_for_idempotent_requests() {
        for error in [
            || DropboxError::Server { status: 503 },
            || DropboxError::Transport("connection closed".into()),
        ] {
            assert!(wait(error(), true, Safety::Idempotent).is_some());
            assert!(wait(error(), true, Safety::Checked).is_none());
            assert!(wait(error(), true, Safety::Once).is_none());
        }
    }

    #[test]
    fn other_failures_are_not_retried() {
        let expired = DropboxError::Auth {
            tag: "expired_access_token".into(),
        };
        let failure = Failure::sent(expired);
        assert!(policy()
            .retry_wait(&failure, Safety::Idempotent, false, 1)
            .is_none());
        for error in [
            route_error("conflict"),
            DropboxError::BadInput("x".into()),
            DropboxError::Auth {
                tag: "missing_scope".into(),
            },
            DropboxError::RefreshRejected {
                error: "invalid_grant".into(),
            },
            DropboxError::RateLimited {
                retry_after: Some(60),
            },
        ] {
            assert!(wait(error, true, Safety::Idempotent).is_none());
        }
    }

    #[test]
    fn a_rejected_token_is_renewed_once_per_request() {
        for tag in ["expired_access_token", "invalid_access_token"] {
            let failure = Failure::sent(DropboxError::Auth { tag: tag.into() });
            let mut attempts = Attempts::new(policy());
            attempts.begin();
            assert_eq!(
                attempts.retry_wait(&failure, Safety::Once, true),
                Some(Duration::ZERO)
            );
            attempts.begin();
            assert_eq!(attempts.retry_wait(&failure, Safety::Once, true), None);
            // Without a refresh token there is nothing to renew it with.
            let mut fixed = Attempts::new(policy());
            fixed.begin();
            assert_eq!(fixed.retry_wait(&failure, Safety::Once, false), None);
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = policy();
        for _ in 0..50 {
            let first = p.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = p.backoff(2);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let late = p.backoff(30);
            assert!(late >= Duration::from_millis(150) && late <= Duration::from_millis(300));
        }
    }

    #[test]
    fn attempts_and_deadline_bound_the_retries() {
        let failure = Failure::sent(DropboxError::Server { status: 500 });
        let mut attempts = Attempts::new(policy());
        for _ in 0..3 {
            attempts.begin();
            assert!(attempts
                .retry_wait(&failure, Safety::Idempotent, true)
                .is_some());
        }
        attempts.begin();
        assert!(attempts
            .retry_wait(&failure, Safety::Idempotent, true)
            .is_none());

        let mut short = policy();
        short.deadline = Duration::from_millis(1);
        let mut attempts = Attempts::new(short);
        attempts.begin();
        assert!(attempts
            .retry_wait(&failure, Safety::Idempotent, true)
            .is_none());
    }

    fn rate_limited(secs: Option<u64>) -> Failure {
        Failure::sent(DropboxError::RateLimited { retry_after: secs })
    }

    #[test]
    fn rate_limits_are_sat_out_up_to_the_rate_limit_wait_in_all() {
        // Far more tries than max_attempts (4), each with a wait beyond the deadline's reach.
        let mut short = policy();
        short.deadline = Duration::from_millis(1);
        let mut attempts = Attempts::new(short);
        for _ in 0..5 {
            attempts.begin();
            let wait = attempts.retry_wait(&rate_limited(Some(1)), Safety::Once, true);
            assert_eq!(wait, Some(Duration::from_secs(1)));
        }
        // The five seconds are spent: the next rate limit goes to the caller.
        attempts.begin();
        assert!(attempts
            .retry_wait(&rate_limited(Some(1)), Safety::Once, true)
            .is_none());
    }

    #[test]
    fn a_retry_after_beyond_what_is_left_of_the_rate_limit_wait_is_not_sat_out() {
        let mut attempts = Attempts::new(policy());
        attempts.begin();
        let wait = attempts.retry_wait(&rate_limited(Some(3)), Safety::Idempotent, true);
        assert_eq!(wait, Some(Duration::from_secs(3)));
        attempts.begin();
        assert!(attempts
            .retry_wait(&rate_limited(Some(3)), Safety::Idempotent, true)
            .is_none());
        // A wait of its own longer than the whole allowance is not started at all.
        let mut attempts = Attempts::new(policy());
        attempts.begin();
        assert!(attempts
            .retry_wait(&rate_limited(Some(6)), Safety::Idempotent, true)
            .is_none());
    }

    #[test]
    fn a_retry_after_of_zero_or_none_backs_off_and_still_counts() {
        let p = policy();
        for secs in [None, Some(0)] {
            let wait = p
                .retry_wait(&rate_limited(secs), Safety::Once, true, 1)
                .unwrap();
            assert!(wait >= Duration::from_millis(50), "{secs:?}: {wait:?}");
        }
        // Backoffs of at most 300 ms against five seconds: it ends.
        let mut attempts = Attempts::new(p);
        let mut tries = 0;
        loop {
            attempts.begin();
            tries += 1;
            if attempts
                .retry_wait(&rate_limited(Some(0)), Safety::Once, true)
                .is_none()
            {
                break;
            }
            assert!(tries < 200, "never gave up");
        }
        assert!(tries > 4, "gave up after {tries} tries");
    }

    #[test]
    fn errors_after_rate_limits_still_get_their_own_tries_and_deadline() {
        let mut p = policy();
        p.deadline = Duration::from_millis(500);
        let mut attempts = Attempts::new(p);
        attempts.begin();
        let wait = attempts.retry_wait(&rate_limited(Some(1)), Safety::Idempotent, true);
        assert!(wait.is_some());
        // Part of the rate-limit wait passes, more than the whole deadline.
        std::thread::sleep(Duration::from_millis(600));
        let error = Failure::sent(DropboxError::Server { status: 503 });
        for _ in 0..3 {
            attempts.begin();
            assert!(attempts
                .retry_wait(&error, Safety::Idempotent, true)
                .is_some());
        }
        attempts.begin();
        assert!(attempts
            .retry_wait(&error, Safety::Idempotent, true)
            .is_none());
    }
}
