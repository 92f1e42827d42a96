//! A directory handle: backend pages in, READDIR replies of bounded size out.
//!
//! A backend page can hold thousands of entries (Dropbox returns up to 2,000) while OpenSSH
//! refuses any packet over 256 KiB, so replies are cut independently of pages: at most
//! [`MAX_ENTRIES`] entries and [`MAX_REPLY_BYTES`] encoded bytes each, well under the limit even
//! with 255-byte names. The end of the listing is an EOF status, never an empty NAME.

use std::collections::VecDeque;

use russh_sftp::protocol::{Name, Packet};

use super::attrs;
use super::status::{self, Outcome};
use crate::vfs::{DirLister, FileInfo};

const MAX_ENTRIES: usize = 100;
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// NAME header: length, type, id, count.
const NAME_HEADER_BYTES: usize = 4 + 1 + 4 + 4;
/// Per entry besides the two strings: their length fields and the attributes (flags, size,
/// permissions, atime, mtime).
const ENTRY_OVERHEAD_BYTES: usize = 4 + 4 + 4 + 8 + 4 + 4 + 4;

pub(super) struct Listing<L> {
    lister: L,
    /// Entries fetched from the backend and not yet sent.
    pending: VecDeque<FileInfo>,
    exhausted: bool,
}

impl<L: DirLister> Listing<L> {
    pub fn new(lister: L) -> Self {
        Listing {
            lister,
            pending: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The reply to one READDIR.
    pub async fn next_reply(&mut self, id: u32, owner: &str, now: i64) -> Outcome {
        self.fill().await?;
        if self.pending.is_empty() {
            return Ok(status::eof(id));
        }
        let mut files = Vec::new();
        let mut bytes = NAME_HEADER_BYTES;
        while let Some(info) = self.pending.front() {
            let entry = attrs::name_entry(info, owner, now);
            let size = ENTRY_OVERHEAD_BYTES + entry.filename.len() + entry.longname.len();
            if !files.is_empty() && (files.len() == MAX_ENTRIES || bytes + size > MAX_REPLY_BYTES) {
                break;
            }
            bytes += size;
            files.push(entry);
            self.pending.pop_front();
        }
        Ok(Packet::Name(Name { id, files }))
    }

    /// Fetches pages until a full reply is ready or the listing is complete.
    async fn fill(&mut self) -> crate::vfs::VfsResult<()> {
        while self.pending.len() < MAX_ENTRIES && !self.exhausted {
            match self.lister.next_page().await? {
                Some(page) => self.pending.extend(page.into_iter().filter(is_listable)),
                None => self.exhausted = true,
            }
        }
        Ok(())
    }
}

/// Clients reject names that could climb out of the folder (OpenSSH refuses any with "/").
fn is_listable(info: &FileInfo) -> bool {
    let ok =
        !info.name.is_empty() && info.name != "." && info.name != ".." && !info.name.contains('/');
    if !ok {
        tracing::warn!(name = %crate::log_safe::Untrusted(&info.name), "leaving an unlistable name out of a directory listing");
    }
    ok
}
