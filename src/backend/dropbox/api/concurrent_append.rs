//! Appending one piece of a concurrent upload session, safely after a lost answer.
//!
//! A sequential session's append is repeated freely: Dropbox checks the offset, and its
//! `incorrect_offset` says where the session stands, so a repeat of an append that had landed
//! is recognised by the caller. A concurrent session has no such place: pieces arrive in any
//! order, so `correct_offset` means nothing, and the spec does not say what a piece sent twice
//! gets. It may be taken again (the same bytes at the same offset: harmless), or refused as
//! already there, which the spec describes for `incorrect_offset` ("a previous request was
//! received and processed successfully but the client did not receive the response"), or, for
//! the closing piece, as `closed`.
//!
//! So a piece is repeated here, not by the transport, and only here is it known whether an
//! earlier try may have landed (a server error or a lost answer after it was sent). Only
//! then is such a refusal the earlier try's success: only this upload appends to its session,
//! each piece at its own offset with bytes that never change, and the closing piece after all
//! others have been answered, so nothing else can have put data there. Before any try may
//! have landed the same refusal is a failure. Even a wrong inference cannot store wrong bytes:
//! `finish` is refused (`concurrent_session_missing_data`, or `incorrect_offset` for the
//! size) unless every piece is there, and the commit checks the whole file's content_hash.

use std::sync::Arc;

use super::body::{BodyFactory, UploadBody};
use super::client::{routes, DropboxClient};
use super::error::DropboxError;
use super::retry::{record_retry, Attempts, Failure, Safety};
use super::upload_args::UploadSessionAppendArg;

impl DropboxClient {
    /// Appends the piece of a concurrent session described by `arg`, its bytes made by `body`
    /// for every try.
    pub async fn upload_session_append_piece(
        &self,
        arg: &UploadSessionAppendArg,
        body: Arc<dyn BodyFactory>,
    ) -> Result<(), DropboxError> {
        let route = routes::SESSION_APPEND.name;
        let mut attempts = Attempts::new(self.retry_policy());
        let mut may_have_landed = false;
        loop {
            let attempt = attempts.begin();
            let body = UploadBody::Factory(body.clone());
            // Checked: the transport repeats only what certainly did nothing.
            let sent = self
                .upload_call::<_, ()>(&routes::SESSION_APPEND, Safety::Checked, arg, body)
                .await;
            let failure = match sent {
                Ok(()) => return Ok(()),
                Err(error) => Failure::sent(error),
            };
            if may_have_landed && refuses_a_repeat(&failure.error, arg.close) {
                tracing::debug!(
                    session_id = arg.cursor.session_id,
                    offset = arg.cursor.offset,
                    "a concurrent session piece had landed although its answer was lost"
                );
                return Ok(());
            }
            if !failure.is_ambiguous() {
                return Err(failure.error);
            }
            may_have_landed = true;
            let Some(wait) = attempts.retry_wait(&failure, Safety::Idempotent, self.can_refresh())
            else {
                return Err(failure.error);
            };
            record_retry(route, attempt, wait, &failure);
            tokio::time::sleep(wait).await;
        }
    }
}

/// How Dropbox may refuse a piece it already holds: `incorrect_offset` (its `correct_offset`
/// is meaningless here), or `closed` for the piece that closed the session.
fn refuses_a_repeat(error: &DropboxError, close: bool) -> bool {
    error.has_tag("incorrect_offset") || (close && error.has_tag("closed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route_error(error: serde_json::Value) -> DropboxError {
        DropboxError::Route {
            summary: "x".into(),
            error,
        }
    }

    #[test]
    fn only_an_offset_refusal_or_the_closing_piece_s_closed_can_be_a_repeat() {
        let offset = route_error(json!({".tag": "incorrect_offset", "correct_offset": 0}));
        let closed = route_error(json!({".tag": "closed"}));
        let other = route_error(json!({".tag": "concurrent_session_invalid_data_size"}));
        assert!(refuses_a_repeat(&offset, false));
        assert!(refuses_a_repeat(&offset, true));
        assert!(refuses_a_repeat(&closed, true));
        assert!(!refuses_a_repeat(&closed, false));
        assert!(!refuses_a_repeat(&other, true));
        assert!(!refuses_a_repeat(
            &DropboxError::Server { status: 503 },
            false
        ));
    }
}
