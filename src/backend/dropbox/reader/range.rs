//! One byte range of the pinned version as one streaming download, asked again from where it
//! stopped when its connection breaks.
//!
//! A download only reads, so asking for the rest of a range again is harmless; the new answer
//! is checked like the first (same version, exactly the rest of the range), so a resumed range
//! can never join two versions. A range broken more than [`MAX_RESUMES`] times fails.

use std::sync::Arc;

use bytes::Bytes;

use super::super::api::Download;
use super::pinned::Pinned;
use crate::log_safe::Untrusted;
use crate::vfs::VfsResult;

/// How many times one range is asked again after its download broke off.
pub(super) const MAX_RESUMES: u32 = 3;

pub(super) struct RangeFetch {
    pinned: Arc<Pinned>,
    /// The next byte to receive.
    at: u64,
    /// The end of the range (exclusive).
    end: u64,
    /// The download under way, started at the first `next_chunk` and after each break.
    download: Option<Download>,
    resumes: u32,
}

impl RangeFetch {
    /// Bytes `start..end` of the pinned version; nothing is asked before the first chunk is.
    pub fn new(pinned: Arc<Pinned>, start: u64, end: u64) -> Self {
        RangeFetch {
            pinned,
            at: start,
            end,
            download: None,
            resumes: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.end - self.at
    }

    /// The next piece of the range, None once all of it has come.
    pub async fn next_chunk(&mut self) -> VfsResult<Option<Bytes>> {
        while self.at < self.end {
            let download = match &mut self.download {
                Some(download) => download,
                None => self
                    .download
                    .insert(self.pinned.download(self.at, self.end).await?),
            };
            let broken = match download.next_chunk().await {
                Ok(Some(chunk)) if chunk.len() as u64 <= self.end - self.at => {
                    self.at += chunk.len() as u64;
                    if chunk.is_empty() {
                        continue;
                    }
                    return Ok(Some(chunk));
                }
                Ok(Some(_)) => return Err(self.pinned.failure("Dropbox sent more than asked")),
                Ok(None) => "the answer ended before the asked bytes".to_string(),
                Err(e) => e.to_string(),
            };
            self.resume_after(&broken)?;
        }
        Ok(None)
    }

    /// Drops the broken download so that the next chunk asks for the rest, unless the range
    /// has broken too often.
    fn resume_after(&mut self, broken: &str) -> VfsResult<()> {
        self.download = None;
        if self.resumes == MAX_RESUMES {
            return Err(self.pinned.failure(broken));
        }
        self.resumes += 1;
        tracing::debug!(
            path = %Untrusted(&self.pinned.path),
            at = self.at,
            end = self.end,
            %broken,
            "a download broke off; asking for the rest of its range again"
        );
        Ok(())
    }
}
