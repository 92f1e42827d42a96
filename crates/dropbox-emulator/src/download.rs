//! files/download: metadata in the `Dropbox-API-Result` header, content streamed from disk.
//!
//! Byte ranges (`bytes=a-b`, `bytes=a-`, `bytes=-n`) give 206 with `Content-Range`; a range that
//! starts past the end gives 416. The blob is opened under the store lock, so a concurrent
//! overwrite cannot pull the content away mid-download (the open handle keeps it readable).
//! Each body counts as one download in flight until it is sent or dropped (`GET
//! /__emulator/stats`), so a test can see a client's parallel ranges overlap.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::error::{lookup, ApiError, ApiResult};
use super::faults::DownloadGauge;
use super::files_read::parse_arg;
use super::locate::{locate, render};
use super::paths::PathKind;
use super::server::{AppState, Call};
use super::wire::{ascii_json, RESULT_HEADER};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadArg {
    path: String,
    #[serde(default)]
    rev: Option<String>,
}

/// Content types a download request may carry (it has no body).
const ALLOWED_CONTENT_TYPES: [&str; 3] = [
    "",
    "application/octet-stream",
    "text/plain; charset=dropbox-cors-hack",
];

pub async fn download(state: &AppState, call: Call) -> ApiResult<Response> {
    let caller = call.user(state)?;
    let arg: DownloadArg = call.header_arg()?;
    let route = call.route.as_str();
    if let Some(content_type) = call.headers.get(header::CONTENT_TYPE) {
        let given = content_type
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !ALLOWED_CONTENT_TYPES.contains(&given.as_str()) {
            return Err(ApiError::bad_request(
                route,
                format!("Bad HTTP \"Content-Type\" header: \"{given}\".  Expecting one of \"application/octet-stream\", \"text/plain; charset=dropbox-cors-hack\"."),
            ));
        }
    }
    let raw_path = match &arg.rev {
        Some(rev) => format!("rev:{rev}"),
        None => arg.path.clone(),
    };
    let spec = parse_arg(route, &raw_path, "path", PathKind::Read, || {
        lookup("path", "malformed_path")
    })?;
    let (metadata, file, size) = {
        let store = state.store();
        let place =
            locate(&store, &state.directory, &caller, &spec).ok_or(lookup("path", "not_found"))?;
        let entry = place.entry(&store).ok_or(lookup("path", "not_found"))?;
        let info = entry.file.as_ref().ok_or(lookup("path", "not_file"))?;
        let file = std::fs::File::open(store.layout().blob(&info.blob))?;
        (render(entry, place.depth, false), file, info.size)
    };
    let range = call
        .headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_range);
    let (start, end) = match range.map(|range| range.resolve(size)) {
        None => (0, size),
        Some(Some(bounds)) => bounds,
        Some(None) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            let value = HeaderValue::from_str(&format!("bytes */{size}")).expect("ASCII");
            response.headers_mut().insert(header::CONTENT_RANGE, value);
            return Ok(response);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let in_flight = DownloadGauge::enter(&state.stats.downloads);
    let stream =
        ReaderStream::with_capacity(file.take(end - start), 256 * 1024).map(move |piece| {
            let _counted_until_dropped = &in_flight;
            piece
        });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    let result = HeaderValue::from_str(&ascii_json(&metadata))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    headers.insert(RESULT_HEADER, result);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{size}", start, end.saturating_sub(1));
        let value = HeaderValue::from_str(&value).expect("ASCII");
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// One byte range as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-` (b = None).
    From(u64, Option<u64>),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Half-open (start, end) inside a file of `size` bytes; `None` when unsatisfiable.
    fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From(start, _) if start >= size => None,
            ByteRange::From(start, last) => {
                let end = last.map_or(size, |last| (last + 1).min(size));
                Some((start, end))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size)),
        }
    }
}

/// Parses a single-range `Range` header; anything else is ignored (whole file), as HTTP allows.
fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return Some(ByteRange::Suffix(last.parse().ok()?));
    }
    let start = first.parse().ok()?;
    if last.is_empty() {
        return Some(ByteRange::From(start, None));
    }
    let last: u64 = last.parse().ok()?;
    (last >= start).then_some(ByteRange::From(start, Some(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(
            parse_range("bytes=2-4").and_then(|r| r.resolve(10)),
            Some((2, 5))
        );
        assert_eq!(
            parse_range("bytes=2-").and_then(|r| r.resolve(10)),
            Some((2, 10))
        );
        assert_eq!(
            parse_range("bytes=-3").and_then(|r| r.resolve(10)),
            Some((7, 10))
        );
        assert_eq!(
            parse_range("bytes=5-100").and_then(|r| r.resolve(10)),
            Some((5, 10))
        );
        assert_eq!(parse_range("bytes=10-").map(|r| r.resolve(10)), Some(None));
        assert_eq!(parse_range("bytes=1-2,4-5"), None);
    }
}
