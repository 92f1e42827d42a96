//! posix-rename onto an existing file, built so that the target is never lost.
//!
//! Dropbox's `move_v2` never replaces, and deleting the target first would lose it whenever the
//! move then fails (a missing source, a conflict, a lost connection). So the target is first
//! moved aside to a hidden name in its own folder, the source is moved in, and only then is the
//! aside copy deleted. If the source cannot be moved in, the target is moved back.
//!
//! Each move is tried again after a lost answer only once a look has shown it did not land
//! (see `api::checked`, which knows the entry by its Dropbox id, which a move keeps). Should
//! even that look fail, where the target is now is asked once more before anything else is
//! done. If even putting the target back fails, the error names the hidden file that now holds
//! it, and the log says so loudly, so an operator can put it back by hand.

use super::{map_error, DropboxFs};
use crate::backend::dropbox::api::DropboxError;
use crate::log_safe::Untrusted;
use crate::vfs::{Renamed, VPath, VfsError, VfsResult};

/// The prefix of the hidden name a replaced target waits under.
pub(super) const ASIDE_PREFIX: &str = ".dropgate-replace-";

/// Where an entry is after a move whose answer did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moved {
    Yes,
    No,
    Unknown,
}

/// One replacing rename: the Dropbox paths and ids involved.
pub(super) struct Replace<'a> {
    pub fs: &'a DropboxFs,
    pub from: &'a VPath,
    pub to: &'a VPath,
    pub from_path: String,
    pub to_path: String,
    /// Dropbox id of the source (a move keeps it).
    pub source_id: String,
    /// Dropbox id of the file being replaced.
    pub target_id: String,
}

impl Replace<'_> {
    /// Target aside, source in, aside copy deleted; the target is back in place on failure.
    pub(super) async fn run(self) -> VfsResult<Renamed> {
        let aside_name = aside_name();
        let aside_path = sibling(&self.to_path, &aside_name);
        let aside = self
            .to
            .parent()
            .and_then(|parent| parent.join(&aside_name).ok())
            .unwrap_or_else(|| self.to.clone());

        match self
            .relocate(&self.to_path, &aside_path, &self.target_id)
            .await
        {
            Ok(()) => {}
            // Gone meanwhile (deleted by someone else): nothing is left to replace.
            Err(e) if e.is_not_found() => return self.plain_move().await,
            Err(e) if !is_ambiguous(&e) => return Err(map_error(e, self.to)),
            Err(e) => match self.whereabouts(&aside_path, &self.to_path).await {
                Moved::Yes => {}
                Moved::No => return Err(map_error(e, self.to)),
                Moved::Unknown => return Err(self.stranded(&aside, &e)),
            },
        }

        match self
            .relocate(&self.from_path, &self.to_path, &self.source_id)
            .await
        {
            Ok(()) => {
                self.delete_aside(&aside_path, &aside).await;
                Ok(Renamed { replaced: true })
            }
            Err(move_error) => {
                let restored = self
                    .relocate(&aside_path, &self.to_path, &self.target_id)
                    .await;
                match restored {
                    Ok(()) => Err(map_error(move_error, self.from)),
                    Err(restore_error) => Err(self.stranded(&aside, &restore_error)),
                }
            }
        }
    }

    /// The target went away before we moved it: an ordinary move (which fails, and changes
    /// nothing, if something arrives at the target meanwhile).
    async fn plain_move(&self) -> VfsResult<Renamed> {
        self.fs
            .client
            .move_entry(&self.from_path, &self.to_path, &self.source_id)
            .await
            .map(|_| Renamed { replaced: false })
            .map_err(|e| map_error(e, self.from))
    }

    async fn relocate(&self, from: &str, to: &str, id: &str) -> Result<(), DropboxError> {
        relocate(self.fs, from, to, id).await
    }

    /// Whether the target (by id) is at `aside` rather than at `to` after a failed move.
    async fn whereabouts(&self, aside: &str, to: &str) -> Moved {
        match (
            self.is_at(aside, &self.target_id).await,
            self.is_at(to, &self.target_id).await,
        ) {
            (Some(true), _) => Moved::Yes,
            (_, Some(true)) => Moved::No,
            _ => Moved::Unknown,
        }
    }

    async fn is_at(&self, path: &str, id: &str) -> Option<bool> {
        is_at(self.fs, path, id).await
    }

    /// Deletes the replaced file once the source is in place. A failure here loses nothing and
    /// does not undo the rename, which has happened; the leftover is logged for the operator.
    async fn delete_aside(&self, aside_path: &str, aside: &VPath) {
        let error = match self.fs.client.delete(aside_path).await {
            Ok(()) => return,
            Err(e) if e.is_not_found() => return,
            Err(e) => e,
        };
        tracing::warn!(
            path = %Untrusted(self.to),
            leftover = %Untrusted(aside),
            %error,
            "replaced file moved aside but not deleted; remove the leftover by hand"
        );
    }

    /// The error when the target could not be put back: it is kept, under the hidden name.
    fn stranded(&self, aside: &VPath, error: &DropboxError) -> VfsError {
        tracing::error!(
            path = %Untrusted(self.to),
            now_at = %Untrusted(aside),
            %error,
            "posix-rename failed and the file it was to replace could not be put back"
        );
        VfsError::Failure(format!(
            "rename of {} onto {} failed, and {} could not be put back: its content may be at {}",
            self.from, self.to, self.to, aside
        ))
    }
}

/// A move of the entry with `id`; an error means it did not land, or that Dropbox could not be
/// asked (an ambiguous error): `api::checked` has already looked.
pub(super) async fn relocate(
    fs: &DropboxFs,
    from: &str,
    to: &str,
    id: &str,
) -> Result<(), DropboxError> {
    fs.client.move_entry(from, to, id).await.map(drop)
}

/// Whether the entry at `path` is the one with `id`; None if Dropbox could not say.
pub(super) async fn is_at(fs: &DropboxFs, path: &str, id: &str) -> Option<bool> {
    match fs.client.get_metadata(path).await {
        Ok(meta) => Some(meta.id() == Some(id)),
        Err(e) if e.is_not_found() => Some(false),
        Err(_) => None,
    }
}

/// A hidden name in the target's folder that nothing else uses.
fn aside_name() -> String {
    format!("{ASIDE_PREFIX}{:016x}", rand::random::<u64>())
}

/// The Dropbox path of `name` in the folder that holds `path`.
pub(super) fn sibling(path: &str, name: &str) -> String {
    let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
    format!("{folder}/{name}")
}

/// A failure after which Dropbox may or may not have acted: a server error or a lost answer.
fn is_ambiguous(error: &DropboxError) -> bool {
    matches!(
        error,
        DropboxError::Server { .. } | DropboxError::Transport(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aside_name_is_hidden_and_in_the_targets_folder() {
        let name = aside_name();
        assert!(
            name.starts_with(".dropgate-replace-") && name.len() == 34,
            "{name}"
        );
        assert_ne!(name, aside_name());
        assert_eq!(sibling("/alice/docs/a.csv", "x"), "/alice/docs/x");
        assert_eq!(sibling("/a.csv", "x"), "/x");
    }
}
