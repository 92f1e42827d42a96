//! Changes whose answer may be lost: every call that changes Dropbox (create a folder, delete,
//! move, copy, upload, finish an upload session) is safe to try again, because it is tried
//! again only after a look at what the last try did.
//!
//! Such a change lands once: sent again after it has landed, it meets its own work (the folder
//! exists, the source is gone, the session is finished, the `add` finds its file), so a success
//! would be reported as a failure. So after a server error or a lost connection
//! [`DropboxClient::send_checked`] first asks Dropbox whether the change is there (each change
//! says how to tell, as a [`Look`]); if it is, that is the answer. Only if it is not is the
//! change sent again, with the waits and limits of the retry policy, and from then on every
//! failure (the namespace lock on the repeat, a conflict) is followed by a look too, since it
//! may just mean that an earlier try landed. A failure reported from here therefore means the
//! change is not in Dropbox. The transport itself still repeats a request that certainly did
//! nothing (429, `too_many_write_operations`, expired token, no connection).
//!
//! A look is taken only after a try whose outcome is unknown, never after a plain refusal: a
//! folder that existed before our first try still gets its conflict. The one exception is a
//! commit's conflict with a file holding exactly our bytes, which is no conflict (Dropbox says
//! so itself for `add` with identical content; this does not rely on it). What a look cannot
//! tell apart is the same change made by someone else in the moment our answer was lost (a
//! folder of that name created by another client); for the client the outcome is the same.

use std::future::Future;
use std::sync::Arc;

use super::body::{BodyFactory, UploadBody};
use super::client::{routes, DropboxClient};
use super::error::DropboxError;
use super::retry::{record_retry, Attempts, Failure, Safety};
use super::types::{FileMetadata, FolderMetadata, Metadata};
use super::upload_args::{UploadArg, UploadSessionFinishArg};

/// How long a look that found nothing waits before it asks again (see
/// `look_up_landed`): longer than Dropbox's usual lag, short enough for a client waiting on a
/// change whose try truly did nothing.
const LANDED_LOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a look after a failed try found.
pub(super) enum Look<T> {
    /// The change is in Dropbox; this is its result.
    Applied(T),
    /// It is not: sending it again is as safe as the first time.
    Absent,
    /// It is not, and it must not be sent again (what made it right has changed).
    Stale,
}

impl DropboxClient {
    /// Creates a folder (and missing parents); a conflict if something was already there.
    pub async fn create_folder(&self, path: &str) -> Result<FolderMetadata, DropboxError> {
        let look = || async move {
            Ok(match self.look_up_landed(path).await? {
                Some(Metadata::Folder(folder)) => Look::Applied(folder),
                _ => Look::Absent,
            })
        };
        let created = self
            .send_checked(
                routes::CREATE_FOLDER.name,
                false,
                || self.create_folder_once(path),
                look,
            )
            .await?;
        self.recent.wrote(path);
        Ok(created)
    }

    /// Deletes a file, or a folder WITH everything in it.
    pub async fn delete(&self, path: &str) -> Result<(), DropboxError> {
        let look = || async move {
            Ok(match self.look_up(path).await? {
                None => Look::Applied(()),
                Some(_) => Look::Absent,
            })
        };
        let send = || async move { self.delete_once(path).await.map(drop) };
        self.send_checked(routes::DELETE.name, false, send, look)
            .await?;
        self.recent.gone(path);
        Ok(())
    }

    /// Deletes a folder its caller found empty; sent again after a lost answer only while it
    /// is still empty, since Dropbox's delete takes whatever is in it by then.
    pub async fn delete_empty_folder(&self, path: &str) -> Result<(), DropboxError> {
        let look = || async move {
            Ok(match self.look_up(path).await? {
                None => Look::Applied(()),
                Some(Metadata::Folder(_)) if self.is_empty_folder(path).await? => Look::Absent,
                Some(_) => Look::Stale,
            })
        };
        let send = || async move { self.delete_once(path).await.map(drop) };
        self.send_checked(routes::DELETE.name, false, send, look)
            .await?;
        self.recent.gone(path);
        Ok(())
    }

    /// Moves or renames the entry with Dropbox id `id` (a move keeps it); a conflict if the
    /// target exists. The move has landed when `to` holds that entry under `to`'s name (the
    /// name, so that a case-only rename is not taken as done before it is).
    pub async fn move_entry(
        &self,
        from: &str,
        to: &str,
        id: &str,
    ) -> Result<Metadata, DropboxError> {
        let name = to.rsplit('/').next().unwrap_or(to);
        let look = || async move {
            Ok(match self.look_up_landed(to).await? {
                Some(entry) if entry.id() == Some(id) && entry.name() == name => {
                    Look::Applied(entry)
                }
                _ => Look::Absent,
            })
        };
        let moved = self
            .send_checked(routes::MOVE.name, false, || self.move_once(from, to), look)
            .await?;
        self.recent.gone(from);
        self.recent.wrote(to);
        Ok(moved)
    }

    /// Copies a file; a conflict if the target exists. The copy has landed when `to` holds a
    /// file with the source's content_hash and size.
    pub async fn copy_entry(&self, from: &str, to: &str) -> Result<Metadata, DropboxError> {
        let look = || async move {
            let (source, target) = tokio::try_join!(self.look_up(from), self.look_up_landed(to))?;
            Ok(match (source, target) {
                (Some(Metadata::File(source)), Some(Metadata::File(copy)))
                    if copy.content_hash.is_some()
                        && copy.content_hash == source.content_hash
                        && copy.size == source.size =>
                {
                    Look::Applied(Metadata::File(copy))
                }
                _ => Look::Absent,
            })
        };
        let copied = self
            .send_checked(routes::COPY.name, false, || self.copy_once(from, to), look)
            .await?;
        self.recent.wrote(to);
        Ok(copied)
    }

    /// Commits an upload session (without further data) whose whole file has `content_hash`.
    pub async fn upload_session_finish_checked(
        &self,
        arg: &UploadSessionFinishArg,
        content_hash: &str,
    ) -> Result<FileMetadata, DropboxError> {
        let path = arg.commit.path.as_str();
        let stored = self
            .send_checked(
                routes::SESSION_FINISH.name,
                true,
                || self.upload_session_finish(arg, Vec::new()),
                || self.look_for_file(path, content_hash),
            )
            .await?;
        self.recent.wrote(path);
        Ok(stored)
    }

    /// `files/upload`, in any mode, of a body made by `body` whose content_hash is
    /// `content_hash`. Even an overwrite is sent again only after a look: a repeat that meets
    /// the namespace lock until the retries run out must not report as failed a first try that
    /// had landed.
    pub async fn upload_checked(
        &self,
        arg: &UploadArg,
        body: Arc<dyn BodyFactory>,
        content_hash: &str,
    ) -> Result<FileMetadata, DropboxError> {
        let send = || {
            let body = UploadBody::Factory(body.clone());
            self.upload_call(&routes::UPLOAD, Safety::Checked, arg, body)
        };
        let stored = self
            .send_checked(routes::UPLOAD.name, true, send, || {
                self.look_for_file(&arg.path, content_hash)
            })
            .await?;
        self.recent.wrote(&arg.path);
        Ok(stored)
    }

    /// Sends a change by `send` until it succeeds, taking a look by `look` after every failure
    /// once a try may have landed (and after a conflict when `conflict_may_be_ours`); see the
    /// module doc.
    async fn send_checked<T, SendFn, SendFut, LookFn, LookFut>(
        &self,
        route: &'static str,
        conflict_may_be_ours: bool,
        mut send: SendFn,
        look: LookFn,
    ) -> Result<T, DropboxError>
    where
        SendFn: FnMut() -> SendFut,
        SendFut: Future<Output = Result<T, DropboxError>>,
        LookFn: Fn() -> LookFut,
        LookFut: Future<Output = Result<Look<T>, DropboxError>>,
    {
        // The namespace lock sees this change: a file commit arriving meanwhile is batched.
        let _in_flight = self.commits.begin();
        let mut attempts = Attempts::new(self.retry_policy());
        let mut may_have_landed = false;
        loop {
            let attempt = attempts.begin();
            let failure = match send().await {
                Ok(result) => return Ok(result),
                Err(error) => Failure::sent(error),
            };
            may_have_landed |= failure.is_ambiguous();
            let worth_a_look =
                may_have_landed || (conflict_may_be_ours && failure.error.is_conflict());
            if !worth_a_look {
                // A plain refusal; the transport has already repeated what did nothing.
                return Err(failure.error);
            }
            match look().await? {
                Look::Applied(result) => {
                    tracing::debug!(route, "the change had landed although its answer was lost");
                    return Ok(result);
                }
                Look::Absent if may_have_landed => {}
                Look::Absent | Look::Stale => return Err(failure.error),
            }
            // Not there: sending it again is as safe as the first time.
            let Some(wait) = attempts.retry_wait(&failure, Safety::Idempotent, self.can_refresh())
            else {
                return Err(failure.error);
            };
            record_retry(route, attempt, wait, &failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// What is at `path`, where a try that may have landed would have put something. Dropbox
    /// may not find a fresh entry by path for a moment (its lag), which would pass a landed
    /// change off as absent, and its repeat would then fail for good (a finished session is
    /// gone, a moved source too): so nothing found is asked once more after `LANDED_LOOK_WAIT`.
    async fn look_up_landed(&self, path: &str) -> Result<Option<Metadata>, DropboxError> {
        if let Some(found) = self.look_up(path).await? {
            return Ok(Some(found));
        }
        tokio::time::sleep(LANDED_LOOK_WAIT).await;
        self.look_up(path).await
    }

    /// What is at `path` now; None if nothing is.
    async fn look_up(&self, path: &str) -> Result<Option<Metadata>, DropboxError> {
        match self.get_metadata(path).await {
            Ok(Metadata::Deleted(_)) => Ok(None),
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Applied if Dropbox holds a file at `path` with exactly `content_hash`.
    pub(super) async fn look_for_file(
        &self,
        path: &str,
        content_hash: &str,
    ) -> Result<Look<FileMetadata>, DropboxError> {
        Ok(match self.look_up_landed(path).await? {
            Some(Metadata::File(file)) if file.content_hash.as_deref() == Some(content_hash) => {
                Look::Applied(file)
            }
            _ => Look::Absent,
        })
    }

    /// True if the folder at `path` holds nothing (a first page with no entry and no more).
    async fn is_empty_folder(&self, path: &str) -> Result<bool, DropboxError> {
        let page = self.list_folder(path, Some(1)).await?;
        let present = page
            .entries
            .iter()
            .any(|entry| !matches!(entry, Metadata::Deleted(_)));
        Ok(!present && !page.has_more)
    }
}
