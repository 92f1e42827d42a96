//! OAuth 2: `GET /oauth2/authorize` (auto-approving) and `POST /oauth2/token`.
//!
//! Authorize approves at once and redirects to `redirect_uri` with `code` and `state` appended to
//! that URI's own query (which may already hold parameters); without a redirect URI it shows the
//! code on a page, like Dropbox's no-redirect flow. The token endpoint takes form-encoded
//! `authorization_code` (with PKCE S256/plain or the client secret) and `refresh_token` grants;
//! client credentials may come by HTTP Basic or in the form. Errors are 400 JSON
//! `{"error": ..., "error_description": ...}`. The approving subject is `authorize_as` from
//! accounts.json, or the emulator-only query parameter `emulator_as` (an account id, team id
//! or email). The emulator-only `emulator_decision=deny` plays the user pressing Cancel: like
//! Dropbox, the browser goes back to the redirect URI with `error=access_denied`, an
//! `error_description` and the `state`, and no code is issued.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::accounts::{AccountsFile, Subject};
use super::error::json_response;
use super::server::AppState;
use super::tokens::PendingCode;

/// Scopes reported for every token (the emulator does not restrict by scope).
const USER_SCOPES: &str = "account_info.read files.content.read files.content.write files.metadata.read files.metadata.write";
const TEAM_SCOPES: &str = "account_info.read files.content.read files.content.write files.metadata.read files.metadata.write members.read team_data.member team_info.read";

fn bad_page(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

/// Finds the subject named by `emulator_as`: account id, team id, or a personal email.
fn named_subject(accounts: &AccountsFile, name: &str) -> Option<Subject> {
    if accounts.team(name).is_some() {
        return Some(Subject::Team(name.to_string()));
    }
    accounts
        .accounts
        .iter()
        .find(|a| a.person.account_id == name || a.person.email.eq_ignore_ascii_case(name))
        .map(|a| Subject::Account(a.person.account_id.clone()))
}

pub async fn authorize(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let accounts = &state.directory.accounts;
    let param = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
    let Some(app_key) = param("client_id").filter(|key| accounts.app(key).is_some()) else {
        return bad_page("Invalid client_id.");
    };
    if param("response_type").as_deref() != Some("code") {
        return bad_page("Unsupported response_type; only \"code\" is supported.");
    }
    let subject = match param("emulator_as") {
        Some(name) => named_subject(accounts, &name),
        None => accounts.authorizing_subject(),
    };
    let Some(subject) = subject else {
        return bad_page("No account to authorize as.");
    };
    let challenge = param("code_challenge").map(|challenge| {
        let method = param("code_challenge_method").unwrap_or_else(|| "plain".into());
        (challenge, method)
    });
    if let Some((_, method)) = &challenge {
        if method != "S256" && method != "plain" {
            return bad_page("Unsupported code_challenge_method.");
        }
    }
    let redirect_uri = param("redirect_uri");
    if param("emulator_decision").as_deref() == Some("deny") {
        return denied(redirect_uri.as_deref(), param("state").as_deref());
    }
    let code = state.tokens.add_code(PendingCode {
        app_key,
        subject,
        redirect_uri: redirect_uri.clone(),
        challenge,
        offline: param("token_access_type").as_deref() == Some("offline"),
        created: Instant::now(),
    });
    let Some(redirect_uri) = redirect_uri else {
        return Html(format!(
            "<html><body><p>Enter this code into your app:</p><pre id=\"code\">{code}</pre></body></html>"
        ))
        .into_response();
    };
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return bad_page("Invalid redirect_uri.");
    };
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(oauth_state) = param("state") {
        target.query_pairs_mut().append_pair("state", &oauth_state);
    }
    // 302 Found, as Dropbox answers (axum's Redirect helpers send 303 or 307).
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// The user pressed Cancel: back to the redirect URI with Dropbox's error, or a page saying so.
fn denied(redirect_uri: Option<&str>, oauth_state: Option<&str>) -> Response {
    const DESCRIPTION: &str =
        "The user chose not to give your app access to their Dropbox account.";
    let Some(Ok(mut target)) = redirect_uri.map(url::Url::parse) else {
        return bad_page(DESCRIPTION);
    };
    target
        .query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", DESCRIPTION);
    if let Some(oauth_state) = oauth_state {
        target.query_pairs_mut().append_pair("state", oauth_state);
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// An OAuth error response.
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

/// Client credentials from HTTP Basic or the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(k, s)| (k.to_string(), s.to_string()))
        });
    match basic {
        Some((key, secret)) => (Some(key), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    }
}

pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return oauth_error(
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let credentials = client_credentials(&headers, &form);
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => refresh_grant(&state, &form, credentials),
        Some("authorization_code") => code_grant(&state, &form, credentials),
        Some(_) => oauth_error("unsupported_grant_type", "grant_type is not supported"),
        None => oauth_error("invalid_request", "No grant_type provided."),
    }
}

/// An OAuth error: (error, error_description).
type OAuthError = (&'static str, &'static str);

/// Checks the client: known app, and the secret when one is given or required.
fn check_client(
    state: &AppState,
    expected_app: &str,
    (client_id, secret): &(Option<String>, Option<String>),
    secret_required: bool,
) -> Result<(), OAuthError> {
    let Some(client_id) = client_id else {
        return Err((
            "invalid_request",
            "No auth function available for given request",
        ));
    };
    let invalid_client = ("invalid_client", "Invalid client_id or client_secret");
    let app = state
        .directory
        .accounts
        .app(client_id)
        .ok_or(invalid_client)?;
    let secret_ok = match secret {
        Some(secret) => *secret == app.app_secret,
        None => !secret_required,
    };
    if !secret_ok {
        return Err(invalid_client);
    }
    if app.app_key != expected_app {
        return Err(("invalid_grant", "The grant was issued to another client"));
    }
    Ok(())
}

fn refresh_grant(
    state: &AppState,
    form: &HashMap<String, String>,
    credentials: (Option<String>, Option<String>),
) -> Response {
    let Some(token) = form.get("refresh_token") else {
        return oauth_error("invalid_request", "No refresh_token provided.");
    };
    let Some(refresh) = state.tokens.refresh_grant(token) else {
        return oauth_error("invalid_grant", "refresh token is invalid or revoked");
    };
    let app = refresh.grant.app_key.clone().unwrap_or_default();
    if let Err((error, description)) =
        check_client(state, &app, &credentials, !refresh.public_client)
    {
        return oauth_error(error, description);
    }
    let Ok(subject) = refresh.grant.subject() else {
        return oauth_error("invalid_grant", "refresh token has no subject");
    };
    let access_token = state.tokens.issue_access(subject);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": state.tokens.ttl().as_secs(),
        }),
    )
}

fn verifier_matches((challenge, method): &(String, String), verifier: &str) -> bool {
    match method.as_str() {
        "S256" => {
            let digest = Sha256::digest(verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == *challenge
        }
        _ => verifier == challenge,
    }
}

fn code_grant(
    state: &AppState,
    form: &HashMap<String, String>,
    credentials: (Option<String>, Option<String>),
) -> Response {
    let Some(code) = form.get("code") else {
        return oauth_error("invalid_request", "No code provided.");
    };
    let Some(pending) = state.tokens.take_code(code) else {
        return oauth_error("invalid_grant", "code doesn't exist or has expired");
    };
    if form.get("redirect_uri") != pending.redirect_uri.as_ref() {
        return oauth_error("invalid_grant", "redirect_uri mismatch");
    }
    if let Some(challenge) = &pending.challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return oauth_error("invalid_grant", "code_verifier is required");
        };
        if !verifier_matches(challenge, verifier) {
            return oauth_error("invalid_grant", "invalid code verifier");
        }
    }
    let pkce = pending.challenge.is_some();
    if let Err((error, description)) = check_client(state, &pending.app_key, &credentials, !pkce) {
        return oauth_error(error, description);
    }
    let access_token = state.tokens.issue_access(pending.subject.clone());
    let mut result = json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": state.tokens.ttl().as_secs(),
    });
    if pending.offline {
        match state
            .tokens
            .issue_refresh(&pending.app_key, &pending.subject, pkce)
        {
            Ok(refresh) => result["refresh_token"] = Value::String(refresh),
            Err(err) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
            }
        }
    }
    match &pending.subject {
        Subject::Account(account_id) => {
            result["account_id"] = json!(account_id);
            result["uid"] = json!(numeric_uid(account_id));
            result["scope"] = json!(USER_SCOPES);
        }
        Subject::Team(team_id) => {
            result["team_id"] = json!(team_id);
            result["scope"] = json!(TEAM_SCOPES);
        }
    }
    json_response(StatusCode::OK, &result)
}

/// The legacy numeric `uid`, derived stably from the account id.
fn numeric_uid(account_id: &str) -> String {
    let digest = Sha256::digest(account_id.as_bytes());
    (u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000_000).to_string()
}
