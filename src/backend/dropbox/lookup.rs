//! What is at an upload's path, asked alongside the upload instead of before it.
//!
//! A plain `put` (OPEN with TRUNC by a user who may replace files) never needs to know: the
//! commit replaces or creates, and it is the only Dropbox call of the upload. Where the answer
//! matters, it is asked from OPEN on in a task of its own, so that neither OPEN's reply nor
//! CLOSE's commit waits for a round trip of its own:
//!
//! - a user who may not replace files (or an O_EXCL open) gets an early, clear refusal instead
//!   of uploading the whole file first (the commit's `add` mode is what enforces the rule);
//! - a handle opened without TRUNC must not drop bytes of the file it replaces, so its size may
//!   be needed at CLOSE;
//! - a user who may not create folders may only upload into a folder that exists.
//!
//! The writer looks at the answer when it has come, and waits for it only where it decides
//! whether to commit at all.

use futures::FutureExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{file_info, DropboxFs};
use crate::backend::dropbox::api::Metadata;
use crate::vfs::{FileInfo, VPath, VfsError, VfsResult};

/// What the look found.
#[derive(Debug, Clone)]
pub struct Found {
    /// What is at the path; None if nothing.
    pub target: Option<FileInfo>,
    /// False if the parent folder was asked about and is not a folder that exists.
    pub parent_exists: bool,
}

/// A look at an upload's path, running alongside the upload; stopped when dropped.
pub struct Lookup {
    task: Option<JoinHandle<VfsResult<Found>>>,
    answer: Option<VfsResult<Found>>,
}

impl Lookup {
    /// Starts looking at `path` and, with `check_parent`, at its parent folder (both at once).
    pub fn start(fs: DropboxFs, path: VPath, check_parent: bool) -> Lookup {
        let task =
            tokio::spawn(async move { look(&fs, &path, check_parent).await }.in_current_span());
        Lookup {
            task: Some(task),
            answer: None,
        }
    }

    /// The answer if it has come, without waiting.
    pub fn ready(&mut self) -> Option<&VfsResult<Found>> {
        if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(task) = self.task.take() {
                let joined = task.now_or_never().expect("a finished task is ready");
                self.answer = Some(joined_answer(joined));
            }
        }
        self.answer.as_ref()
    }

    /// The answer, waiting for it if it has not come yet.
    pub async fn answer(&mut self) -> &VfsResult<Found> {
        if let Some(task) = self.task.take() {
            self.answer = Some(joined_answer(task.await));
        }
        self.answer.as_ref().expect("the look has been answered")
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn joined_answer(joined: Result<VfsResult<Found>, tokio::task::JoinError>) -> VfsResult<Found> {
    joined.unwrap_or_else(|e| Err(VfsError::Failure(format!("the lookup failed: {e}"))))
}

async fn look(fs: &DropboxFs, path: &VPath, check_parent: bool) -> VfsResult<Found> {
    let parent = path
        .parent()
        .filter(|parent| check_parent && !parent.is_root());
    let (target, parent_exists) = tokio::join!(fs.metadata_if_any(path), async {
        match &parent {
            Some(parent) => fs
                .metadata_if_any(parent)
                .await
                .map(|meta| matches!(meta, Some(Metadata::Folder(_)))),
            None => Ok(true),
        }
    });
    Ok(Found {
        target: target?.as_ref().map(file_info),
        parent_exists: parent_exists?,
    })
}
