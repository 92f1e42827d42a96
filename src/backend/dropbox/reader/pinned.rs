//! The version a read handle is pinned to, and what an answer for its bytes must be.
//!
//! Every download names `rev:<rev>`, so a file replaced while it is being read can never mix
//! two versions; and every answer must be exactly the asked bytes of that version (206, the
//! asked Content-Range, the version's rev and size), or the READ fails: a client gets an
//! error, never a short or mixed file.

use super::super::api::{self, DropboxClient};
use super::super::map_error;
use crate::vfs::{FileInfo, VPath, VfsError, VfsResult};

pub(super) struct Pinned {
    client: DropboxClient,
    /// `rev:<rev>`, the download path of the pinned version.
    download_path: String,
    rev: String,
    pub path: VPath,
    pub info: FileInfo,
}

impl Pinned {
    pub fn new(client: DropboxClient, path: VPath, rev: &str, info: FileInfo) -> Self {
        Pinned {
            client,
            download_path: format!("rev:{rev}"),
            rev: rev.to_string(),
            path,
            info,
        }
    }

    pub fn size(&self) -> u64 {
        self.info.size
    }

    /// Starts the download of bytes `start..end` (not empty) and checks its answer.
    pub async fn download(&self, start: u64, end: u64) -> VfsResult<api::Download> {
        let range = api::ByteRange::with_len(start, end - start).expect("a range of some bytes");
        let download = match self.client.download(&self.download_path, Some(range)).await {
            Ok(download) => download,
            Err(e) if e.is_not_found() => return Err(self.version_gone()),
            Err(e) => return Err(map_error(e, &self.path)),
        };
        self.check_answer(&download, start, end)?;
        Ok(download)
    }

    /// The answer must be the pinned version's bytes `start..end`, and nothing else; a body
    /// whose stated length is not the asked one cannot be.
    fn check_answer(&self, download: &api::Download, start: u64, end: u64) -> VfsResult<()> {
        if download.metadata.rev != self.rev || download.metadata.size != self.size() {
            return Err(self.version_gone());
        }
        let range = download.content_range();
        let length = download.response.content_length();
        let fits = download.is_partial()
            && length.is_none_or(|n| n == end - start)
            && range.is_some_and(|r| {
                r.start == start && r.end + 1 == end && r.total.is_none_or(|t| t == self.size())
            });
        if fits {
            return Ok(());
        }
        Err(self.failure(&format!(
            "asked for bytes {start}-{}, Dropbox answered {} {}",
            end - 1,
            download.response.status(),
            range.map_or("without a Content-Range".to_string(), |r| format!(
                "bytes {}-{}",
                r.start, r.end
            )),
        )))
    }

    /// A failed download of this file, saying why.
    pub fn failure(&self, why: &str) -> VfsError {
        VfsError::Failure(format!("download of {} failed: {why}", self.path))
    }

    fn version_gone(&self) -> VfsError {
        VfsError::Failure(format!(
            "{} changed on Dropbox since it was opened (version {} is no longer available); \
             open it again",
            self.path, self.rev
        ))
    }
}
