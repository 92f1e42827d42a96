//! The lag model: for a while after an entry is written, Dropbox may not find it by path.
//!
//! Dropbox is eventually consistent across its metadata servers: a `move_v2` or
//! `get_metadata` issued right after an upload can answer `not_found` (rclone retries exactly
//! this). With `Realism::lag_ms` set, an entry written less than that many milliseconds ago is
//! `not_found` to `get_metadata`, `move_v2`, `copy_v2` (as the source) and `delete_v2` when
//! named by path; by id it is found, and listings show it at once. Off by default.

use std::time::Duration;

use super::paths::PathSpec;
use super::server::AppState;
use super::store::{Entry, Store};

/// True if `entry`, named by `spec`, is too fresh to be found by path.
pub fn hides(state: &AppState, store: &Store, spec: &PathSpec, entry: &Entry) -> bool {
    let Some(lag_ms) = state.realism.get().lag_ms else {
        return false;
    };
    let by_path = matches!(spec, PathSpec::Path(_) | PathSpec::Namespace(..));
    by_path && store.written_within(&entry.id, Duration::from_millis(lag_ms))
}
