//! What every task of one SFTP session shares: the filesystem, the handle table, the user.

use std::sync::Arc;

use tokio::sync::Notify;

use super::handles::HandleTable;

/// What request handlers share.
pub(super) struct Context<F> {
    pub fs: F,
    pub handles: HandleTable,
    /// Shown as owner and group in longnames.
    pub user: String,
    pub max_handles: usize,
    /// Signalled when a handler panics: the client would wait forever for its reply.
    pub(super) failed: Arc<Notify>,
}
