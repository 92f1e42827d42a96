//! [`DropboxError`]: every way a Dropbox call can fail, decoded in one place.
//!
//! `from_response` turns any non-2xx answer into a typed error by status (400 bad input,
//! 401 auth, 409 route error, 422 Path-Root, 429 rate limit, 5xx server); `from_transport`
//! does the same for failures before an answer; `from_token_response` for the OAuth token
//! endpoint. Route errors keep Dropbox's JSON so callers can ask precise questions
//! ([`DropboxError::tags`], [`DropboxError::is_not_found`], ...) instead of parsing strings.
//! Nothing that could hold a secret reaches a message: server text and transport errors are
//! scrubbed (see the `secret` module).

use reqwest::StatusCode;
use serde_json::Value;

use super::secret::scrub;

/// What an SFTP client is told when the gateway's own Dropbox credentials fail.
pub const UNAVAILABLE: &str = "Dropbox is unavailable; try again later";

/// Longest server text kept in an error message.
const MAX_TEXT: usize = 500;

/// A failed Dropbox call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DropboxError {
    /// 400: Dropbox could not make sense of the request (a bug on our side or a bad argument).
    #[error("Dropbox refused the request as malformed: {0}")]
    BadInput(String),
    /// 401: the access token is expired, invalid, lacks a scope, or Select-User is wrong.
    #[error("Dropbox refused the credentials ({tag}){}", auth_hint(tag))]
    Auth { tag: String },
    /// 409: the route's own error, e.g. `path/not_found`.
    #[error("Dropbox rejected the request: {}", route_words(summary, error))]
    Route { summary: String, error: Value },
    /// 422: the `Dropbox-API-Path-Root` (team space) header was refused.
    #[error(
        "Dropbox refused the team space (Path-Root) setting: {}",
        route_words(summary, error)
    )]
    PathRoot { summary: String, error: Value },
    /// 429: too many requests or write operations; wait `retry_after` seconds if given.
    #[error("Dropbox is rate limiting this account{}", retry_words(*retry_after))]
    RateLimited { retry_after: Option<u64> },
    /// 416: a download range starts at or past the end of the file.
    #[error("the requested byte range is past the end of the file")]
    RangeNotSatisfiable,
    /// 5xx: a transient Dropbox failure.
    #[error("Dropbox had a temporary server error (HTTP {status}); try again later")]
    Server { status: u16 },
    /// Any other status (403, 404, ...), with Dropbox's text.
    #[error("Dropbox answered HTTP {status}: {text}")]
    UnexpectedStatus { status: u16, text: String },
    /// No answer: connection, TLS, proxy or timeout trouble.
    #[error("could not reach Dropbox: {0}")]
    Transport(String),
    /// The TLS certificate presented for Dropbox's host is not trusted: a proxy that inspects
    /// TLS, usually. Not transient: trying again meets the same certificate.
    #[error(
        "could not reach Dropbox: its TLS certificate is not trusted ({0}); if a proxy inspects \
         TLS, add the proxy's CA to the system's trust store or name it in ca_file"
    )]
    UntrustedCertificate(String),
    /// A 2xx answer we could not decode.
    #[error("could not understand Dropbox's answer: {0}")]
    Decode(String),
    /// The OAuth token endpoint refused to trade the refresh token for an access token.
    #[error("{}", refresh_words(error))]
    RefreshRejected { error: String },
    /// The OAuth token endpoint refused to trade an authorization code (`dropgate auth`).
    #[error("{}", code_words(error, description))]
    CodeRejected { error: String, description: String },
    /// The client was configured wrongly (bad proxy URL, token not valid in a header, ...).
    #[error("Dropbox client configuration: {0}")]
    Config(String),
}

impl DropboxError {
    /// The union tags of a route or Path-Root error, outermost first:
    /// `{".tag":"path","path":{".tag":"not_found"}}` → `["path", "not_found"]`.
    /// Empty for other kinds of error.
    pub fn tags(&self) -> Vec<String> {
        match self {
            DropboxError::Route { error, .. } | DropboxError::PathRoot { error, .. } => {
                union_tags(error)
            }
            _ => Vec::new(),
        }
    }

    /// True if `tag` appears anywhere in [`DropboxError::tags`].
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|t| t == tag)
    }

    /// The path (or `from_path`) does not exist. Not true for an upload session that was not
    /// found (`lookup_failed/not_found`), which is a different problem.
    pub fn is_not_found(&self) -> bool {
        let tags = self.tags();
        tags.last().is_some_and(|t| t == "not_found")
            && tags.first().is_some_and(|t| t != "lookup_failed")
    }

    /// Something already exists where we wanted to write (`path/conflict/...`, `to/conflict`).
    pub fn is_conflict(&self) -> bool {
        self.has_tag("conflict")
    }

    /// A folder was expected but this is a file (`path/not_folder`).
    pub fn is_not_folder(&self) -> bool {
        self.has_tag("not_folder")
    }

    /// A file was expected but this is a folder (`path/not_file`).
    pub fn is_not_file(&self) -> bool {
        self.has_tag("not_file")
    }

    /// The account is full.
    pub fn is_insufficient_space(&self) -> bool {
        self.has_tag("insufficient_space")
    }

    /// Dropbox refuses the name (desktop.ini, .ds_store, ...) or the path is malformed.
    pub fn is_disallowed_name(&self) -> bool {
        self.has_tag("disallowed_name") || self.has_tag("malformed_path")
    }

    /// The uploaded bytes did not match the content_hash we sent.
    pub fn is_content_hash_mismatch(&self) -> bool {
        self.has_tag("content_hash_mismatch")
    }

    /// 401 because Dropbox no longer takes this access token: it expired, or Dropbox invalidated
    /// it early (a revocation, a restart of the service's token store). A fresh token from the
    /// refresh token may well be taken, so the client refreshes once and tries again.
    pub fn is_stale_token(&self) -> bool {
        matches!(self, DropboxError::Auth { tag }
            if tag == "expired_access_token" || tag == "invalid_access_token")
    }

    /// The gateway's own credentials are the problem (a refused token, a refused refresh): the
    /// operator has something to do, the SFTP client only has to come back later.
    pub fn is_credentials_problem(&self) -> bool {
        matches!(
            self,
            DropboxError::Auth { .. } | DropboxError::RefreshRejected { .. }
        )
    }

    /// 429: Dropbox refused the request unseen, for a rate limit or namespace write contention.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, DropboxError::RateLimited { .. })
    }

    /// For `incorrect_offset` upload session errors: the offset Dropbox has received up to,
    /// wherever it sits in the error.
    pub fn correct_offset(&self) -> Option<u64> {
        match self {
            DropboxError::Route { error, .. } => find_u64(error, "correct_offset"),
            _ => None,
        }
    }

    /// Worth trying again later: rate limits, server errors, transport failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DropboxError::RateLimited { .. }
                | DropboxError::Server { .. }
                | DropboxError::Transport(_)
        ) || self.has_tag("too_many_write_operations")
    }

    /// A short text for an SFTP status message (the full text is the Display).
    pub fn summary(&self) -> String {
        match self {
            DropboxError::Route { summary, error } | DropboxError::PathRoot { summary, error } => {
                format!("Dropbox: {}", route_words(summary, error))
            }
            // The advice in the Display (re-run dropgate auth, check the scopes) is for the
            // operator's log; a partner's client can only try again later.
            DropboxError::Auth { .. } | DropboxError::RefreshRejected { .. } => UNAVAILABLE.into(),
            DropboxError::RateLimited { .. } => "Dropbox rate limit; try again later".into(),
            DropboxError::Server { .. } => "Dropbox server error; try again later".into(),
            DropboxError::Transport(_) | DropboxError::UntrustedCertificate(_) => {
                "Dropbox could not be reached".into()
            }
            DropboxError::RangeNotSatisfiable => "read past end of file".into(),
            other => other.to_string(),
        }
    }
}

/// Decodes a non-2xx Dropbox API answer. Reads the body.
pub(crate) async fn from_response(response: reqwest::Response) -> DropboxError {
    let status = response.status();
    let retry_after_header = header_u64(&response, reqwest::header::RETRY_AFTER);
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return from_transport(e),
    };
    from_parts(status, retry_after_header, &text)
}

/// The decoding itself, separated from I/O so it is plain to test.
fn from_parts(status: StatusCode, retry_after_header: Option<u64>, text: &str) -> DropboxError {
    let json: Option<Value> = serde_json::from_str(text).ok();
    let summary = || {
        json.as_ref()
            .and_then(|j| j.get("error_summary"))
            .and_then(Value::as_str)
            .map(scrub)
            .unwrap_or_default()
    };
    let error = || {
        json.as_ref()
            .and_then(|j| j.get("error"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match status.as_u16() {
        400 => DropboxError::BadInput(clip(&scrub(text))),
        401 => DropboxError::Auth {
            tag: union_tags(&error())
                .into_iter()
                .next()
                .unwrap_or_else(|| "unauthorized".into()),
        },
        409 => DropboxError::Route {
            summary: summary(),
            error: error(),
        },
        416 => DropboxError::RangeNotSatisfiable,
        422 => DropboxError::PathRoot {
            summary: summary(),
            error: error(),
        },
        429 => DropboxError::RateLimited {
            retry_after: retry_after_header.or_else(|| find_u64(&error(), "retry_after")),
        },
        500..=599 => DropboxError::Server {
            status: status.as_u16(),
        },
        other => DropboxError::UnexpectedStatus {
            status: other,
            text: match summary() {
                s if s.is_empty() => clip(&scrub(text)),
                s => s,
            },
        },
    }
}

/// Which grant a token endpoint request asked for; the same error means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    RefreshToken,
    AuthorizationCode,
}

/// Decodes a failed answer of the OAuth token endpoint (`{"error": "invalid_grant", ...}`).
pub(crate) async fn from_token_response(response: reqwest::Response, grant: Grant) -> DropboxError {
    let status = response.status();
    let retry_after_header = header_u64(&response, reqwest::header::RETRY_AFTER);
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return from_transport(e),
    };
    let json = serde_json::from_str::<Value>(&text).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .map(|text| clip(&scrub(text)))
    };
    match (status.as_u16(), field("error"), grant) {
        (400 | 401, Some(error), Grant::RefreshToken) => DropboxError::RefreshRejected { error },
        (400 | 401, Some(error), Grant::AuthorizationCode) => DropboxError::CodeRejected {
            error,
            description: field("error_description").unwrap_or_default(),
        },
        _ => from_parts(status, retry_after_header, &text),
    }
}

/// A route error that came inside a 2xx answer (an entry of a batch), as if it had been the
/// 409 of its own call.
pub(crate) fn route_error(error: Value) -> DropboxError {
    let mut tags = union_tags(&error);
    tags.push("..".into());
    DropboxError::Route {
        summary: tags.join("/"),
        error,
    }
}

/// Describes a failure to get any answer. reqwest puts the URL in its messages; we drop it
/// (ours hold no secrets, but a proxy URL might) and scrub the cause chain.
pub(crate) fn from_transport(error: reqwest::Error) -> DropboxError {
    if let Some(refused) = certificate_refused(&error) {
        return DropboxError::UntrustedCertificate(clip(&scrub(&refused)));
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the connection broke while transferring data"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let text = if causes.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", causes.join(": "))
    };
    DropboxError::Transport(clip(&scrub(&text)))
}

/// rustls's reason, when the failure is a server certificate it refused. rustls's error
/// reaches reqwest's chain inside `io::Error`s (two, nested), whose `source` skips what they
/// wrap, so each one is opened.
fn certificate_refused(error: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(
            refused @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented),
        ) = rustls_error_in(cause)
        {
            return Some(refused.to_string());
        }
        source = cause.source();
    }
    None
}

fn rustls_error_in<'a>(
    mut error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    loop {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        error = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)?;
    }
}

/// Decodes a 2xx JSON body, naming the route when it does not fit.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    route: &str,
    bytes: &[u8],
) -> Result<T, DropboxError> {
    serde_json::from_slice(bytes)
        .map_err(|e| DropboxError::Decode(format!("{route}: {}", clip(&scrub(&e.to_string())))))
}

/// Walks a Stone union value. A union inside a union sits under its own tag's key; a struct
/// variant is inlined beside `.tag`, and its union-typed fields (e.g. `reason`) are followed.
/// Objects without `.tag` (the 429 body) are followed into their tagged field.
fn union_tags(value: &Value) -> Vec<String> {
    let mut tags = Vec::new();
    let mut current = value;
    // Bounded: Dropbox errors nest a handful of levels; a cycle is impossible in JSON anyway.
    for _ in 0..16 {
        let Some(object) = current.as_object() else {
            break;
        };
        let tag = object.get(".tag").and_then(Value::as_str);
        if let Some(tag) = tag {
            tags.push(tag.to_owned());
        }
        let own = tag.and_then(|t| object.get(t)).filter(|v| is_tagged(v));
        let next = own.or_else(|| {
            object
                .iter()
                .find(|(key, v)| key.as_str() != ".tag" && is_tagged(v))
                .map(|(_, v)| v)
        });
        match next {
            Some(next) => current = next,
            None => break,
        }
    }
    tags
}

fn is_tagged(value: &Value) -> bool {
    value.get(".tag").is_some_and(Value::is_string)
}

/// Finds `key` with an unsigned integer value anywhere inside `value`.
fn find_u64(value: &Value, key: &str) -> Option<u64> {
    match value {
        Value::Object(object) => object
            .get(key)
            .and_then(Value::as_u64)
            .or_else(|| object.values().find_map(|v| find_u64(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_u64(v, key)),
        _ => None,
    }
}

fn header_u64(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn clip(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `path/not_found` from the error's tags, or Dropbox's summary when there are none.
fn route_words(summary: &str, error: &Value) -> String {
    let tags = union_tags(error);
    if tags.is_empty() {
        summary.trim_end_matches(['.', '/']).to_owned()
    } else {
        tags.join("/")
    }
}

fn auth_hint(tag: &str) -> &'static str {
    match tag {
        "expired_access_token" => ": the access token expired",
        "invalid_access_token" => {
            ": the access token is invalid or was revoked; re-run dropgate auth"
        }
        "missing_scope" => ": the Dropbox app lacks a permission it needs; check its scopes",
        "invalid_select_user" => ": the team member (Select-User) is not valid for this token",
        "user_suspended" => ": the Dropbox user is suspended",
        _ => "",
    }
}

fn retry_words(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(secs) => format!("; retry after {secs} s"),
        None => "; try again later".into(),
    }
}

fn refresh_words(error: &str) -> String {
    match error {
        "invalid_grant" => {
            "the refresh token was revoked or is invalid: re-run dropgate auth".into()
        }
        "invalid_client" | "unauthorized_client" => {
            "Dropbox refused the app key or app secret: check the configuration".into()
        }
        other => format!("Dropbox refused to issue an access token ({other})"),
    }
}

fn code_words(error: &str, description: &str) -> String {
    match error {
        "invalid_grant" => format!(
            "Dropbox refused the authorization code ({description}): a code works once, for a \
             few minutes, and only with the redirect URL it was issued for; run dropgate auth again"
        ),
        "invalid_client" | "unauthorized_client" => {
            "Dropbox refused the app key or app secret: copy both again from the App Console".into()
        }
        other => format!("Dropbox refused the authorization ({other}: {description})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http;
    use serde_json::json;

    /// A reqwest::Response as Dropbox would send it.
    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> reqwest::Response {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        reqwest::Response::from(builder.body(body.to_owned()).unwrap())
    }

    async fn decode(status: u16, headers: &[(&str, &str)], body: &str) -> DropboxError {
        from_response(response(status, headers, body)).await
    }

    #[tokio::test]
    async fn bad_input_keeps_text_without_tokens() {
        let body = r#"Error in call to API function "files/upload": Invalid authorization value in HTTP header "Authorization": "Bearer sl.SECRET""#;
        let err = decode(400, &[], body).await;
        let DropboxError::BadInput(text) = &err else {
            panic!("{err:?}")
        };
        assert!(text.starts_with("Error in call to API function"));
        assert!(!err.to_string().contains("sl.SECRET"));
    }

    #[tokio::test]
    async fn auth_errors_carry_their_tag() {
        let body = r#"{"error_summary": "expired_access_token/..", "error": {".tag": "expired_access_token"}}"#;
        let err = decode(401, &[], body).await;
        assert!(err.is_stale_token(), "{err:?}");
        let err = decode(
            401,
            &[],
            r#"{"error": {".tag": "missing_scope", "required_scope": "files.content.write"}}"#,
        )
        .await;
        assert!(matches!(&err, DropboxError::Auth { tag } if tag == "missing_scope"));
        let err = decode(401, &[], "nope").await;
        assert!(matches!(&err, DropboxError::Auth { tag } if tag == "unauthorized"));
    }

    #[tokio::test]
    async fn route_errors_decode_nested_unions() {
        let body = r#"{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}"#;
        let err = decode(409, &[], body).await;
        assert_eq!(err.tags(), ["path", "not_found"]);
        assert!(err.is_not_found() && !err.is_conflict());
        assert_eq!(
            err.to_string(),
            "Dropbox rejected the request: path/not_found"
        );
        assert_eq!(err.summary(), "Dropbox: path/not_found");
    }

    #[tokio::test]
    async fn route_errors_follow_inlined_struct_fields() {
        // UploadError.path is an UploadWriteFailed struct whose `reason` is a WriteError union.
        let body = json!({"error_summary": "path/conflict/file/..", "error": {".tag": "path",
            "reason": {".tag": "conflict", "conflict": {".tag": "file"}}, "upload_session_id": "x"}});
        let err = decode(409, &[], &body.to_string()).await;
        assert_eq!(err.tags(), ["path", "conflict", "file"]);
        assert!(err.is_conflict());

        let body = json!({"error_summary": "lookup_failed/incorrect_offset/..", "error": {
            ".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 5}}});
        let err = decode(409, &[], &body.to_string()).await;
        assert_eq!(err.tags(), ["lookup_failed", "incorrect_offset"]);
        assert_eq!(err.correct_offset(), Some(5));

        let body = json!({"error_summary": "incorrect_offset/..", "error": {".tag": "incorrect_offset", "correct_offset": 7}});
        let err = decode(409, &[], &body.to_string()).await;
        assert_eq!(err.correct_offset(), Some(7));

        let body = json!({"error_summary": "lookup_failed/not_found/..", "error": {
            ".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}});
        assert!(!decode(409, &[], &body.to_string()).await.is_not_found());
    }

    #[tokio::test]
    async fn path_root_errors() {
        let body = r#"{"error_summary": "no_permission/..", "error": {".tag": "no_permission"}}"#;
        let err = decode(422, &[], body).await;
        assert!(matches!(err, DropboxError::PathRoot { .. }));
        assert_eq!(err.tags(), ["no_permission"]);
    }

    #[tokio::test]
    async fn rate_limits_read_header_then_body() {
        let body = r#"{"error_summary": "too_many_requests/..", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 300}}"#;
        let err = decode(429, &[("Retry-After", "12")], body).await;
        assert!(matches!(
            err,
            DropboxError::RateLimited {
                retry_after: Some(12)
            }
        ));
        let err = decode(429, &[], body).await;
        assert!(matches!(
            err,
            DropboxError::RateLimited {
                retry_after: Some(300)
            }
        ));
        let body = r#"{"error_summary": "too_many_write_operations/..", "error": {"reason": {".tag": "too_many_write_operations"}}}"#;
        let err = decode(429, &[], body).await;
        assert!(matches!(
            err,
            DropboxError::RateLimited { retry_after: None }
        ));
        assert!(err.is_transient());
        // Too many files in one request: the same request will never pass.
        let body = r#"{"error_summary": "too_many_files/..", "error": {".tag": "too_many_files"}}"#;
        assert!(!decode(409, &[], body).await.is_transient());
    }

    #[tokio::test]
    async fn server_and_other_statuses() {
        assert!(matches!(
            decode(503, &[], "busy").await,
            DropboxError::Server { status: 503 }
        ));
        assert!(matches!(
            decode(416, &[], "").await,
            DropboxError::RangeNotSatisfiable
        ));
        let err = decode(
            403,
            &[],
            r#"{"error_summary": "no_access/..", "error": {".tag": "no_access"}}"#,
        )
        .await;
        assert!(
            matches!(err, DropboxError::UnexpectedStatus { status: 403, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn token_endpoint_errors_are_plain_words() {
        let body = r#"{"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}"#;
        let err = from_token_response(response(400, &[], body), Grant::RefreshToken).await;
        assert_eq!(
            err.to_string(),
            "the refresh token was revoked or is invalid: re-run dropgate auth"
        );
        let err = from_token_response(response(503, &[], ""), Grant::RefreshToken).await;
        assert!(matches!(err, DropboxError::Server { status: 503 }));
        let body = r#"{"error": "invalid_client", "error_description": "Invalid client_id or client_secret"}"#;
        let err = from_token_response(response(400, &[], body), Grant::AuthorizationCode).await;
        assert!(err.to_string().contains("app key or app secret"), "{err}");
        let body = r#"{"error": "invalid_grant", "error_description": "code doesn't exist or has expired"}"#;
        let err = from_token_response(response(400, &[], body), Grant::AuthorizationCode).await;
        assert!(err.to_string().contains("run dropgate auth again"), "{err}");
    }

    #[test]
    fn decode_errors_name_the_route() {
        let err = decode_json::<u64>("files/get_metadata", b"{").unwrap_err();
        assert!(err.to_string().contains("files/get_metadata"), "{err}");
    }
}
