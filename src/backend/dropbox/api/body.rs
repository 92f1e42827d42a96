//! [`UploadBody`]: where an upload request's bytes come from, so that it can be sent again.
//!
//! A retry needs the body a second time. Bytes in memory can simply be sent again; a body
//! streamed from a file cannot, because the first try consumed the stream. The caller that
//! owns the file therefore hands over a [`BodyFactory`] instead: a function that opens a fresh
//! stream for every try (the upload code makes one from its spool, so the file is never held in
//! memory). A one-shot stream is still accepted; it is sent once and never retried.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::Body;

/// The future a [`BodyFactory`] returns.
pub type BodyFuture = Pin<Box<dyn Future<Output = io::Result<Body>> + Send>>;

/// Makes a fresh body for each try of an upload request.
pub trait BodyFactory: Send + Sync {
    fn make(&self) -> BodyFuture;
}

impl<F, Fut> BodyFactory for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = io::Result<Body>> + Send + 'static,
{
    fn make(&self) -> BodyFuture {
        Box::pin(self())
    }
}

/// The bytes of an upload request.
pub enum UploadBody {
    /// In memory: sent again as often as needed.
    Bytes(Bytes),
    /// Made afresh for every try.
    Factory(Arc<dyn BodyFactory>),
    /// A stream that can be sent once (None once it has been).
    Once(Option<Body>),
}

impl UploadBody {
    /// A body made by `factory` for every try.
    pub fn factory(factory: impl BodyFactory + 'static) -> Self {
        UploadBody::Factory(Arc::new(factory))
    }

    /// A one-shot stream that has been sent: there is nothing to send again.
    pub fn is_spent(&self) -> bool {
        matches!(self, UploadBody::Once(None))
    }

    /// The body for the next try; None if a one-shot stream has already been sent.
    pub async fn next(&mut self) -> Option<io::Result<Body>> {
        match self {
            UploadBody::Bytes(bytes) => Some(Ok(Body::from(bytes.clone()))),
            UploadBody::Factory(factory) => Some(factory.make().await),
            UploadBody::Once(body) => body.take().map(Ok),
        }
    }
}

impl From<Body> for UploadBody {
    /// In-memory bodies become replayable bytes; streams stay one-shot.
    fn from(body: Body) -> Self {
        match body.as_bytes() {
            Some(bytes) => UploadBody::Bytes(Bytes::copy_from_slice(bytes)),
            None => UploadBody::Once(Some(body)),
        }
    }
}

impl From<Bytes> for UploadBody {
    fn from(bytes: Bytes) -> Self {
        UploadBody::Bytes(bytes)
    }
}

impl From<Vec<u8>> for UploadBody {
    fn from(bytes: Vec<u8>) -> Self {
        UploadBody::Bytes(bytes.into())
    }
}

impl From<&'static [u8]> for UploadBody {
    fn from(bytes: &'static [u8]) -> Self {
        UploadBody::Bytes(Bytes::from_static(bytes))
    }
}

impl From<&'static str> for UploadBody {
    fn from(text: &'static str) -> Self {
        UploadBody::Bytes(Bytes::from_static(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bytes_of(body: Body) -> Vec<u8> {
        let response = reqwest::Response::from(axum::http::Response::new(body));
        response.bytes().await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn bytes_and_factories_replay_and_streams_do_not() {
        let mut bytes = UploadBody::from(Body::from("abc"));
        for _ in 0..2 {
            let body = bytes.next().await.unwrap().unwrap();
            assert_eq!(bytes_of(body).await, b"abc");
        }

        let mut made = UploadBody::factory(|| async { Ok(Body::from("fresh")) });
        for _ in 0..2 {
            let body = made.next().await.unwrap().unwrap();
            assert_eq!(bytes_of(body).await, b"fresh");
        }

        let stream = futures::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"x"))]);
        let mut once = UploadBody::from(Body::wrap_stream(stream));
        assert!(!once.is_spent());
        assert!(once.next().await.is_some());
        assert!(once.is_spent() && once.next().await.is_none());
    }
}
