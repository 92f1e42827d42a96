//! Receiving request bodies onto disk without holding them in memory.
//!
//! Upload bodies (up to 150 MiB a request, files of many GiB through sessions) are streamed
//! chunk by chunk into a file while their content hash is computed, and the stream stops as soon
//! as the per-request limit is passed. Files are also hashed back from disk in a blocking task
//! (session finish), so the async workers are never tied up for long.

use std::io::Read;
use std::path::Path;

use axum::body::Body;
use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::content_hash::ContentHasher;

/// Largest body of one upload request (150 MiB).
pub const REQUEST_LIMIT: u64 = 150 * 1024 * 1024;

/// What was received.
#[derive(Debug, Clone)]
pub struct Received {
    pub size: u64,
    pub content_hash: String,
}

/// Why receiving stopped.
#[derive(Debug)]
pub enum ReceiveError {
    /// More than the limit arrived (the rest was not read).
    TooLarge,
    /// The client went away or sent a broken body.
    Body(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for ReceiveError {
    fn from(err: std::io::Error) -> Self {
        ReceiveError::Io(err)
    }
}

/// Streams `body` into `sink`, hashing it, refusing more than `limit` bytes.
pub async fn receive<W: AsyncWrite + Unpin>(
    body: Body,
    sink: W,
    limit: u64,
) -> Result<Received, ReceiveError> {
    let (continued, hasher) =
        receive_continuing(body, sink, limit, ContentHasher::new(), false).await?;
    Ok(Received {
        size: continued.size,
        content_hash: hasher.finish(),
    })
}

/// What a body added to a sequential session.
#[derive(Debug, Clone)]
pub struct Continued {
    pub size: u64,
    /// The body's own content hash, when the caller asked for it.
    pub call_hash: Option<String>,
}

/// Streams `body` into `sink` like [`receive`], feeding it into `running`, the hash of
/// everything stored before it: a sequential session keeps its file's hash this way, so
/// finishing it need not read the whole file back. The body's own hash costs a second pass of
/// SHA-256, so it is computed only when `hash_call` says a client asked to check it.
pub async fn receive_continuing<W: AsyncWrite + Unpin>(
    body: Body,
    sink: W,
    limit: u64,
    mut running: ContentHasher,
    hash_call: bool,
) -> Result<(Continued, ContentHasher), ReceiveError> {
    let mut sink = tokio::io::BufWriter::with_capacity(1024 * 1024, sink);
    let mut call_hasher = hash_call.then(ContentHasher::new);
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ReceiveError::Body(err.to_string()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ReceiveError::TooLarge);
        }
        running.update(&chunk);
        if let Some(hasher) = call_hasher.as_mut() {
            hasher.update(&chunk);
        }
        sink.write_all(&chunk).await?;
    }
    sink.flush().await?;
    let continued = Continued {
        size,
        call_hash: call_hasher.map(ContentHasher::finish),
    };
    Ok((continued, running))
}

/// Size and content hash of a file on disk, computed off the async workers.
pub async fn hash_file(path: &Path) -> std::io::Result<Received> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = ContentHasher::new();
        let mut buffer = vec![0u8; 1024 * 1024];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            size += read as u64;
            hasher.update(&buffer[..read]);
        }
        Ok(Received {
            size,
            content_hash: hasher.finish(),
        })
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Concatenates `parts` into `out`, hashing the result, off the async workers.
pub async fn concatenate(
    parts: Vec<std::path::PathBuf>,
    out: std::path::PathBuf,
) -> std::io::Result<Received> {
    tokio::task::spawn_blocking(move || {
        let mut output = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let mut hasher = ContentHasher::new();
        let mut buffer = vec![0u8; 1024 * 1024];
        let mut size = 0u64;
        for part in parts {
            let mut input = std::fs::File::open(part)?;
            loop {
                let read = input.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                size += read as u64;
                hasher.update(&buffer[..read]);
                std::io::Write::write_all(&mut output, &buffer[..read])?;
            }
        }
        std::io::Write::flush(&mut output)?;
        Ok(Received {
            size,
            content_hash: hasher.finish(),
        })
    })
    .await
    .map_err(std::io::Error::other)?
}
