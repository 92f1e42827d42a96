//! Read-ahead over several connections: the bytes after a sequential READ come from
//! consecutive ranges of the pinned version downloaded at once, and are handed out strictly in
//! file order.
//!
//! Across a long distance one TCP connection carries far less than the links at either end
//! (about 25 MB/s), so a large file is fetched as ranges of `range_size` bytes, up to
//! `connections` of them in flight, each on its own HTTP/1.1 connection (`api::client`). Each
//! range is fetched by a task of its own, which pushes its bytes to the reader as they come;
//! when the reader has taken all of the first range, the next range after the last one starts.
//! A range holds at most its own bytes, so one window holds at most `connections ×
//! range_size` bytes (the configured read-ahead), whatever the client's speed.
//!
//! The window opens one range at a time: it starts with one range in flight and allows one
//! more with each READ that continues where the last one ended, so a client that reads once and
//! seeks elsewhere (random access) costs one range, not `connections`. Dropping the window
//! (a READ elsewhere, CLOSE, a disconnect) aborts every range's task at once.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::pinned::Pinned;
use super::range::RangeFetch;
use crate::vfs::{VfsError, VfsResult};

pub(super) struct ReadAhead {
    pinned: Arc<Pinned>,
    range_size: u64,
    connections: usize,
    /// Ranges allowed in flight now: from 1 up to `connections`, one more per sequential READ.
    allowed: usize,
    /// In file order; the first is the one READs are taking from.
    lanes: VecDeque<Lane>,
    /// Where the range after the last lane starts.
    next_start: u64,
}

impl ReadAhead {
    /// A window from `offset` on, with its first range already asked for.
    pub fn new(pinned: Arc<Pinned>, offset: u64, range_size: u64, connections: usize) -> Self {
        let mut window = ReadAhead {
            pinned,
            range_size,
            connections,
            allowed: 1,
            lanes: VecDeque::new(),
            next_start: offset,
        };
        window.fill();
        window
    }

    /// A READ continued where the last one ended: one more range may be in flight.
    pub fn widen(&mut self) {
        if self.allowed < self.connections {
            self.allowed += 1;
            self.fill();
        }
    }

    /// The next bytes in file order, None at the end of the file.
    pub async fn next_chunk(&mut self) -> VfsResult<Option<Bytes>> {
        while let Some(first) = self.lanes.front_mut() {
            if let Some(chunk) = first.next_chunk().await? {
                return Ok(Some(chunk));
            }
            self.lanes.pop_front();
            self.fill();
        }
        Ok(None)
    }

    /// Starts ranges after the last one while the window has room and the file has bytes.
    fn fill(&mut self) {
        let size = self.pinned.size();
        while self.lanes.len() < self.allowed && self.next_start < size {
            let end = size.min(self.next_start + self.range_size);
            let range = RangeFetch::new(self.pinned.clone(), self.next_start, end);
            self.lanes.push_back(Lane::start(range));
            self.next_start = end;
        }
    }
}

/// One range being fetched by its own task.
struct Lane {
    chunks: mpsc::UnboundedReceiver<VfsResult<Bytes>>,
    /// Bytes of the range not yet taken.
    left: u64,
    _fetch: AbortOnDropHandle<()>,
}

impl Lane {
    fn start(range: RangeFetch) -> Lane {
        // Unbounded in chunks, bounded in bytes: the task sends at most its range.
        let (sender, chunks) = mpsc::unbounded_channel();
        let left = range.len();
        let fetch = tokio::spawn(fetch_into(range, sender).in_current_span());
        Lane {
            chunks,
            left,
            _fetch: AbortOnDropHandle::new(fetch),
        }
    }

    /// The range's next bytes, None once all of them were taken; its failure if it failed.
    async fn next_chunk(&mut self) -> VfsResult<Option<Bytes>> {
        if self.left == 0 {
            return Ok(None);
        }
        // The task sends every byte or its failure; ending without either means it died.
        let chunk = self.chunks.recv().await.unwrap_or_else(|| {
            Err(VfsError::Failure(
                "a download task ended before its range was fetched".into(),
            ))
        })?;
        self.left -= chunk.len() as u64;
        Ok(Some(chunk))
    }
}

/// Sends the range's bytes as they come, then ends; a failure is sent as the last message.
async fn fetch_into(mut range: RangeFetch, sender: mpsc::UnboundedSender<VfsResult<Bytes>>) {
    while let Some(next) = range.next_chunk().await.transpose() {
        let failed = next.is_err();
        if sender.send(next).is_err() || failed {
            return;
        }
    }
}
