//! Downloads: READs answered from one streaming response, pinned to one version.

use bytes::{Bytes, BytesMut};

use super::api::{self, DropboxClient};
use super::{file_info, map_error};
use crate::vfs::{FileInfo, FileReader, VPath, VfsError, VfsResult};

/// A file being downloaded, pinned to the version that was current at OPEN: every request
/// names that revision (`rev:` path), so a file replaced while the handle is open can never mix
/// versions. Sequential READs are answered from one streaming HTTP response; a READ at another
/// offset starts a new ranged download, which must come back as exactly the asked range (206
/// from that offset). If the version is gone or the answer does not fit, the READ fails:
/// a client gets an error, never a short or mixed file.
pub struct DropboxReader {
    client: DropboxClient,
    /// `rev:<rev>`, the download path of the pinned version.
    pinned: String,
    rev: String,
    path: VPath,
    info: FileInfo,
    stream: Option<ReadStream>,
}

struct ReadStream {
    download: api::Download,
    /// File offset of the first byte in `held`.
    offset: u64,
    /// What is left of the last chunk the download gave.
    held: Bytes,
}

impl ReadStream {
    /// The next `wanted` bytes: a slice of one chunk when that chunk holds them all (no copy),
    /// else the chunks they span joined into one buffer. An error says why the download ended.
    async fn take(&mut self, wanted: usize) -> Result<Bytes, String> {
        let mut joined = BytesMut::new();
        loop {
            let missing = wanted - joined.len();
            if self.held.len() >= missing {
                let tail = self.held.split_to(missing);
                if joined.is_empty() {
                    return Ok(tail);
                }
                joined.extend_from_slice(&tail);
                return Ok(joined.freeze());
            }
            if !self.held.is_empty() {
                joined.reserve(wanted);
                joined.extend_from_slice(&self.held);
            }
            self.held = match self.download.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Err("the download ended before the end of the file".into()),
                Err(e) => return Err(e.to_string()),
            };
        }
    }
}

impl DropboxReader {
    /// Reads `file`, the version at `path` when the handle was opened.
    pub(super) fn pinned(client: DropboxClient, path: VPath, file: api::FileMetadata) -> Self {
        DropboxReader {
            client,
            pinned: format!("rev:{}", file.rev),
            rev: file.rev.clone(),
            path,
            info: file_info(&api::Metadata::File(file)),
            stream: None,
        }
    }

    async fn open_stream(&self, offset: u64) -> VfsResult<ReadStream> {
        let range = api::ByteRange::from_offset(offset);
        let download = match self.client.download(&self.pinned, Some(range)).await {
            Ok(download) => download,
            Err(e) if e.is_not_found() => return Err(self.version_gone()),
            Err(e) => return Err(map_error(e, &self.path)),
        };
        self.check_answer(&download, offset)?;
        Ok(ReadStream {
            download,
            offset,
            held: Bytes::new(),
        })
    }

    /// The answer must be the pinned version's bytes from `offset` on, and nothing else.
    fn check_answer(&self, download: &api::Download, offset: u64) -> VfsResult<()> {
        if download.metadata.rev != self.rev || download.metadata.size != self.info.size {
            return Err(self.version_gone());
        }
        let range = download.content_range();
        let fits = download.is_partial()
            && range
                .is_some_and(|r| r.start == offset && r.total.is_none_or(|t| t == self.info.size));
        if fits {
            return Ok(());
        }
        Err(VfsError::Failure(format!(
            "download of {} failed: asked for the bytes from {offset}, Dropbox answered {} {}",
            self.path,
            download.response.status(),
            range.map_or("without a Content-Range".to_string(), |r| format!(
                "bytes {}-{}",
                r.start, r.end
            )),
        )))
    }

    fn version_gone(&self) -> VfsError {
        VfsError::Failure(format!(
            "{} changed on Dropbox since it was opened (version {} is no longer available); \
             open it again",
            self.path, self.rev
        ))
    }
}

impl FileReader for DropboxReader {
    async fn read(&mut self, offset: u64, len: u32) -> VfsResult<Bytes> {
        if offset >= self.info.size || len == 0 {
            return Ok(Bytes::new());
        }
        let reusable = self.stream.as_ref().is_some_and(|s| s.offset == offset);
        if !reusable {
            self.stream = None;
            self.stream = Some(self.open_stream(offset).await?);
        }
        let stream = self.stream.as_mut().expect("stream opened above");
        let wanted = (len as u64).min(self.info.size - offset) as usize;
        match stream.take(wanted).await {
            Ok(data) => {
                stream.offset += wanted as u64;
                Ok(data)
            }
            Err(failure) => {
                self.stream = None;
                Err(VfsError::Failure(format!(
                    "download of {} failed: {failure}",
                    self.path
                )))
            }
        }
    }

    fn stat(&self) -> FileInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::FileKind;

    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};

    /// The Dropbox-API-Result of the stand-in servers' file: 1000 bytes, one revision.
    const META: &str = r#"{"name":"a.bin","id":"id:a","client_modified":"2026-01-01T00:00:00Z","server_modified":"2026-01-01T00:00:00Z","rev":"0123456789","size":1000}"#;

    /// Where a download asks to start (`Range: bytes=N-`).
    fn asked_offset(headers: &HeaderMap) -> u64 {
        headers["range"]
            .to_str()
            .unwrap()
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse()
            .unwrap()
    }

    /// `body` as a download answer with `status`, the file's metadata and `content_range`.
    fn answer_with(
        status: StatusCode,
        body: axum::body::Body,
        content_range: Option<String>,
    ) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert("dropbox-api-result", HeaderValue::from_static(META));
        if let Some(range) = content_range {
            headers.insert("content-range", HeaderValue::from_str(&range).unwrap());
        }
        response
    }

    /// A reader of the 1000-byte file pinned at its revision, whose downloads `download` answers.
    async fn reader_served_by<H, T>(download: H) -> DropboxReader
    where
        H: axum::handler::Handler<T, ()>,
        T: 'static,
    {
        let app = axum::Router::new().route("/2/files/download", axum::routing::post(download));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let endpoints = api::Endpoints::all(&base).unwrap();
        let credentials = api::Credentials::AccessToken("token".into());
        let client = DropboxClient::new(api::ClientOptions::new(endpoints, credentials));
        DropboxReader {
            client: client.unwrap(),
            pinned: "rev:0123456789".into(),
            rev: "0123456789".into(),
            path: VPath::parse("/a.bin").unwrap(),
            info: FileInfo {
                name: "a.bin".into(),
                kind: FileKind::File,
                size: 1000,
                mtime: None,
            },
            stream: None,
        }
    }

    /// One READ of 100 bytes at 600 from a stand-in server whose `answer` to a download from
    /// `offset` is (status, Content-Range, body length): it can ignore the Range (200), answer
    /// another range or size, or end the body early, as a misbehaving server or proxy might.
    async fn read_from_server(answer: fn(u64) -> (u16, Option<String>, u64)) -> VfsResult<Bytes> {
        let download = move |headers: HeaderMap| async move {
            let (status, content_range, len) = answer(asked_offset(&headers));
            let body = axum::body::Body::from(vec![7u8; len as usize]);
            answer_with(StatusCode::from_u16(status).unwrap(), body, content_range)
        };
        reader_served_by(download).await.read(600, 100).await
    }

    /// A reader of a 1000-byte file (byte `i` is `i % 251`) from a stand-in server that sends
    /// every download body in pieces of `piece` bytes, so READs fall inside one piece or across
    /// several.
    async fn reader_of_chunked_file(piece: usize) -> DropboxReader {
        let download = move |headers: HeaderMap| async move {
            let offset = asked_offset(&headers) as usize;
            let body: Vec<u8> = (offset..1000).map(|i| (i % 251) as u8).collect();
            let pieces: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(piece)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let body = axum::body::Body::from_stream(futures::stream::iter(pieces));
            let range = format!("bytes {offset}-999/1000");
            answer_with(StatusCode::PARTIAL_CONTENT, body, Some(range))
        };
        reader_served_by(download).await
    }

    /// Sequential READs come from one download whatever its chunks: a READ inside a chunk is a
    /// slice of it, one across chunks joins them, and either way the bytes are the file's.
    #[tokio::test]
    async fn reads_return_the_files_bytes_whatever_the_download_chunks() {
        let expected =
            |from: usize, to: usize| -> Vec<u8> { (from..to).map(|i| (i % 251) as u8).collect() };
        for piece in [1, 7, 100, 333, 1000] {
            let mut reader = reader_of_chunked_file(piece).await;
            let mut offset = 0;
            for len in [10, 90, 250, 3, 400, 500] {
                let data = reader.read(offset as u64, len).await.unwrap();
                let end = (offset + len as usize).min(1000);
                assert_eq!(&data[..], &expected(offset, end)[..], "pieces of {piece}");
                offset = end;
            }
            // A READ elsewhere starts a new download from there.
            let data = reader.read(42, 17).await.unwrap();
            assert_eq!(&data[..], &expected(42, 59)[..], "pieces of {piece}");
            assert!(reader.read(1000, 10).await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn a_read_accepts_only_the_asked_range_of_the_pinned_version() {
        fn range(at: u64) -> Option<String> {
            Some(format!("bytes {at}-999/1000"))
        }
        let exact = read_from_server(|at| (206, range(at), 1000 - at)).await;
        assert_eq!(exact.unwrap().len(), 100);

        for answer in [
            // The whole file, the Range ignored.
            (|_| (200, None, 1000)) as fn(u64) -> (u16, Option<String>, u64),
            // Another range than the one asked for.
            |_| (206, Some("bytes 0-999/1000".into()), 1000),
            // Another file size than the pinned version's.
            |at| (206, Some(format!("bytes {at}-999/2000")), 1000 - at),
            // The body ends before the asked bytes.
            |at| (206, range(at), 50),
        ] {
            let read = read_from_server(answer).await;
            assert!(matches!(read, Err(VfsError::Failure(_))), "{read:?}");
        }
    }
}
