//! Getting arguments in and results out the way Dropbox's three call styles do.
//!
//! RPC routes take JSON in the body (`Content-Type: application/json`); upload and download
//! routes take JSON in the `Dropbox-API-Arg` header (or the `arg` URL parameter), which must be
//! pure ASCII: non-ASCII characters travel as `\uXXXX` escapes, astral ones as surrogate pairs.
//! Download results go back in the `Dropbox-API-Result` header under the same rule.

use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ApiResult};

pub const ARG_HEADER: &str = "dropbox-api-arg";
pub const RESULT_HEADER: &str = "dropbox-api-result";

/// Content types Dropbox accepts for RPC bodies.
const RPC_CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain; charset=dropbox-cors-hack",
];

/// Content types Dropbox accepts for upload bodies.
const UPLOAD_CONTENT_TYPES: [&str; 2] = [
    "application/octet-stream",
    "text/plain; charset=dropbox-cors-hack",
];

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("<non-ASCII>"))
}

/// Lowercase, with the spacing around `;` made canonical.
fn normalized(content_type: &str) -> String {
    content_type
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_content_type(route: &str, headers: &HeaderMap, allowed: &[&str]) -> ApiResult<()> {
    let given = content_type(headers);
    if given.is_some_and(|given| allowed.contains(&normalized(given).as_str())) {
        return Ok(());
    }
    let expected = allowed
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let message = match given {
        Some(given) => {
            format!("Bad HTTP \"Content-Type\" header: \"{given}\".  Expecting one of {expected}.")
        }
        None => format!("Missing HTTP \"Content-Type\" header.  Expecting one of {expected}."),
    };
    Err(ApiError::bad_request(route, message))
}

/// Checks an upload body's content type (required even when the body is empty).
pub fn check_upload_content_type(route: &str, headers: &HeaderMap) -> ApiResult<()> {
    check_content_type(route, headers, &UPLOAD_CONTENT_TYPES)
}

/// Parses an RPC route's JSON body.
pub fn rpc_arg<T: DeserializeOwned>(route: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    check_content_type(route, headers, &RPC_CONTENT_TYPES)?;
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(route, format!("request body: {}", describe(&err))))
}

/// Checks the body of a route without arguments: empty, or `null`.
pub fn void_arg(route: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    check_content_type(route, headers, &RPC_CONTENT_TYPES)?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => Ok(()),
        Ok(_) => Err(ApiError::bad_request(
            route,
            "request body: expected null, got value",
        )),
        Err(err) => Err(ApiError::bad_request(
            route,
            format!("request body: {}", describe(&err)),
        )),
    }
}

/// Parses the `Dropbox-API-Arg` header, or the `arg` URL parameter when the header is absent.
pub fn header_arg<T: DeserializeOwned>(
    route: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiResult<T> {
    let (source, text) = match headers.get(ARG_HEADER) {
        Some(value) => {
            let bytes = value.as_bytes();
            if let Some(bad) = bytes.iter().find(|b| **b >= 0x80) {
                return Err(ApiError::bad_request(
                    route,
                    format!(
                        "HTTP header \"Dropbox-API-Arg\": must be ASCII, found byte 0x{bad:02x}; \
                         escape non-ASCII characters as \\uXXXX"
                    ),
                ));
            }
            let text = String::from_utf8_lossy(bytes).into_owned();
            ("HTTP header \"Dropbox-API-Arg\"", text)
        }
        None => match query_param(query, "arg") {
            Some(text) => ("URL parameter \"arg\"", text),
            None => {
                return Err(ApiError::bad_request(
                    route,
                    "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".",
                ))
            }
        },
    };
    serde_json::from_str(&text)
        .map_err(|err| ApiError::bad_request(route, format!("{source}: {}", describe(&err))))
}

/// One parameter of a URL query string, decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn describe(err: &serde_json::Error) -> String {
    if err.is_syntax() || err.is_eof() {
        format!("could not decode input as JSON ({err})")
    } else {
        err.to_string()
    }
}

/// JSON text with every character outside printable ASCII escaped as `\uXXXX` (UTF-16 units),
/// safe to put in an HTTP header.
pub fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if (' '..='~').contains(&ch) {
            out.push(ch);
        } else {
            // Outside strings serde_json only emits ASCII, so every such char is inside one.
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ascii_json_escapes_astral_characters_as_surrogate_pairs() {
        let text = ascii_json(&json!({"name": "é🎉"}));
        assert_eq!(text, r#"{"name":"\u00e9\ud83c\udf89"}"#);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["name"], "é🎉");
    }

    #[test]
    fn content_type_spacing_and_case_do_not_matter() {
        assert_eq!(
            normalized("Application/JSON;charset=UTF-8"),
            "application/json; charset=utf-8"
        );
    }
}
