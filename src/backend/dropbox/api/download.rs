//! Downloads: the byte range we ask for and the answer we hand back unread.
//!
//! [`Download`] keeps the `reqwest::Response` with its body not yet read so the caller can
//! stream it; [`Download::next_chunk`] reads it with an idle timeout (reqwest's own read
//! timeout cannot be used: its clock starts when a request is sent, which would cut long
//! uploads on the shared client).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;

use super::error::{self, DropboxError};
use super::types::FileMetadata;

/// A byte range of a file: `start` to `end` inclusive, or to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive last byte; None = to the end of the file.
    pub end: Option<u64>,
}

impl ByteRange {
    /// From `start` to the end of the file.
    pub fn from_offset(start: u64) -> Self {
        Self { start, end: None }
    }

    /// `len` bytes from `start`; None for an empty range, which HTTP cannot express.
    pub fn with_len(start: u64, len: u64) -> Option<Self> {
        let last = start.checked_add(len.checked_sub(1)?)?;
        Some(Self {
            start,
            end: Some(last),
        })
    }

    /// The `Range` header value: `bytes=a-b` or `bytes=a-`.
    pub fn header_value(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }
}

/// `Content-Range: bytes a-b/total` of a partial answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    /// Inclusive last byte.
    pub end: u64,
    /// File size, when the server states it.
    pub total: Option<u64>,
}

impl ContentRange {
    fn parse(text: &str) -> Option<Self> {
        let (range, total) = text.trim().strip_prefix("bytes ")?.split_once('/')?;
        let (start, end) = range.split_once('-')?;
        Some(Self {
            start: start.trim().parse().ok()?,
            end: end.trim().parse().ok()?,
            total: total.trim().parse().ok(),
        })
    }
}

/// A successful download: the file's metadata and the response whose body is the bytes.
#[derive(Debug)]
pub struct Download {
    pub metadata: FileMetadata,
    /// 200 (whole file) or 206 (the requested range); the body is not yet read.
    pub response: reqwest::Response,
    idle_timeout: Duration,
}

impl Download {
    pub(crate) fn new(
        metadata: FileMetadata,
        response: reqwest::Response,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            metadata,
            response,
            idle_timeout,
        }
    }

    /// True if the body is only the requested range (206), false if it is the whole file.
    /// A server may ignore a Range header and send everything; callers must check.
    pub fn is_partial(&self) -> bool {
        self.response.status() == StatusCode::PARTIAL_CONTENT
    }

    /// The `Content-Range` of a partial answer.
    pub fn content_range(&self) -> Option<ContentRange> {
        let value = self.response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
        ContentRange::parse(value)
    }

    /// The next piece of the body, None at its end; fails if nothing arrives for the idle
    /// timeout (the client's request timeout).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, DropboxError> {
        match tokio::time::timeout(self.idle_timeout, self.response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(error::from_transport(e)),
            Err(_) => Err(DropboxError::Transport(format!(
                "download stalled: no data for {} s",
                self.idle_timeout.as_secs()
            ))),
        }
    }
}

/// The file metadata Dropbox sends in the `Dropbox-API-Result` header of a download.
pub(crate) fn result_metadata(response: &reqwest::Response) -> Result<FileMetadata, DropboxError> {
    let value = response
        .headers()
        .get("dropbox-api-result")
        .ok_or_else(|| {
            DropboxError::Decode("files/download: no Dropbox-API-Result header".into())
        })?;
    error::decode_json("files/download", value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_format_as_http_wants() {
        assert_eq!(ByteRange::from_offset(0).header_value(), "bytes=0-");
        assert_eq!(
            ByteRange::with_len(10, 5).unwrap().header_value(),
            "bytes=10-14"
        );
        assert_eq!(ByteRange::with_len(10, 0), None);
        assert_eq!(ByteRange::with_len(u64::MAX, 2), None);
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(
            ContentRange::parse("bytes 10-14/100"),
            Some(ContentRange {
                start: 10,
                end: 14,
                total: Some(100)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 0-0/*"),
            Some(ContentRange {
                start: 0,
                end: 0,
                total: None
            })
        );
        assert_eq!(ContentRange::parse("bytes */100"), None);
    }
}
