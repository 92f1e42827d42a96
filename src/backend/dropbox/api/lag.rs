//! Riding out Dropbox's lag: a path this client has just written may be `not_found` for a
//! moment.
//!
//! Dropbox's metadata is eventually consistent: a move or get_metadata sent right after an
//! upload can answer `not_found` (rclone retries this case too). The WinSCP, FileZilla and lftp
//! pattern (upload to a temporary name, then rename it) would meet it on every file. So the
//! client remembers the paths it wrote during the last [`LAG_ALLOWANCE`], and a `not_found`
//! for one of them is asked again after a short wait, until the allowance is over. A
//! `not_found` for any other path is believed at once, so a lookup of an unknown name stays
//! fast. Asking again is safe for every route: `not_found` means Dropbox did nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::error::DropboxError;

/// How long after writing a path a `not_found` for it is doubted.
pub const LAG_ALLOWANCE: Duration = Duration::from_secs(5);
const FIRST_WAIT: Duration = Duration::from_millis(50);
const LONGEST_WAIT: Duration = Duration::from_millis(800);
/// Past this many remembered paths, the ones older than the allowance are dropped.
const PRUNE_ABOVE: usize = 4096;

/// Paths written lately, by their lower-case form (Dropbox compares paths without case).
#[derive(Default)]
pub struct RecentWrites {
    written: Mutex<HashMap<String, Instant>>,
}

impl RecentWrites {
    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `path` now holds something we put there.
    pub fn wrote(&self, path: &str) {
        let Some(key) = key(path) else { return };
        let mut written = self.written();
        if written.len() >= PRUNE_ABOVE {
            written.retain(|_, at| at.elapsed() < LAG_ALLOWANCE);
        }
        written.insert(key, Instant::now());
    }

    /// `path` was deleted or moved away by us: a `not_found` for it is now the truth.
    pub fn gone(&self, path: &str) {
        if let Some(key) = key(path) {
            self.written().remove(&key);
        }
    }

    fn written_at(&self, path: &str) -> Option<Instant> {
        self.written().get(&key(path)?).copied()
    }

    /// Runs `call` (a request about `path`) and asks again while it answers `not_found` for a
    /// path written less than [`LAG_ALLOWANCE`] ago.
    pub async fn ride<T, F, Fut>(&self, path: &str, mut call: F) -> Result<T, DropboxError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DropboxError>>,
    {
        let mut wait = FIRST_WAIT;
        loop {
            let error = match call().await {
                Err(error) if error.is_not_found() => error,
                other => return other,
            };
            let doubted = self
                .written_at(path)
                .is_some_and(|at| at.elapsed() + wait <= LAG_ALLOWANCE);
            if !doubted {
                return Err(error);
            }
            crate::metrics::dropbox_retry();
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "not_found for a path written just now; asking again"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_WAIT);
        }
    }
}

/// The key of a path argument; None for `id:` and `rev:` arguments, which do not lag.
fn key(path: &str) -> Option<String> {
    path.starts_with('/').then(|| path.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn not_found() -> DropboxError {
        DropboxError::Route {
            summary: "path/not_found/..".into(),
            error: json!({".tag": "path", "path": {".tag": "not_found"}}),
        }
    }

    /// Answers not_found `misses` times, then Ok; counts the calls.
    async fn ride_with(recent: &RecentWrites, path: &str, misses: u32) -> (bool, u32) {
        let calls = AtomicU32::new(0);
        let result = recent
            .ride(path, || async {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                if call < misses {
                    Err(not_found())
                } else {
                    Ok(())
                }
            })
            .await;
        (result.is_ok(), calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_path_written_just_now_is_asked_for_again() {
        let recent = RecentWrites::default();
        recent.wrote("/Dir/File.TXT");
        assert_eq!(ride_with(&recent, "/dir/file.txt", 3).await, (true, 4));
    }

    #[tokio::test]
    async fn other_paths_and_paths_gone_by_our_hand_are_believed_at_once() {
        let recent = RecentWrites::default();
        assert_eq!(ride_with(&recent, "/never.txt", 1).await, (false, 1));
        recent.wrote("/moved.txt");
        recent.gone("/moved.txt");
        assert_eq!(ride_with(&recent, "/moved.txt", 1).await, (false, 1));
        recent.wrote("id:abc");
        assert_eq!(ride_with(&recent, "id:abc", 1).await, (false, 1));
    }

    #[tokio::test]
    async fn the_doubt_ends_with_the_allowance() {
        let recent = RecentWrites::default();
        let almost_too_old = Instant::now() - (LAG_ALLOWANCE - Duration::from_millis(200));
        recent.written().insert("/f.txt".into(), almost_too_old);
        let (ok, calls) = ride_with(&recent, "/f.txt", u32::MAX).await;
        assert!(!ok);
        // Waits of 50 and 100 ms fit in the 200 ms left; 200 more would not.
        assert!((2..=3).contains(&calls), "{calls} calls");
    }
}
