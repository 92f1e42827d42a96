//! The Dropbox side of the OAuth 2 code flow: the authorize page's URL and the code exchange.
//!
//! `dropgate auth` (`crate::cli::auth`) drives the registration; this module knows only what
//! Dropbox expects (`docs/dropbox-api.md`, "OAuth 2"): the authorize URL asks for a code with
//! `token_access_type=offline` (else no refresh token is issued) and a PKCE S256 challenge, and
//! the exchange trades that code plus its verifier for tokens at `{oauth}/oauth2/token`. The
//! request itself is built in `request`, like every other Dropbox request; failures are
//! decoded in [`super::error`] in plain words.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::auth::call_token_endpoint;
use super::client::http_clients;
use super::error::{DropboxError, Grant};
use super::options::{join, Endpoints};
use super::request::RequestFactory;
use super::secret::Secret;
use crate::tls_trust::Trust;

/// Where Dropbox's authorize page lives (a different host from the API).
pub const AUTHORIZE_BASE: &str = "https://www.dropbox.com";

/// What goes into the authorize URL.
pub struct AuthorizeParams<'a> {
    pub app_key: &'a str,
    /// None for the no-redirect flow: Dropbox then shows the code for the admin to paste.
    pub redirect_uri: Option<&'a str>,
    pub state: &'a str,
    /// base64url(SHA-256(verifier)), no padding.
    pub code_challenge: &'a str,
}

/// `{base}/oauth2/authorize?client_id=...&response_type=code&token_access_type=offline&...`.
pub fn authorize_url(base: &Url, params: &AuthorizeParams<'_>) -> Url {
    let mut url = join(base, "oauth2/authorize");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", params.app_key)
            .append_pair("response_type", "code")
            .append_pair("token_access_type", "offline")
            .append_pair("code_challenge", params.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", params.state);
        if let Some(redirect_uri) = params.redirect_uri {
            query.append_pair("redirect_uri", redirect_uri);
        }
    }
    url
}

/// What the code exchange needs.
pub struct CodeExchange<'a> {
    pub app_key: &'a str,
    pub app_secret: &'a Secret,
    pub code: &'a Secret,
    pub code_verifier: &'a Secret,
    /// Exactly the redirect URI of the authorize URL (None if it had none).
    pub redirect_uri: Option<&'a str>,
}

/// The tokens and the subject Dropbox issued. Debug hides the tokens.
pub struct IssuedTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Set when a person authorized the app (a user-scoped token).
    pub account_id: Option<String>,
    /// Set when a team admin authorized a team-scoped (Business) app.
    pub team_id: Option<String>,
    pub scope: Option<String>,
}

impl fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("account_id", &self.account_id)
            .field("team_id", &self.team_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The token endpoint's answer to a code exchange. No Debug: it holds tokens.
#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: String,
    refresh_token: Option<String>,
    account_id: Option<String>,
    team_id: Option<String>,
    scope: Option<String>,
}

/// Trades an authorization code for tokens. `proxy` and `trust` as in
/// [`super::ClientOptions`].
pub async fn exchange_code(
    endpoints: &Endpoints,
    proxy: Option<&str>,
    trust: &Trust,
    exchange: &CodeExchange<'_>,
) -> Result<IssuedTokens, DropboxError> {
    let timeout = Duration::from_secs(60);
    let http = http_clients(Duration::from_secs(10), timeout, proxy, trust)?;
    let requests = RequestFactory::new(http, endpoints.clone(), None, None, timeout)?;
    let request = requests.token_exchange(
        exchange.app_key,
        exchange.app_secret,
        exchange.code,
        exchange.code_verifier,
        exchange.redirect_uri,
    )?;
    let answer: ExchangeAnswer =
        call_token_endpoint(&requests, request, Grant::AuthorizationCode).await?;
    let refresh_token = answer.refresh_token.ok_or_else(|| {
        DropboxError::Decode(
            "oauth2/token: Dropbox issued no refresh token (was token_access_type=offline lost?)"
                .into(),
        )
    })?;
    Ok(IssuedTokens {
        access_token: Secret::new(answer.access_token),
        refresh_token: Secret::new(refresh_token),
        account_id: answer.account_id,
        team_id: answer.team_id,
        scope: answer.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_asks_for_an_offline_code_with_pkce() {
        let base = Url::parse(AUTHORIZE_BASE).unwrap();
        let url = authorize_url(
            &base,
            &AuthorizeParams {
                app_key: "k",
                redirect_uri: Some("http://localhost:53682/?command=register_dropbox_api"),
                state: "st",
                code_challenge: "ch",
            },
        );
        assert_eq!(url.path(), "/oauth2/authorize");
        assert_eq!(url.host_str(), Some("www.dropbox.com"));
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("client_id"), Some("k"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("token_access_type"), Some("offline"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("code_challenge"), Some("ch"));
        assert_eq!(get("state"), Some("st"));
        assert_eq!(
            get("redirect_uri"),
            Some("http://localhost:53682/?command=register_dropbox_api")
        );

        let headless = authorize_url(
            &base,
            &AuthorizeParams {
                redirect_uri: None,
                app_key: "k",
                state: "st",
                code_challenge: "ch",
            },
        );
        assert!(!headless.as_str().contains("redirect_uri"));
    }
}
