//! Access tokens: a fixed one, or one obtained from a refresh token and renewed before it expires.
//!
//! With [`Credentials::Refresh`] the token is fetched from `{oauth}/oauth2/token` on first use,
//! cached with its expiry, and renewed [`REFRESH_EARLY`] before it runs out. A tokio Mutex
//! around the cache makes the refresh single-flight: however many requests wait, one of them
//! refreshes and the others then find the new token. When Dropbox still answers 401
//! `expired_access_token` (clock skew, early revocation), the transport calls
//! [`TokenSource::invalidate`] with the token that failed; the cache is cleared only if it
//! still holds that token, so a burst of such answers causes one refresh, not many.
//!
//! The current token's expiry is also kept outside that Mutex, so the client's health can be
//! read at any time without waiting for a refresh under way.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::{self, DropboxError};
use super::options::Credentials;
use super::request::RequestFactory;
use super::secret::Secret;

/// How long before expiry a token is renewed.
pub const REFRESH_EARLY: Duration = Duration::from_secs(300);

/// Token lifetime assumed when the token endpoint does not say (Dropbox's is 4 hours).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// Where access tokens come from.
pub enum TokenSource {
    Fixed(Secret),
    Refreshing(Refresher),
}

/// Refresh-token credentials and the cached access token.
pub struct Refresher {
    app_key: String,
    app_secret: Secret,
    refresh_token: Secret,
    cache: Mutex<Option<CachedToken>>,
    /// When the cached token expires (for the account's health).
    expires_at: std::sync::Mutex<Option<SystemTime>>,
}

struct CachedToken {
    token: Secret,
    /// When to stop using it and refresh.
    renew_at: Instant,
    /// When Dropbox stops taking it.
    expires_at: SystemTime,
}

/// The token endpoint's answer. No Debug: it holds a token.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(credentials: Credentials) -> Self {
        match credentials {
            Credentials::AccessToken(token) => TokenSource::Fixed(Secret::new(token)),
            Credentials::Refresh {
                app_key,
                app_secret,
                refresh_token,
            } => TokenSource::Refreshing(Refresher {
                app_key,
                app_secret: Secret::new(app_secret),
                refresh_token: Secret::new(refresh_token),
                cache: Mutex::new(None),
                expires_at: std::sync::Mutex::new(None),
            }),
        }
    }

    /// True if a rejected token can be replaced by a new one.
    pub fn can_refresh(&self) -> bool {
        matches!(self, TokenSource::Refreshing(_))
    }

    /// A token that is valid for a while yet, refreshing first if needed.
    pub async fn token(&self, requests: &RequestFactory) -> Result<Secret, DropboxError> {
        let refresher = match self {
            TokenSource::Fixed(token) => return Ok(token.clone()),
            TokenSource::Refreshing(refresher) => refresher,
        };
        // Held across the refresh on purpose: waiters queue here and reuse the result.
        let mut cache = refresher.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if Instant::now() < cached.renew_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = refresher.fetch(requests).await?;
        let token = fresh.token.clone();
        *refresher
            .expires_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(fresh.expires_at);
        *cache = Some(fresh);
        Ok(token)
    }

    /// When the current access token expires: None before the first refresh, and for a fixed
    /// token, whose expiry is not known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        match self {
            TokenSource::Fixed(_) => None,
            TokenSource::Refreshing(refresher) => *refresher
                .expires_at
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Forgets `stale` (Dropbox said it expired) so the next [`TokenSource::token`] refreshes.
    pub async fn invalidate(&self, stale: &Secret) {
        if let TokenSource::Refreshing(refresher) = self {
            let mut cache = refresher.cache.lock().await;
            if cache.as_ref().is_some_and(|c| &c.token == stale) {
                *cache = None;
            }
        }
    }
}

/// Sends `request` to the token endpoint and decodes its answer: the one place token answers
/// are read. Errors come back in plain words, and a decode failure never quotes the answer,
/// which holds tokens.
pub(super) async fn call_token_endpoint<T: serde::de::DeserializeOwned>(
    requests: &RequestFactory,
    request: reqwest::Request,
    grant: error::Grant,
) -> Result<T, DropboxError> {
    let started = Instant::now();
    let response = requests
        .http()
        .execute(request)
        .await
        .map_err(error::from_transport)?;
    let (status, elapsed_ms) = (
        response.status().as_u16(),
        started.elapsed().as_millis() as u64,
    );
    match grant {
        error::Grant::RefreshToken => {
            tracing::debug!(
                route = "oauth2/token",
                status,
                elapsed_ms,
                "dropbox token refresh"
            )
        }
        error::Grant::AuthorizationCode => {
            tracing::debug!(
                route = "oauth2/token",
                status,
                elapsed_ms,
                "dropbox code exchange"
            )
        }
    }
    if !response.status().is_success() {
        return Err(error::from_token_response(response, grant).await);
    }
    let bytes = response.bytes().await.map_err(error::from_transport)?;
    serde_json::from_slice(&bytes).map_err(|_| {
        DropboxError::Decode("oauth2/token: the answer has no usable access_token".into())
    })
}

impl Refresher {
    async fn fetch(&self, requests: &RequestFactory) -> Result<CachedToken, DropboxError> {
        let request =
            requests.token_refresh(&self.app_key, &self.app_secret, &self.refresh_token)?;
        let answer: TokenResponse =
            call_token_endpoint(requests, request, error::Grant::RefreshToken).await?;
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok(CachedToken {
            token: Secret::new(answer.access_token),
            renew_at: Instant::now() + usable_for(lifetime),
            expires_at: SystemTime::now() + lifetime,
        })
    }
}

/// How long to use a token that lives `lifetime`: until [`REFRESH_EARLY`] before its end, or
/// half its life if it is that short (test servers issue tokens of seconds).
fn usable_for(lifetime: Duration) -> Duration {
    match lifetime.checked_sub(REFRESH_EARLY) {
        Some(usable) if usable >= lifetime / 2 => usable,
        _ => lifetime / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_early() {
        assert_eq!(
            usable_for(Duration::from_secs(14_400)),
            Duration::from_secs(14_100)
        );
        assert_eq!(usable_for(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(usable_for(Duration::from_secs(0)), Duration::ZERO);
    }
}
