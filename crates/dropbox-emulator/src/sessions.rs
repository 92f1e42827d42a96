//! Upload sessions on disk: their state and their received data.
//!
//! `sessions/<id>/state.json` holds the session's type, owner tree, whether it is closed and
//! what was received; sequential sessions append to `sessions/<id>/data`, concurrent ones write
//! each piece in place there once it is checked (received into a temp file first, so a refused
//! piece touches nothing). Everything is on
//! disk, so sessions survive a restart like Dropbox's (which live 7 days). A per-session async
//! lock orders the state changes of one session; concurrent appends stream their data unlocked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::content_hash::{content_hash_of_blocks, BlockDigest, ContentHasher};
use super::disk::{self, random_token, Layout};

/// Concurrent sessions take pieces at multiples of this (4 MiB).
pub const CONCURRENT_UNIT: u64 = 4 * 1024 * 1024;

/// The most a session may hold: 2^41 - 2^22 bytes, Dropbox's largest file (`too_large`).
pub const MAX_SESSION_BYTES: u64 = (1 << 41) - (1 << 22);

/// How long a session lives unless [`Realism`](crate::Realism) says otherwise: 7 days.
pub const SESSION_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Whether `more` bytes at `offset` stay within [`MAX_SESSION_BYTES`].
pub fn within_max_size(offset: u64, more: u64) -> bool {
    offset
        .checked_add(more)
        .is_some_and(|end| end <= MAX_SESSION_BYTES)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A session's persisted state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub concurrent: bool,
    /// Storage tree of the account that started it (others cannot see it).
    pub tree: String,
    pub closed: bool,
    /// Sequential: bytes received so far.
    pub size: u64,
    /// Concurrent: offset → length of each received piece.
    #[serde(default)]
    pub pieces: BTreeMap<u64, u64>,
    /// Concurrent: end of the piece sent with close=true.
    #[serde(default)]
    pub end: Option<u64>,
    /// When it was started (Unix seconds); it is gone `lifetime` later.
    #[serde(default)]
    pub started: u64,
}

impl SessionState {
    /// True once the session has surely outlived `lifetime_secs` (whole seconds past its
    /// start second): Dropbox then answers `not_found`.
    pub fn expired(&self, lifetime_secs: u64, now: u64) -> bool {
        now.saturating_sub(self.started) > lifetime_secs
    }

    /// Concurrent: whether bytes `start..end` overlap a piece already received (an empty
    /// piece overlaps one that starts at its offset).
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.pieces.iter().any(|(offset, len)| {
            let piece_end = offset + len;
            (start < piece_end && *offset < end) || *offset == start
        })
    }

    /// Concurrent: where the pieces received from offset 0 without a gap end.
    pub fn contiguous_end(&self) -> u64 {
        let mut next = 0;
        for (offset, len) in &self.pieces {
            if *offset != next {
                break;
            }
            next += len;
        }
        next
    }

    /// Concurrent: total size when the pieces cover 0..end without gaps.
    pub fn assembled_size(&self) -> Option<u64> {
        let end = self.end?;
        let mut next = 0;
        for (offset, len) in &self.pieces {
            if *offset != next {
                return None;
            }
            next += len;
        }
        (next == end).then_some(end)
    }
}

/// All sessions.
pub struct Sessions {
    layout: Layout,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sequential sessions' content hash so far, with the size it covers. Kept in memory only:
    /// after a restart a session's file is hashed from disk at finish instead.
    running_hashes: Mutex<HashMap<String, (u64, ContentHasher)>>,
    /// Concurrent sessions' block digests, per session and piece offset, so that finishing
    /// one joins its pieces' hashes instead of reading them all again. In memory only, like
    /// the running hashes: after a restart the pieces are hashed at finish.
    piece_blocks: Mutex<HashMap<String, BTreeMap<u64, Vec<BlockDigest>>>>,
}

/// Prefix of session ids, like Dropbox's.
const ID_PREFIX: &str = "pid_upload_session:";

impl Sessions {
    pub fn new(layout: &Layout) -> Sessions {
        Sessions {
            layout: layout.clone(),
            locks: Mutex::new(HashMap::new()),
            running_hashes: Mutex::new(HashMap::new()),
            piece_blocks: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of session `id`, if `id` has our form (so no path tricks get through).
    pub fn dir(&self, id: &str) -> Option<PathBuf> {
        let name = id.strip_prefix(ID_PREFIX)?;
        let safe = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        safe.then(|| self.layout.sessions().join(name))
    }

    pub fn data_path(&self, id: &str) -> Option<PathBuf> {
        Some(self.dir(id)?.join("data"))
    }

    /// A temp file inside the session's directory (same file system as its pieces).
    pub fn temp_in(&self, id: &str) -> std::io::Result<tempfile::NamedTempFile> {
        let dir = self.dir(id).ok_or(std::io::ErrorKind::NotFound)?;
        tempfile::NamedTempFile::new_in(dir)
    }

    /// Creates a session and its (empty) data file; returns its id.
    pub fn create(&self, state: &SessionState) -> std::io::Result<String> {
        let id = format!("{ID_PREFIX}{}", random_token(24));
        let dir = self.dir(&id).ok_or(std::io::ErrorKind::InvalidInput)?;
        std::fs::create_dir_all(&dir)?;
        std::fs::File::create(dir.join("data"))?;
        self.save(&id, state)?;
        Ok(id)
    }

    pub fn load(&self, id: &str) -> Option<SessionState> {
        let text = std::fs::read_to_string(self.dir(id)?.join("state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, id: &str, state: &SessionState) -> std::io::Result<()> {
        let dir = self.dir(id).ok_or(std::io::ErrorKind::NotFound)?;
        let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        disk::write_atomically(&dir.join("state.json"), &json)
    }

    pub fn remove(&self, id: &str) {
        if let Some(dir) = self.dir(id) {
            let _ = std::fs::remove_dir_all(dir);
        }
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.running_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.piece_blocks().remove(id);
    }

    fn piece_blocks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<u64, Vec<BlockDigest>>>> {
        self.piece_blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the block digests of the piece of session `id` at `offset`.
    pub fn set_piece_blocks(&self, id: &str, offset: u64, blocks: Vec<BlockDigest>) {
        self.piece_blocks()
            .entry(id.to_string())
            .or_default()
            .insert(offset, blocks);
    }

    /// The content hash of a concurrent session's pieces at `offsets`, in order, if the
    /// digests of every one of them are known.
    pub fn joined_hash(&self, id: &str, offsets: &[u64]) -> Option<String> {
        let known = self.piece_blocks();
        let pieces = known.get(id)?;
        let mut blocks = Vec::new();
        for offset in offsets {
            blocks.extend(pieces.get(offset)?.iter());
        }
        Some(content_hash_of_blocks(blocks))
    }

    /// The running hash of a sequential session if it covers exactly `size` bytes.
    pub fn running_hash(&self, id: &str, size: u64) -> Option<ContentHasher> {
        let hashes = self
            .running_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        hashes
            .get(id)
            .filter(|(covered, _)| *covered == size)
            .map(|(_, hasher)| hasher.clone())
    }

    pub fn set_running_hash(&self, id: &str, size: u64, hasher: ContentHasher) {
        self.running_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (size, hasher));
    }

    /// The lock ordering the state changes of session `id`.
    pub fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }
}
