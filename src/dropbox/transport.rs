//! Sending a request: authentication, retries and logging around one HTTP exchange.
//!
//! Retry rules, in order:
//! - 401 `expired_access_token` with refreshable credentials: the token is refreshed and the
//!   request sent once more, at once.
//! - 429 (any route): sent again after `Retry-After` (or a backoff), unless Dropbox asks for a
//!   wait longer than [`RetryPolicy::max_wait`]; a 429 means nothing was done.
//! - 5xx and transport failures: sent again with backoff only for read-only routes. A write
//!   may have happened before the failure; repeating it blindly could turn success into a
//!   conflict, so the caller (which knows the operation) decides, helped by
//!   [`DropboxError::is_transient`] and, for upload sessions, `correct_offset`.
//!
//! A request can only be sent again if its body can be replayed: `reqwest::Request::try_clone`
//! succeeds for in-memory bodies (JSON, `Body::from(Bytes)`) and fails for streaming ones.
//! Streaming uploads are therefore sent once; on an expired token the token is still
//! refreshed, so the caller's own retry will succeed. Callers that want automatic retries pass
//! upload bodies as `Bytes`.

use std::time::Duration;

use rand::Rng;
use reqwest::{Request, Response};
use tokio::time::Instant;

use super::auth::TokenSource;
use super::error::{self, DropboxError};
use super::request::{authorize, RequestFactory, Route, Style};

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request for rate limits and server errors (the token retry is extra).
    pub max_attempts: u32,
    /// First backoff; doubled on each further try, with ±50 % jitter.
    pub first_backoff: Duration,
    /// Longest `Retry-After` we sit out; beyond it the error goes to the caller.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Sends requests built by a [`RequestFactory`] with tokens from a [`TokenSource`].
pub struct Transport {
    pub requests: RequestFactory,
    tokens: TokenSource,
    retry: RetryPolicy,
}

impl Transport {
    pub fn new(requests: RequestFactory, tokens: TokenSource, retry: RetryPolicy) -> Self {
        Self {
            requests,
            tokens,
            retry,
        }
    }

    /// Sends `request` for `route`; returns the response if its status is 2xx.
    pub async fn send(
        &self,
        route: &Route,
        mut request: Request,
    ) -> Result<Response, DropboxError> {
        let mut attempt = 1;
        let mut token_renewed = false;
        loop {
            let token = self.tokens.token(&self.requests).await?;
            authorize(&mut request, &token)?;
            let spare = request.try_clone();
            let error = match self.exchange(route, request, attempt).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            if error.is_expired_token() {
                self.tokens.invalidate(&token).await;
            }
            let Some(wait) = self.retry_wait(route, &error, attempt, &mut token_renewed) else {
                return Err(error);
            };
            let Some(next) = spare else {
                tracing::debug!(
                    route = route.name,
                    "not retrying: the request body is a stream"
                );
                return Err(error);
            };
            tracing::debug!(route = route.name, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
            tokio::time::sleep(wait).await;
            request = next;
            attempt += 1;
        }
    }

    /// One HTTP exchange, logged. Download answers must start within the RPC timeout; their
    /// bodies are read later by the caller.
    async fn exchange(
        &self,
        route: &Route,
        request: Request,
        attempt: u32,
    ) -> Result<Response, DropboxError> {
        let started = Instant::now();
        let sending = self.requests.http().execute(request);
        let outcome = if route.style == Style::Download {
            let limit = self.requests.rpc_timeout();
            match tokio::time::timeout(limit, sending).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(DropboxError::Transport(format!(
                        "timed out: the download did not start within {} s",
                        limit.as_secs()
                    )))
                }
            }
        } else {
            sending.await
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(response) => {
                let status = response.status();
                tracing::debug!(
                    route = route.name,
                    status = status.as_u16(),
                    elapsed_ms,
                    attempt,
                    "dropbox call"
                );
                if status.is_success() {
                    Ok(response)
                } else {
                    Err(error::from_response(response).await)
                }
            }
            Err(e) => {
                let error = error::from_transport(e);
                tracing::debug!(route = route.name, elapsed_ms, attempt, %error, "dropbox call failed");
                Err(error)
            }
        }
    }

    /// How long to wait before sending again, or None to give up (see the module doc).
    fn retry_wait(
        &self,
        route: &Route,
        error: &DropboxError,
        attempt: u32,
        token_renewed: &mut bool,
    ) -> Option<Duration> {
        if error.is_expired_token() {
            let retry = self.tokens.can_refresh() && !*token_renewed;
            *token_renewed = true;
            return retry.then_some(Duration::ZERO);
        }
        if attempt >= self.retry.max_attempts {
            return None;
        }
        match error {
            DropboxError::RateLimited { retry_after } => {
                let wait = retry_after
                    .map(Duration::from_secs)
                    .unwrap_or_else(|| self.backoff(attempt));
                (wait <= self.retry.max_wait).then_some(wait)
            }
            DropboxError::Server { .. } | DropboxError::Transport(_) if route.read_only => {
                Some(self.backoff(attempt))
            }
            _ => None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.retry.first_backoff * 2u32.saturating_pow(attempt.saturating_sub(1));
        base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}
