//! Finishing an upload session when the answer may be lost.
//!
//! A finish commits the session as a file, once: sent again after it has landed, it fails
//! (the session is gone), and a success would be reported as a failure. So after a server
//! error or a lost connection we first ask Dropbox what is at the path; if it is a file with
//! our content_hash, the finish did land and that is the answer. Only if it is not there is the
//! finish sent again, with the waits and limits of the retry policy. The transport itself still
//! repeats a finish that certainly did nothing (429, expired token, no connection).

use super::client::DropboxClient;
use super::error::DropboxError;
use super::retry::{record_retry, Attempts, Failure, Safety};
use super::types::{FileMetadata, Metadata};
use super::upload_args::UploadSessionFinishArg;

impl DropboxClient {
    /// Commits an upload session (without further data) whose whole file has `content_hash`,
    /// checking after an ambiguous failure whether it landed before sending it again.
    pub async fn upload_session_finish_checked(
        &self,
        arg: &UploadSessionFinishArg,
        content_hash: &str,
    ) -> Result<FileMetadata, DropboxError> {
        let mut attempts = Attempts::new(self.retry_policy());
        // Once a try may have landed, any later failure (the session being gone, say) may
        // just mean that it did: look every time from then on.
        let mut may_have_landed = false;
        loop {
            let attempt = attempts.begin();
            let error = match self.upload_session_finish(arg, Vec::new()).await {
                Ok(file) => return Ok(file),
                Err(error) => error,
            };
            let failure = Failure::sent(error);
            may_have_landed |= failure.is_ambiguous();
            if !may_have_landed {
                // The transport has already repeated what certainly did nothing.
                return Err(failure.error);
            }
            if let Some(file) = self
                .stored_with_hash(&arg.commit.path, content_hash)
                .await?
            {
                tracing::debug!(
                    path = arg.commit.path,
                    "the finish had landed although its answer was lost"
                );
                return Ok(file);
            }
            // Not there: sending it again is as safe as the first time.
            let Some(wait) = attempts.retry_wait(&failure, Safety::Idempotent, self.can_refresh())
            else {
                return Err(failure.error);
            };
            record_retry("files/upload_session/finish", attempt, wait, &failure);
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
