//! Receiving request bodies onto disk without holding them in memory.
//!
//! Upload bodies (up to 150 MiB a request, files of many GiB through sessions) are streamed
//! chunk by chunk into a file while their content hash is computed, and the stream stops as soon
//! as the per-request limit is passed. Writing and hashing happen on the blocking pool a batch
//! at a time, straight from the chunks as they arrived (no copy into a write buffer), while the
//! next batch is being received. Files are also hashed back from disk in a blocking task
//! (session finish), so the async workers are never tied up for long.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::content_hash::{BlockDigest, ContentHasher};

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

/// Streams `body` into `file` from its start, hashing it, refusing more than `limit` bytes.
pub async fn receive(body: Body, file: File, limit: u64) -> Result<Received, ReceiveError> {
    Ok(receive_with_blocks(body, file, limit).await?.0)
}

/// [`receive`], with the digest of every 4 MiB block of what was received.
pub async fn receive_with_blocks(
    body: Body,
    file: File,
    limit: u64,
) -> Result<(Received, Vec<BlockDigest>), ReceiveError> {
    let (continued, hasher) =
        receive_continuing(body, file, 0, limit, ContentHasher::new(), false).await?;
    let (content_hash, blocks) = hasher.finish_with_blocks();
    let received = Received {
        size: continued.size,
        content_hash,
    };
    Ok((received, blocks))
}

/// What a body added to a sequential session.
#[derive(Debug, Clone)]
pub struct Continued {
    pub size: u64,
    /// The body's own content hash, when the caller asked for it.
    pub call_hash: Option<String>,
}

/// Bytes gathered from the body before they are written and hashed in one blocking task.
const BATCH_BYTES: usize = 1024 * 1024;

/// Streams `body` into `file` at `start` like [`receive`], feeding it into `running`, the hash
/// of everything stored before it: a sequential session keeps its file's hash this way, so
/// finishing it need not read the whole file back. The body's own hash costs a second pass of
/// SHA-256, so it is computed only when `hash_call` says a client asked to check it.
pub async fn receive_continuing(
    body: Body,
    file: File,
    start: u64,
    limit: u64,
    running: ContentHasher,
    hash_call: bool,
) -> Result<(Continued, ContentHasher), ReceiveError> {
    let mut sink = BatchWriter {
        file: Arc::new(file),
        at: start,
        hashes: Hashes {
            running,
            call: hash_call.then(ContentHasher::new),
        },
        batch: Vec::new(),
        batch_bytes: 0,
        writing: None,
    };
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let received = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| ReceiveError::Body(err.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ReceiveError::TooLarge);
            }
            sink.push(chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(error) = received {
        // The caller rolls the file back; no batch may land after that.
        let _ = sink.wait().await;
        return Err(error);
    }
    let hashes = sink.finish().await?;
    let continued = Continued {
        size,
        call_hash: hashes.call.map(ContentHasher::finish),
    };
    Ok((continued, hashes.running))
}

struct Hashes {
    running: ContentHasher,
    call: Option<ContentHasher>,
}

/// Writes and hashes batches of body chunks on the blocking pool, one batch at a time, while
/// the caller gathers the next.
struct BatchWriter {
    file: Arc<File>,
    /// Where the next batch goes in the file.
    at: u64,
    /// Owned by the batch being written while one is (it comes back when the batch is done).
    hashes: Hashes,
    batch: Vec<Bytes>,
    batch_bytes: usize,
    writing: Option<JoinHandle<std::io::Result<Hashes>>>,
}

impl BatchWriter {
    async fn push(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.batch_bytes += chunk.len();
        self.batch.push(chunk);
        if self.batch_bytes >= BATCH_BYTES {
            self.write_batch().await?;
        }
        Ok(())
    }

    /// Waits for the batch being written, then hands it the gathered one.
    async fn write_batch(&mut self) -> std::io::Result<()> {
        self.wait().await?;
        let batch = std::mem::take(&mut self.batch);
        let at = self.at;
        self.at += std::mem::take(&mut self.batch_bytes) as u64;
        let file = self.file.clone();
        let mut hashes = std::mem::replace(
            &mut self.hashes,
            Hashes {
                running: ContentHasher::new(),
                call: None,
            },
        );
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let mut offset = at;
            for chunk in batch {
                file.write_all_at(&chunk, offset)?;
                offset += chunk.len() as u64;
                hashes.running.update(&chunk);
                if let Some(call) = hashes.call.as_mut() {
                    call.update(&chunk);
                }
            }
            Ok(hashes)
        }));
        Ok(())
    }

    async fn wait(&mut self) -> std::io::Result<()> {
        if let Some(writing) = self.writing.take() {
            self.hashes = writing.await.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<Hashes> {
        if !self.batch.is_empty() {
            self.write_batch().await?;
        }
        self.wait().await?;
        Ok(self.hashes)
    }
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
