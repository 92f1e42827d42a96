//! SFTP version 3, server side: one [`serve`] call per `sftp` subsystem channel.
//!
//! The bundled server loop of `russh-sftp` answers one request at a time, which deadlocks when a
//! client such as OpenSSH keeps 64 large reads in flight. This module uses only that crate's
//! packet codec (`russh_sftp::protocol`) and runs its own session:
//!
//! - `framing`: length-prefixed packets in and out; size limit; unknown types.
//! - `session`: one reader task that never waits on the writer, requests handled concurrently
//!   (bounded by [`SessionLimits::max_in_flight`]); `replies`: the one writer task, and the
//!   permit each request holds until its reply is out; replies may go out of order. `context`:
//!   what the session's tasks share.
//! - `handles` and `actor`: every open handle is a task fed in packet order, so READ, WRITE,
//!   FSETSTAT and CLOSE on one handle run in the order the client sent them.
//! - `write_handle`: the one rule that an upload that failed once never commits.
//! - `requests`: path requests (STAT, MKDIR, RENAME, ...) as independent tasks.
//! - `copy`: copy-data, done by the backend when it can, else through an upload.
//! - `attrs`, `status`, `extensions`: attributes and `ls -l` longnames, the one
//!   [`crate::vfs::VfsError`] → status code mapping, and the `@openssh.com` extensions.
//!
//! Errors end the one session (the caller closes its channel), never the process.

mod actor;
mod attrs;
mod context;
mod copy;
mod dispatch;
mod extensions;
mod framing;
mod handles;
mod listing;
mod replies;
mod requests;
mod session;
mod status;
mod write_handle;

#[cfg(test)]
mod tests;

/// Entry points for the fuzz targets in `fuzz/`; feature `testing`. Not a stable API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing;

pub use handles::HandleQuota;
pub use session::serve;

/// Per-session limits and the name shown in listings.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Requests read but not yet answered. When reached, the reader stops reading, which pushes
    /// back on the client through the SSH channel window. Default 128 (OpenSSH keeps 64).
    pub max_in_flight: usize,
    /// Open file and directory handles. Advertised through `limits@openssh.com`. Default 256.
    pub max_handles: usize,
    /// Open handles of this session's user over all their sessions; `None`: no such cap.
    pub user_handles: Option<HandleQuota>,
    /// Shown as owner and group in `ls -l` style longnames (the logged-in user's name).
    pub user: String,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_in_flight: 128,
            max_handles: 256,
            user_handles: None,
            user: "dropgate".to_string(),
        }
    }
}
