//! Sending a request: access token, body, timeouts and retries around HTTP exchanges.
//!
//! [`Transport::send`] makes one try after another until Dropbox answers 2xx or the retry
//! policy (`retry`, the one place that decides) says to stop. Each try gets a current access
//! token (a 401 `expired_access_token` or `invalid_access_token` drops the stale one, so the
//! next try refreshes it), a fresh body from the caller's [`UploadBody`], and a request built
//! by the caller's closure.
//!
//! Nothing waits for ever: connections have a connect timeout (the HTTP client's), RPCs a total
//! timeout (set when the request is built), downloads a limit for their answer to start (and
//! an idle limit while the caller reads the body), and uploads a watchdog on their progress
//! (`watchdog`), because a large body may rightly take longer than any fixed limit.
//!
//! [`Transport::send`] is also the one place where each request's final outcome is known, so it
//! records it in the client's health (`health`).

use reqwest::{Body, Request, Response};
use tokio::time::Instant;

use super::auth::TokenSource;
use super::body::UploadBody;
use super::error::{self, DropboxError};
use super::health::{Health, HealthRecorder};
use super::request::{authorize, RequestFactory, Route, Style};
use super::retry::{record_retry, Attempts, Failure, RetryPolicy, Safety};
use super::watchdog;

/// Builds the request of one try around the body made for it.
pub type Build<'a> = dyn Fn(Option<Body>) -> Result<Request, DropboxError> + Send + Sync + 'a;

/// Sends requests built by a [`RequestFactory`] with tokens from a [`TokenSource`].
pub struct Transport {
    pub requests: RequestFactory,
    tokens: TokenSource,
    retry: RetryPolicy,
    health: HealthRecorder,
}

impl Transport {
    pub fn new(requests: RequestFactory, tokens: TokenSource, retry: RetryPolicy) -> Self {
        Self {
            requests,
            tokens,
            retry,
            health: HealthRecorder::default(),
        }
    }

    /// The outcomes of the requests so far and the current token's expiry.
    pub fn health(&self) -> Health {
        self.health.snapshot(self.tokens.expires_at())
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// True if an expired access token can be replaced (so a 401 expired is worth a retry).
    pub fn can_refresh(&self) -> bool {
        self.tokens.can_refresh()
    }

    /// Sends a request for `route` as often as the retry policy allows for its `safety`;
    /// returns the response if its status is 2xx. `build` makes each try's request around the
    /// body `body` makes for it (None for routes without one). The outcome goes into the
    /// client's health.
    pub async fn send(
        &self,
        route: &Route,
        safety: Safety,
        build: &Build<'_>,
        body: Option<UploadBody>,
    ) -> Result<Response, DropboxError> {
        let result = self.send_with_retries(route, safety, build, body).await;
        self.health.request_done(&result);
        result
    }

    async fn send_with_retries(
        &self,
        route: &Route,
        safety: Safety,
        build: &Build<'_>,
        mut body: Option<UploadBody>,
    ) -> Result<Response, DropboxError> {
        let mut attempts = Attempts::new(self.retry);
        loop {
            let attempt = attempts.begin();
            let this_body = match body.as_mut() {
                None => None,
                Some(body) => match body.next().await {
                    Some(Ok(made)) => Some(made),
                    Some(Err(e)) => {
                        return Err(DropboxError::Transport(format!(
                            "reading the bytes to upload failed: {e}"
                        )))
                    }
                    None => unreachable!("a spent body is never sent again"),
                },
            };
            let failure = match self.attempt(route, build, this_body, attempt).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let wait = attempts.retry_wait(&failure, safety, self.can_refresh());
            let Some(wait) = wait else {
                return Err(failure.error);
            };
            if body.as_ref().is_some_and(UploadBody::is_spent) {
                tracing::debug!(
                    route = route.name,
                    "not retrying: the request body was a one-shot stream"
                );
                return Err(failure.error);
            }
            record_retry(route.name, attempt, wait, &failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// One try: a token, the request, the exchange.
    async fn attempt(
        &self,
        route: &Route,
        build: &Build<'_>,
        body: Option<Body>,
        attempt: u32,
    ) -> Result<Response, Failure> {
        let token = self
            .tokens
            .token(&self.requests)
            .await
            .map_err(Failure::not_sent)?;
        let mut request = build(body).map_err(Failure::not_sent)?;
        authorize(&mut request, &token).map_err(Failure::not_sent)?;
        let result = self.exchange(route, request, attempt).await;
        if let Err(failure) = &result {
            if failure.error.is_stale_token() {
                self.tokens.invalidate(&token).await;
            }
        }
        result
    }

    /// One HTTP exchange, logged, with the time limits of its style.
    async fn exchange(
        &self,
        route: &Route,
        mut request: Request,
        attempt: u32,
    ) -> Result<Response, Failure> {
        let started = Instant::now();
        let limit = self.requests.rpc_timeout();
        let outcome = match route.style {
            // The total timeout was set when the request was built.
            Style::Rpc => self.requests.http_for(route).execute(request).await,
            Style::Download => {
                match tokio::time::timeout(limit, self.requests.http_for(route).execute(request))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        crate::metrics::dropbox_request(route.name, None);
                        return Err(Failure::sent(DropboxError::Transport(format!(
                            "timed out: the download did not start within {} s",
                            limit.as_secs()
                        ))));
                    }
                }
            }
            Style::Upload => {
                let progress = match request.body_mut().take() {
                    Some(body) => {
                        let (tracked, progress) = watchdog::track(body);
                        *request.body_mut() = Some(tracked);
                        Some(progress)
                    }
                    None => None,
                };
                let sending = self.requests.http_for(route).execute(request);
                match progress {
                    None => sending.await,
                    Some(progress) => tokio::select! {
                        outcome = sending => outcome,
                        error = progress.stalled(limit, limit) => {
                            tracing::debug!(route = route.name, attempt, %error, "dropbox call stalled");
                            crate::metrics::dropbox_request(route.name, None);
                            return Err(Failure::sent(error));
                        }
                    },
                }
            }
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(response) => {
                let status = response.status();
                crate::metrics::dropbox_request(route.name, Some(status.as_u16()));
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
                    Err(Failure::sent(error::from_response(response).await))
                }
            }
            Err(e) => {
                crate::metrics::dropbox_request(route.name, None);
                // A connection that could not be made carried nothing: safe to try again.
                let sent = !e.is_connect();
                let error = error::from_transport(e);
                tracing::debug!(route = route.name, elapsed_ms, attempt, sent, %error, "dropbox call failed");
                Err(Failure { error, sent })
            }
        }
    }
}
