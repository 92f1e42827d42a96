//! A watchdog for upload requests, so that one never hangs.
//!
//! RPCs have a total timeout, but an upload cannot: sending 150 MiB over a slow line may
//! rightly take longer than any fixed limit, and reqwest's read timeout starts its clock when
//! the request starts, not when the body has been sent. So an upload body is wrapped to note
//! when its bytes were last taken by the connection and when they were all taken. The exchange
//! fails (as a transport error) if no byte was taken for `idle`, or if the whole body was sent
//! and no answer has come within `answer`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use reqwest::Body;

use super::error::DropboxError;

/// How far an upload body has got.
pub struct Progress {
    started: Instant,
    /// Milliseconds after `started` when a byte was last taken.
    last_ms: AtomicU64,
    /// Every byte has been taken.
    done: AtomicBool,
}

impl Progress {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.touch();
        self.done.store(true, Ordering::Relaxed);
    }

    /// Resolves with an error once the upload has stalled (see the module doc).
    pub async fn stalled(&self, idle: Duration, answer: Duration) -> DropboxError {
        loop {
            let done = self.done.load(Ordering::Relaxed);
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let limit = if done { answer } else { idle };
            let due = self.started + last + limit;
            if Instant::now() >= due {
                return DropboxError::Transport(if done {
                    format!(
                        "timed out: no answer within {} s after the upload was sent",
                        limit.as_secs()
                    )
                } else {
                    format!(
                        "timed out: the upload made no progress for {} s",
                        limit.as_secs()
                    )
                });
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// Wraps `body` so that its progress is recorded.
pub fn track(body: Body) -> (Body, Arc<Progress>) {
    let progress = Arc::new(Progress {
        started: Instant::now(),
        last_ms: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    // An empty body may never be polled at all.
    if body.is_end_stream() {
        progress.finish();
    }
    let tracked = Tracked {
        inner: body,
        progress: progress.clone(),
    };
    (Body::wrap(tracked), progress)
}

struct Tracked {
    inner: Body,
    progress: Arc<Progress>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(None) => this.progress.finish(),
            Poll::Ready(Some(_)) if this.inner.is_end_stream() => this.progress.finish(),
            Poll::Ready(Some(_)) => this.progress.touch(),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Passed on, so a body of known length keeps its Content-Length.
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_is_never_read_stalls() {
        let stream = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let (_body, progress) = track(Body::wrap_stream(stream));
        let error = progress
            .stalled(Duration::from_millis(50), Duration::from_secs(60))
            .await;
        assert!(error.to_string().contains("no progress"), "{error}");
    }

    #[tokio::test]
    async fn a_sent_body_waits_for_the_answer_limit() {
        let (body, progress) = track(Body::from("abc"));
        let response = reqwest::Response::from(axum::http::Response::new(body));
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"abc");
        let started = Instant::now();
        let error = progress
            .stalled(Duration::from_secs(60), Duration::from_millis(50))
            .await;
        assert!(error.to_string().contains("no answer"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
