//! Errors as Dropbox sends them: status code, body shape and `error_summary`.
//!
//! Dropbox uses 400 (plain text) for calls it cannot parse, 401 for token trouble, 409 for the
//! route's own error union, 422 for `Dropbox-API-Path-Root` trouble and 429 for rate limits; the
//! JSON bodies carry both a machine-readable `error` and a human `error_summary` derived from the
//! tags. Keeping all of it here means a handler only ever says *which* error happened.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A failed call, ready to be turned into Dropbox's response.
#[derive(Debug)]
pub enum ApiError {
    /// 400, plain text: `Error in call to API function "<route>": <message>`.
    BadRequest { route: String, message: String },
    /// 401 with an AuthError tag (`invalid_access_token`, `expired_access_token`, ...).
    Auth(&'static str),
    /// 409 with the route's error union value.
    Route(Value),
    /// 422 with a PathRootError value.
    PathRoot(Value),
    /// 429 with a RateLimitError (`reason`: `too_many_requests` or
    /// `too_many_write_operations`) and the same `retry_after` in the `Retry-After` header.
    RateLimited {
        reason: &'static str,
        retry_after: u64,
    },
    /// 500: the emulator itself failed (disk trouble).
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(route: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            route: route.to_string(),
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> Self {
        ApiError::Internal(err.to_string())
    }
}

impl From<std::io::ErrorKind> for ApiError {
    fn from(kind: std::io::ErrorKind) -> Self {
        ApiError::Internal(std::io::Error::from(kind).to_string())
    }
}

/// `{".tag": tag}`: a union member without a value.
pub fn tag(name: &str) -> Value {
    json!({ ".tag": name })
}

/// `{".tag": outer, outer: inner}`: a union member whose value is itself a union.
pub fn nested(outer: &str, inner: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert(".tag".into(), Value::String(outer.into()));
    object.insert(outer.into(), inner);
    Value::Object(object)
}

/// LookupError `not_found` etc. under the route's field, e.g. `path/not_found`.
pub fn lookup(field: &str, lookup_tag: &str) -> ApiError {
    ApiError::Route(nested(field, tag(lookup_tag)))
}

/// WriteError `conflict/<kind>` value (kind: file, folder, file_ancestor).
pub fn write_conflict(kind: &str) -> Value {
    nested("conflict", tag(kind))
}

/// The summary Dropbox derives from the tags: `path/not_found/..`.
pub fn error_summary(error: &Value) -> String {
    let mut parts = Vec::new();
    collect_tags(error, &mut parts);
    parts.push("..".to_string());
    parts.join("/")
}

fn collect_tags(value: &Value, parts: &mut Vec<String>) {
    let Some(object) = value.as_object() else {
        return;
    };
    if let Some(tag) = object.get(".tag").and_then(Value::as_str) {
        parts.push(tag.to_string());
        // A union value sits under its own key; a struct value is inlined beside the tag and
        // may itself hold a union (UploadWriteFailed.reason).
        if let Some(inner) = object.get(tag).filter(|v| v.get(".tag").is_some()) {
            return collect_tags(inner, parts);
        }
        if let Some(inner) = object
            .iter()
            .filter(|(key, _)| key.as_str() != ".tag")
            .map(|(_, v)| v)
            .find(|v| v.get(".tag").is_some())
        {
            collect_tags(inner, parts);
        }
    } else if let Some(reason) = object.get("reason") {
        collect_tags(reason, parts); // RateLimitError has no tag of its own
    }
}

/// The JSON error body `{"error_summary": ..., "error": ...}`.
pub fn error_body(error: Value) -> Value {
    json!({ "error_summary": error_summary(&error), "error": error })
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { route, message } => {
                let text = format!("Error in call to API function \"{route}\": {message}");
                let mut response = (StatusCode::BAD_REQUEST, text).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
            ApiError::Auth(auth_tag) => {
                json_response(StatusCode::UNAUTHORIZED, &error_body(tag(auth_tag)))
            }
            ApiError::Route(error) => json_response(StatusCode::CONFLICT, &error_body(error)),
            ApiError::PathRoot(error) => {
                json_response(StatusCode::UNPROCESSABLE_ENTITY, &error_body(error))
            }
            ApiError::RateLimited {
                reason,
                retry_after,
            } => {
                let error = json!({ "reason": tag(reason), "retry_after": retry_after });
                let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &error_body(error));
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            ApiError::Internal(message) => {
                tracing::error!("emulator internal error: {message}");
                (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_follow_the_nesting() {
        assert_eq!(
            error_summary(&nested("path", tag("not_found"))),
            "path/not_found/.."
        );
        assert_eq!(
            error_summary(&nested("to", write_conflict("file"))),
            "to/conflict/file/.."
        );
        let upload =
            json!({".tag": "path", "reason": write_conflict("folder"), "upload_session_id": "x"});
        assert_eq!(error_summary(&upload), "path/conflict/folder/..");
        let offset = nested(
            "lookup_failed",
            json!({".tag": "incorrect_offset", "correct_offset": 5}),
        );
        assert_eq!(error_summary(&offset), "lookup_failed/incorrect_offset/..");
        let rate = json!({"reason": {".tag": "too_many_requests"}, "retry_after": 1});
        assert_eq!(error_summary(&rate), "too_many_requests/..");
    }
}
