//! Commits whose answer may be lost: an upload session's finish, and an upload that must not
//! replace an existing file (`add` mode).
//!
//! Such a commit lands once: sent again after it has landed, a finish fails (the session is
//! gone) and an `add` may meet the file it created itself, so a success would be reported as a
//! failure. So after a server error or a lost connection we first ask Dropbox what is at the
//! path; if it is a file with our content_hash, the commit did land and that is the answer. Only
//! if it is not there is the commit sent again, with the waits and limits of the retry policy.
//! The transport itself still repeats a request that certainly did nothing (429, expired token,
//! no connection). A conflict with a file that holds exactly our bytes is no conflict either
//! (Dropbox says so itself for `add` with identical content; this does not rely on it).

use std::future::Future;
use std::sync::Arc;

use super::body::{BodyFactory, UploadBody};
use super::client::DropboxClient;
use super::error::DropboxError;
use super::retry::{record_retry, Attempts, Failure, Safety};
use super::types::{FileMetadata, Metadata};
use super::upload_args::{UploadArg, UploadSessionFinishArg};

impl DropboxClient {
    /// Commits an upload session (without further data) whose whole file has `content_hash`,
    /// checking after an ambiguous failure whether it landed before sending it again.
    pub async fn upload_session_finish_checked(
        &self,
        arg: &UploadSessionFinishArg,
        content_hash: &str,
    ) -> Result<FileMetadata, DropboxError> {
        self.commit_checked(
            "files/upload_session/finish",
            &arg.commit.path,
            content_hash,
            || self.upload_session_finish(arg, Vec::new()),
        )
        .await
    }

    /// `files/upload` of a body made by `body` whose content_hash is `content_hash`, checking
    /// after an ambiguous failure whether it landed before sending it again (for `add` and
    /// `update` modes, which the transport does not repeat on its own).
    pub async fn upload_checked(
        &self,
        arg: &UploadArg,
        body: Arc<dyn BodyFactory>,
        content_hash: &str,
    ) -> Result<FileMetadata, DropboxError> {
        self.commit_checked("files/upload", &arg.path, content_hash, || {
            self.upload(arg, UploadBody::Factory(body.clone()))
        })
        .await
    }

    async fn commit_checked<F, Fut>(
        &self,
        route: &'static str,
        path: &str,
        content_hash: &str,
        mut send: F,
    ) -> Result<FileMetadata, DropboxError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<FileMetadata, DropboxError>>,
    {
        let mut attempts = Attempts::new(self.retry_policy());
        // Once a try may have landed, any later failure (the session being gone, say) may
        // just mean that it did: look every time from then on.
        let mut may_have_landed = false;
        loop {
            let attempt = attempts.begin();
            let error = match send().await {
                Ok(file) => return Ok(file),
                Err(error) => error,
            };
            let failure = Failure::sent(error);
            may_have_landed |= failure.is_ambiguous();
            if !may_have_landed && !failure.error.is_conflict() {
                // The transport has already repeated what certainly did nothing.
                return Err(failure.error);
            }
            if let Some(file) = self.stored_with_hash(path, content_hash).await? {
                tracing::debug!(
                    path,
                    route,
                    "the commit had landed although its answer was lost"
                );
                return Ok(file);
            }
            if !may_have_landed {
                // A conflict with another file: Dropbox did nothing.
                return Err(failure.error);
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

    /// The file at `path` if Dropbox holds one there with exactly `content_hash`.
    async fn stored_with_hash(
        &self,
        path: &str,
        content_hash: &str,
    ) -> Result<Option<FileMetadata>, DropboxError> {
        match self.get_metadata(path).await {
            Ok(Metadata::File(file)) if file.content_hash.as_deref() == Some(content_hash) => {
                Ok(Some(file))
            }
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
