//! Downloads: READs answered from the pinned version (`pinned`), read ahead over several
//! connections (`window`) or as one stream.
//!
//! A handle reads the version that was current at OPEN, whatever happens to the path later.
//! Sequential READs are answered from a feed that runs ahead of the client: with one
//! connection ([`DownloadSettings::connections`] = 1), one streaming download from the READ's
//! offset to the end of the file, read as the client reads; with more, consecutive ranges
//! downloaded at once (`window`), which holds at most `connections × range_size` bytes (the
//! configured read-ahead) per open download. A READ at another offset drops the feed and starts
//! a new one there. A range whose connection breaks is asked again from where it stopped
//! (`range`); a version that is gone, or an answer that is not exactly the asked bytes, fails
//! the READ.

mod pinned;
mod range;
mod window;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::api;
use super::file_info;
use crate::vfs::{FileInfo, FileReader, VPath, VfsResult};
use pinned::Pinned;
use range::RangeFetch;
use window::ReadAhead;

const MIB: u64 = 1024 * 1024;

/// How a file is downloaded (`[download]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadSettings {
    /// Ranged downloads in flight at once for one file being read; 1 = one streaming download.
    pub connections: usize,
    /// Bytes of each range: the read-ahead shared out between the connections.
    pub range_size: u64,
}

impl DownloadSettings {
    pub const DEFAULT_CONNECTIONS: usize = 4;
    pub const DEFAULT_READ_AHEAD: u64 = 32 * MIB;

    /// `read_ahead` bytes over `connections` ranges, each a whole number of MiB (at least one).
    pub fn new(connections: usize, read_ahead: u64) -> Self {
        let connections = connections.max(1);
        let share = read_ahead / connections as u64;
        DownloadSettings {
            connections,
            range_size: (share / MIB).max(1) * MIB,
        }
    }
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings::new(Self::DEFAULT_CONNECTIONS, Self::DEFAULT_READ_AHEAD)
    }
}

/// A file being downloaded, pinned to the version that was current at OPEN.
pub struct DropboxReader {
    pinned: Arc<Pinned>,
    settings: DownloadSettings,
    feed: Option<Feed>,
}

/// The bytes from `offset` on, for sequential READs.
struct Feed {
    source: Source,
    /// File offset of the first byte in `held`.
    offset: u64,
    /// What is left of the last chunk the source gave.
    held: Bytes,
}

enum Source {
    /// Boxed: a download under way is large, and a feed is made once per offset.
    Stream(Box<RangeFetch>),
    Window(ReadAhead),
}

impl Source {
    async fn next_chunk(&mut self) -> VfsResult<Option<Bytes>> {
        match self {
            Source::Stream(stream) => stream.next_chunk().await,
            Source::Window(window) => window.next_chunk().await,
        }
    }
}

impl Feed {
    /// The next `wanted` bytes: a slice of one chunk when that chunk holds them all (no copy),
    /// else the chunks they span joined into one buffer.
    async fn take(&mut self, wanted: usize, pinned: &Pinned) -> VfsResult<Bytes> {
        let mut joined = BytesMut::new();
        loop {
            let missing = wanted - joined.len();
            if self.held.len() >= missing {
                let tail = self.held.split_to(missing);
                self.offset += wanted as u64;
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
            self.held =
                self.source.next_chunk().await?.ok_or_else(|| {
                    pinned.failure("the download ended before the end of the file")
                })?;
        }
    }
}

impl DropboxReader {
    /// Reads `file`, the version at `path` when the handle was opened.
    pub(super) fn pinned(
        client: api::DropboxClient,
        path: VPath,
        file: api::FileMetadata,
        settings: DownloadSettings,
    ) -> Self {
        let rev = file.rev.clone();
        let info = file_info(&api::Metadata::File(file));
        DropboxReader {
            pinned: Arc::new(Pinned::new(client, path, &rev, info)),
            settings,
            feed: None,
        }
    }

    /// A feed from `offset` on: one stream with one connection, else a read-ahead window (which
    /// is one request too when the rest of the file fits in one range).
    fn feed_from(&self, offset: u64) -> Feed {
        let pinned = self.pinned.clone();
        let source = match self.settings.connections {
            1 => Source::Stream(Box::new(RangeFetch::new(
                pinned,
                offset,
                self.pinned.size(),
            ))),
            connections => Source::Window(ReadAhead::new(
                pinned,
                offset,
                self.settings.range_size,
                connections,
            )),
        };
        Feed {
            source,
            offset,
            held: Bytes::new(),
        }
    }
}

impl FileReader for DropboxReader {
    async fn read(&mut self, offset: u64, len: u32) -> VfsResult<Bytes> {
        let size = self.pinned.size();
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        match &mut self.feed {
            Some(Feed {
                offset: next,
                source: Source::Window(window),
                ..
            }) if *next == offset => window.widen(),
            Some(feed) if feed.offset == offset => {}
            _ => {
                // The old feed (and every range it has in flight) goes before the new one starts.
                self.feed = None;
                self.feed = Some(self.feed_from(offset));
            }
        }
        let feed = self.feed.as_mut().expect("a feed from this offset");
        let wanted = (len as u64).min(size - offset) as usize;
        let taken = feed.take(wanted, &self.pinned).await;
        if taken.is_err() {
            self.feed = None;
        }
        taken
    }

    fn stat(&self) -> FileInfo {
        self.pinned.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::{FileKind, VfsError};

    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};

    /// The Dropbox-API-Result of the stand-in servers' file: 1000 bytes, one revision.
    const META: &str = r#"{"name":"a.bin","id":"id:a","client_modified":"2026-01-01T00:00:00Z","server_modified":"2026-01-01T00:00:00Z","rev":"0123456789","size":1000}"#;

    /// One stream of the whole rest of the file, as before read-ahead.
    const ONE_STREAM: DownloadSettings = DownloadSettings {
        connections: 1,
        range_size: MIB,
    };

    /// Ranges of 100 bytes, 4 at once: the 1000-byte file is 10 ranges.
    const WINDOW: DownloadSettings = DownloadSettings {
        connections: 4,
        range_size: 100,
    };

    /// Byte `i` of the stand-in file.
    fn file_bytes(from: usize, to: usize) -> Vec<u8> {
        (from..to).map(|i| (i % 251) as u8).collect()
    }

    /// The range a download asks for (`Range: bytes=a-b`), end exclusive.
    fn asked_range(headers: &HeaderMap) -> (u64, u64) {
        let value = headers["range"].to_str().unwrap();
        let (first, last) = value.trim_start_matches("bytes=").split_once('-').unwrap();
        (first.parse().unwrap(), last.parse::<u64>().unwrap() + 1)
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

    /// A 206 for `start..end` whose body is the file's bytes in pieces of `piece` bytes, each
    /// after `pause`, ending early with an error after `cut` bytes if given.
    fn ranged_answer(
        (start, end): (u64, u64),
        piece: usize,
        pause: std::time::Duration,
        cut: Option<usize>,
    ) -> Response {
        let body = file_bytes(start as usize, end as usize);
        let sent = cut.unwrap_or(body.len()).min(body.len());
        let mut pieces: Vec<Result<Bytes, std::io::Error>> = body[..sent]
            .chunks(piece)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if sent < body.len() {
            pieces.push(Err(std::io::Error::other("cut")));
        }
        let stream =
            futures::StreamExt::then(futures::stream::iter(pieces), move |piece| async move {
                tokio::time::sleep(pause).await;
                piece
            });
        let body = axum::body::Body::from_stream(stream);
        let range = format!("bytes {start}-{}/1000", end - 1);
        answer_with(StatusCode::PARTIAL_CONTENT, body, Some(range))
    }

    /// A reader of the 1000-byte file pinned at its revision, whose downloads `download` answers.
    async fn reader_served_by<H, T>(download: H, settings: DownloadSettings) -> DropboxReader
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
        let client = api::DropboxClient::new(api::ClientOptions::new(endpoints, credentials));
        let info = FileInfo {
            name: "a.bin".into(),
            kind: FileKind::File,
            size: 1000,
            mtime: None,
        };
        let path = VPath::parse("/a.bin").unwrap();
        DropboxReader {
            pinned: Arc::new(Pinned::new(client.unwrap(), path, "0123456789", info)),
            settings,
            feed: None,
        }
    }

    /// One READ of 100 bytes at 600 from a stand-in server whose `answer` to a download of
    /// `start..end` is (status, Content-Range, body length): it can ignore the Range (200),
    /// answer another range or size, or end the body early, as a misbehaving server or proxy
    /// might.
    async fn read_from_server(
        settings: DownloadSettings,
        answer: fn(u64, u64) -> (u16, Option<String>, u64),
    ) -> VfsResult<Bytes> {
        let download = move |headers: HeaderMap| async move {
            let (start, end) = asked_range(&headers);
            let (status, content_range, len) = answer(start, end);
            let body = axum::body::Body::from(vec![7u8; len as usize]);
            answer_with(StatusCode::from_u16(status).unwrap(), body, content_range)
        };
        reader_served_by(download, settings)
            .await
            .read(600, 100)
            .await
    }

    /// A reader of the file from a stand-in server that sends every download body in pieces of
    /// `piece` bytes, so READs fall inside one piece or across several (and across ranges).
    async fn reader_of_chunked_file(piece: usize, settings: DownloadSettings) -> DropboxReader {
        let download = move |headers: HeaderMap| async move {
            ranged_answer(asked_range(&headers), piece, Default::default(), None)
        };
        reader_served_by(download, settings).await
    }

    /// Sequential READs come from the download whatever its chunks and ranges: a READ inside a
    /// chunk is a slice of it, one across chunks or ranges joins them, one ending on a range's
    /// last byte or at the end of the file is whole, and either way the bytes are the file's.
    #[tokio::test]
    async fn reads_return_the_files_bytes_whatever_the_download_chunks() {
        for settings in [ONE_STREAM, WINDOW] {
            for piece in [1, 7, 100, 333, 1000] {
                let mut reader = reader_of_chunked_file(piece, settings).await;
                let mut offset = 0;
                for len in [10, 90, 250, 3, 47, 400, 500] {
                    let data = reader.read(offset as u64, len).await.unwrap();
                    let end = (offset + len as usize).min(1000);
                    assert_eq!(&data[..], &file_bytes(offset, end)[..], "pieces of {piece}");
                    offset = end;
                }
                // A READ elsewhere starts a new download from there.
                let data = reader.read(42, 17).await.unwrap();
                assert_eq!(&data[..], &file_bytes(42, 59)[..], "pieces of {piece}");
                let data = reader.read(950, 100).await.unwrap();
                assert_eq!(&data[..], &file_bytes(950, 1000)[..], "pieces of {piece}");
                assert!(reader.read(1000, 10).await.unwrap().is_empty());
            }
        }
    }

    #[tokio::test]
    async fn a_read_accepts_only_the_asked_range_of_the_pinned_version() {
        fn range(start: u64, end: u64) -> Option<String> {
            Some(format!("bytes {start}-{}/1000", end - 1))
        }
        for settings in [ONE_STREAM, WINDOW] {
            let exact = read_from_server(settings, |s, e| (206, range(s, e), e - s)).await;
            assert_eq!(exact.unwrap().len(), 100);

            for answer in [
                // The whole file, the Range ignored.
                (|_, _| (200, None, 1000)) as fn(u64, u64) -> (u16, Option<String>, u64),
                // Another range than the one asked for.
                |_, _| (206, Some("bytes 0-999/1000".into()), 1000),
                // The asked start, but not the asked end.
                |s, e| (206, range(s, e + 1), e + 1 - s),
                // Another file size than the pinned version's.
                |s, e| (206, Some(format!("bytes {s}-{}/2000", e - 1)), e - s),
                // A body shorter than the asked bytes.
                |s, e| (206, range(s, e), 50),
                // A body longer than the asked bytes.
                |s, e| (206, range(s, e), e - s + 1),
            ] {
                let read = read_from_server(settings, answer).await;
                assert!(matches!(read, Err(VfsError::Failure(_))), "{read:?}");
            }
        }
    }

    /// A download that breaks off is asked again for the rest of its range, and the READs
    /// still get exactly the file's bytes; one that keeps breaking fails the READ.
    #[tokio::test]
    async fn a_broken_download_is_asked_again_from_where_it_stopped() {
        for (settings, breaks, succeeds) in [
            (ONE_STREAM, range::MAX_RESUMES, true),
            (WINDOW, range::MAX_RESUMES, true),
            (ONE_STREAM, range::MAX_RESUMES + 1, false),
        ] {
            let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = asked.clone();
            let download = move |headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let range = asked_range(&headers);
                    let tries = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(range);
                        seen.len() as u32
                    };
                    // The first `breaks` answers are cut after 30 bytes.
                    let cut = (tries <= breaks).then_some(30);
                    ranged_answer(range, 10, Default::default(), cut)
                }
            };
            let mut reader = reader_served_by(download, settings).await;
            let read = reader.read(0, 150).await;
            if succeeds {
                assert_eq!(&read.unwrap()[..], &file_bytes(0, 150)[..]);
                let asked = asked.lock().unwrap();
                let end = asked[0].1;
                let starts: Vec<u64> = asked.iter().take(4).map(|r| r.0).collect();
                assert_eq!(
                    starts,
                    [0, 30, 60, 90],
                    "each try from where the last stopped"
                );
                assert!(asked.iter().take(4).all(|r| r.1 == end), "{asked:?}");
            } else {
                let error = read.unwrap_err().to_string();
                assert!(error.contains("download of /a.bin failed"), "{error}");
            }
        }
    }

    /// With read-ahead, several ranges are downloaded at once, never more than the configured
    /// connections, and consecutive ranges of the configured size are asked for.
    #[tokio::test]
    async fn ranges_are_fetched_at_once_up_to_the_connections() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, most, seen) = (now.clone(), peak.clone(), asked.clone());
        let download = move |headers: HeaderMap| {
            let (count, most, seen) = (count.clone(), most.clone(), seen.clone());
            async move {
                let range = asked_range(&headers);
                seen.lock().unwrap().push(range);
                let in_flight = count.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(in_flight, Ordering::SeqCst);
                let pause = std::time::Duration::from_millis(20);
                let answer = ranged_answer(range, 50, pause, None);
                // Counted until its body has been sent.
                let (parts, body) = answer.into_parts();
                let guard = CountDown(count);
                let body = futures::StreamExt::map(body.into_data_stream(), move |piece| {
                    let _counted = &guard;
                    piece
                });
                Response::from_parts(parts, axum::body::Body::from_stream(body))
            }
        };
        let mut reader = reader_served_by(download, WINDOW).await;
        for offset in (0..1000).step_by(50) {
            let data = reader.read(offset, 50).await.unwrap();
            assert_eq!(
                &data[..],
                &file_bytes(offset as usize, offset as usize + 50)[..]
            );
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=4).contains(&peak), "peak of {peak} ranges in flight");
        let asked = asked.lock().unwrap().clone();
        let expected: Vec<(u64, u64)> = (0..10).map(|i| (i * 100, i * 100 + 100)).collect();
        assert_eq!(asked, expected);
    }

    /// Decrements its counter when dropped.
    struct CountDown(Arc<AtomicUsize>);

    impl Drop for CountDown {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Dropping the reader (CLOSE, a disconnect) stops every range it has in flight at once,
    /// those still waiting for Dropbox's answer too, and no body goes on being sent.
    #[tokio::test]
    async fn dropping_the_reader_stops_its_downloads() {
        let now = Arc::new(AtomicUsize::new(0));
        let count = now.clone();
        let download = move |headers: HeaderMap| {
            let count = count.clone();
            async move {
                let range = asked_range(&headers);
                if range.0 > 0 {
                    // Every range but the first waits long for its answer.
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                count.fetch_add(1, Ordering::SeqCst);
                // A byte every 20 ms: the body is still being sent when the reader goes.
                let pause = std::time::Duration::from_millis(20);
                let answer = ranged_answer(range, 1, pause, None);
                let (parts, body) = answer.into_parts();
                let guard = CountDown(count);
                let body = futures::StreamExt::map(body.into_data_stream(), move |piece| {
                    let _counted = &guard;
                    piece
                });
                Response::from_parts(parts, axum::body::Body::from_stream(body))
            }
        };
        let mut reader = reader_served_by(download, WINDOW).await;
        for offset in 0..4 {
            reader.read(offset, 1).await.unwrap();
        }
        let pinned = reader.pinned.clone();
        assert_eq!(
            Arc::strong_count(&pinned),
            7,
            "this, the reader, its window, 4 ranges"
        );
        drop(reader);
        let soon = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while Arc::strong_count(&pinned) > 1 {
            assert!(std::time::Instant::now() < soon, "ranges still fetched");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while now.load(Ordering::SeqCst) > 0 {
            assert!(std::time::Instant::now() < deadline, "downloads still sent");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
