//! A rename that changes only the case of a name (`a.txt` → `A.txt`), which `move_v2` cannot do.
//!
//! Dropbox compares paths case-insensitively, so to it a case-only rename names the same path
//! twice: the spec says `move_v2` does not support it, and it has been seen answering OK with
//! nothing changed. So the entry goes through a hidden temporary name in its own folder, in two
//! moves, and the name Dropbox stores afterwards is read back: OK means the new case is there.
//! If the second move fails the entry is moved back, so a reported failure means nothing
//! changed; only if even that fails does the error name the temporary name that now holds it
//! (as `replace` does for the file it moved aside).

use super::api::Metadata;
use super::replace::{relocate, sibling};
use super::{map_error, not_found, DropboxFs};
use crate::log_safe::Untrusted;
use crate::vfs::{Renamed, VPath, VfsError, VfsResult};

/// The prefix of the hidden name an entry passes through.
pub(super) const TEMP_PREFIX: &str = ".dropgate-case-";

/// One case-only rename of `from` (at `from_path`) to `to` (at `to_path`).
pub(super) struct CaseRename<'a> {
    pub fs: &'a DropboxFs,
    pub from: &'a VPath,
    pub to: &'a VPath,
    pub from_path: &'a str,
    pub to_path: &'a str,
}

impl CaseRename<'_> {
    pub(super) async fn run(self) -> VfsResult<Renamed> {
        let source = self
            .fs
            .metadata_if_any(self.from)
            .await?
            .ok_or_else(|| not_found(self.from))?;
        if stored_name(&source) == Some(self.to.name()) {
            return Ok(Renamed::default()); // already spelled so: nothing to do
        }
        let id = source.id().unwrap_or_default().to_string();
        let temp_name = format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>());
        let temp_path = sibling(self.from_path, &temp_name);
        relocate(self.fs, self.from_path, &temp_path, &id)
            .await
            .map_err(|e| map_error(e, self.from))?;
        if let Err(error) = relocate(self.fs, &temp_path, self.to_path, &id).await {
            let failed = map_error(error, self.to);
            return Err(self.move_back(&temp_path, &temp_name, &id, failed).await);
        }
        self.confirm().await
    }

    /// The second move failed: the entry goes back to its old name, and the rename reports
    /// `failed` having changed nothing.
    async fn move_back(
        &self,
        temp_path: &str,
        temp_name: &str,
        id: &str,
        failed: VfsError,
    ) -> VfsError {
        match relocate(self.fs, temp_path, self.from_path, id).await {
            Ok(()) => failed,
            Err(error) => {
                let now_at = self
                    .from
                    .parent()
                    .and_then(|parent| parent.join(temp_name).ok())
                    .unwrap_or_else(|| self.from.clone());
                tracing::error!(
                    path = %Untrusted(self.from),
                    now_at = %Untrusted(&now_at),
                    %error,
                    "case-only rename failed and the entry could not be moved back"
                );
                VfsError::Failure(format!(
                    "rename of {} to {} failed ({failed}), and it could not be moved back: it is \
                     now at {now_at}",
                    self.from, self.to
                ))
            }
        }
    }

    /// OK only if Dropbox now stores the new spelling. The second move was an ordinary one
    /// (from another name), whose OK Dropbox keeps; so a look that cannot be made is logged and
    /// the rename still reported done.
    async fn confirm(&self) -> VfsResult<Renamed> {
        match self.fs.metadata_if_any(self.to).await {
            Ok(Some(stored)) if stored_name(&stored) == Some(self.to.name()) => {
                Ok(Renamed::default())
            }
            Ok(stored) => {
                let now = stored.as_ref().and_then(stored_name).unwrap_or("nothing");
                Err(VfsError::Failure(format!(
                    "rename of {} to {}: Dropbox kept the name as {now:?}",
                    self.from, self.to
                )))
            }
            Err(error) => {
                tracing::warn!(path = %Untrusted(self.to), %error, "case-only rename done but not read back");
                Ok(Renamed::default())
            }
        }
    }
}

/// The last component of the path as Dropbox stores it (the reliably cased part).
fn stored_name(meta: &Metadata) -> Option<&str> {
    match meta {
        Metadata::File(file) => Some(&file.name),
        Metadata::Folder(folder) => Some(&folder.name),
        Metadata::Deleted(_) => None,
    }
}
