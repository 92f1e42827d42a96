//! The files one SFTP session has uploaded, so the permission checks can tell "the file this
//! client has just written" from anything else.
//!
//! Clients that upload to a temporary name and rename it when done (WinSCP's `.filepart`, lftp,
//! FileZilla) must rename their own upload to finish it; a user with "upload" may do that
//! without "rename" (see `vfs::permissions`). Only the session that committed a file counts:
//! nothing else ties a stored file to the client that wrote it, so a file from an earlier
//! session, another user's, or one this session removed again is not covered. A renamed upload
//! is this session's under its new name and no longer under the old one.
//!
//! Bounded: such a client renames an upload right after committing it, so the most recent
//! commits are all that matter, and a session uploading millions of files stays small.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use super::VPath;

/// How many of a session's most recent uploads are remembered.
const REMEMBERED: usize = 1024;

/// The paths (as Dropbox compares them: case-insensitively) of a session's recent uploads.
#[derive(Debug, Default)]
pub struct SessionUploads {
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Oldest first, for forgetting.
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl SessionUploads {
    /// This session has committed a file at `path`.
    pub fn committed(&self, path: &VPath) {
        let mut recent = self.lock();
        recent.forget(&path.case_key());
        recent.remember(path.case_key());
    }

    /// Whether the file at `path` is one this session committed.
    pub fn contains(&self, path: &VPath) -> bool {
        self.lock().keys.contains(&path.case_key())
    }

    /// This session moved `from` to `to`: if it was its upload, it is one under the new name.
    pub fn renamed(&self, from: &VPath, to: &VPath) {
        let mut recent = self.lock();
        // Whatever is at `to` now came from `from`, ours or not.
        recent.forget(&to.case_key());
        if recent.forget(&from.case_key()) {
            recent.remember(to.case_key());
        }
    }

    /// The file at `path` is gone (removed by this session).
    pub fn removed(&self, path: &VPath) {
        self.lock().forget(&path.case_key());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Recent {
    fn remember(&mut self, key: String) {
        if self.order.len() >= REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(key.clone());
        self.order.push_back(key);
    }

    /// True if `key` was there.
    fn forget(&mut self, key: &str) -> bool {
        if !self.keys.remove(key) {
            return false;
        }
        self.order.retain(|k| k != key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> VPath {
        VPath::parse(p).unwrap()
    }

    #[test]
    fn an_upload_follows_its_renames_and_is_forgotten_when_removed() {
        let uploads = SessionUploads::default();
        uploads.committed(&path("/in/Report.csv.filepart"));
        assert!(
            uploads.contains(&path("/in/report.CSV.filepart")),
            "case-insensitive"
        );
        uploads.renamed(&path("/in/report.csv.filepart"), &path("/in/report.csv"));
        assert!(!uploads.contains(&path("/in/report.csv.filepart")));
        assert!(uploads.contains(&path("/in/report.csv")));
        // Moving something else onto a name does not make it this session's.
        uploads.committed(&path("/mine.txt"));
        uploads.renamed(&path("/other.txt"), &path("/mine.txt"));
        assert!(!uploads.contains(&path("/mine.txt")));
        uploads.removed(&path("/in/report.csv"));
        assert!(!uploads.contains(&path("/in/report.csv")));
    }

    #[test]
    fn only_the_most_recent_uploads_are_remembered() {
        let uploads = SessionUploads::default();
        for n in 0..REMEMBERED + 10 {
            uploads.committed(&path(&format!("/f{n}")));
        }
        assert!(!uploads.contains(&path("/f0")));
        assert!(!uploads.contains(&path("/f9")));
        assert!(uploads.contains(&path("/f10")));
        assert!(uploads.contains(&path(&format!("/f{}", REMEMBERED + 9))));
        // Committing a remembered path again does not count it twice.
        uploads.committed(&path("/f10"));
        uploads.committed(&path("/f10"));
        assert_eq!(uploads.lock().order.len(), REMEMBERED);
    }
}
