//! Group commit: file commits that meet in one namespace go to Dropbox together, as one
//! `files/upload_session/finish_batch_v2`.
//!
//! Dropbox applies one commit at a time per namespace and refuses one that overlaps another
//! with `too_many_write_operations`, so parallel uploads into one account, each committed
//! alone, spend their time being refused and backing off. Dropbox's advice is to upload the
//! data in parallel and commit many files at once. So each client (one namespace) counts the
//! changes it has on their way ([`Commits::begin`], taken by every checked change and by each
//! batch); a commit that arrives while one is in flight is queued instead of sent
//! ([`DropboxClient::finish_in_batch`]), and one batcher task sends everything queued as one
//! batch once the changes in flight are done. While a batch is in flight the next one gathers.
//! An uncontended commit never comes here: it keeps its one request.
//!
//! Each entry is answered on its own and truthfully, the way `checked` answers a single change:
//! - `success` carries the file's metadata (the caller compares its content_hash with ours);
//! - a failure that proves nothing happened (`too_many_write_operations`) goes into a later
//!   batch, within the entry's own retry limits;
//! - a batch whose answer was lost (a server error, a broken connection, an answer that does not
//!   fit) may or may not have been applied, so every entry is first looked for (our
//!   content_hash at its path) and only the ones that are not there are sent again; from then
//!   on any failure of that entry (its session is gone, a conflict with itself) ends in a look;
//! - a conflict is looked at too: a file holding exactly our bytes is no conflict;
//! - anything else is that entry's failure, and the file is not in Dropbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use super::checked::Look;
use super::client::{routes, DropboxClient};
use super::error::{self, DropboxError};
use super::retry::{record_retry, Attempts, Failure, Safety};
use super::types::FileMetadata;
use super::upload_args::UploadSessionFinishArg;

/// The most entries Dropbox takes in one batch (UploadSessionFinishBatchArg.entries).
pub const MAX_BATCH: usize = 1000;

/// How long a batch waits for the changes in flight to be done before it is sent anyway
/// (a commit that never ends must not hold the queue).
const IDLE_WAIT_LIMIT: Duration = Duration::from_secs(5);

/// One namespace's commits: those in flight, and those waiting for the next batch.
#[derive(Default)]
pub(super) struct Commits {
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to 0.
    idle: Notify,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Entry>,
    /// A batcher task is at work (it takes whatever is waiting when it is ready).
    batching: bool,
}

/// A change on its way to Dropbox; counted until dropped.
pub struct CommitInFlight(Arc<Commits>);

impl Drop for CommitInFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Commits {
    /// Counts a change as in flight until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> CommitInFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        CommitInFlight(self.clone())
    }

    /// Counts a commit as in flight if it is the only one: nothing else in flight, no batch.
    fn claim_alone(self: &Arc<Self>) -> Option<CommitInFlight> {
        if self.queue().batching {
            return None;
        }
        self.in_flight
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| CommitInFlight(self.clone()))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no change is in flight, or `limit` has passed.
    async fn until_idle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let woken = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return;
            }
        }
    }
}

/// One commit waiting for a batch, with its own retry state.
struct Entry {
    arg: UploadSessionFinishArg,
    content_hash: String,
    reply: oneshot::Sender<Result<FileMetadata, DropboxError>>,
    attempts: Attempts,
    /// An earlier try of this entry may have been applied (its batch's answer was lost).
    may_have_landed: bool,
}

/// What became of one entry in one round.
enum Outcome {
    Done(Result<FileMetadata, DropboxError>),
    /// Send it again in a later batch, not before this wait.
    Again(Duration),
}

/// UploadSessionFinishBatchResultEntry.
#[derive(Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
enum EntryResult {
    Success(FileMetadata),
    Failure { failure: Value },
}

#[derive(Deserialize)]
struct BatchResult {
    entries: Vec<EntryResult>,
}

impl DropboxClient {
    /// The right to commit a file alone, now: granted while no other change of this client
    /// is on its way and no batch is gathering, and held until the guard is dropped. Without
    /// it a commit would meet the namespace lock, and belongs in the next batch
    /// ([`DropboxClient::finish_in_batch`]).
    pub fn commit_alone(&self) -> Option<CommitInFlight> {
        self.commits.claim_alone()
    }

    /// Commits a closed upload session (whose whole file has `content_hash`) in the next
    /// batch; answers when its own entry is settled (see the module doc).
    pub async fn finish_in_batch(
        &self,
        arg: UploadSessionFinishArg,
        content_hash: String,
    ) -> Result<FileMetadata, DropboxError> {
        let (reply, answer) = oneshot::channel();
        let entry = Entry {
            arg,
            content_hash,
            reply,
            attempts: Attempts::new(self.retry_policy()),
            may_have_landed: false,
        };
        let start_batcher = {
            let mut queue = self.commits.queue();
            queue.waiting.push(entry);
            !std::mem::replace(&mut queue.batching, true)
        };
        if start_batcher {
            let client = self.clone();
            tokio::spawn(async move { client.run_batches().await }.in_current_span());
        }
        answer.await.unwrap_or_else(|_| {
            Err(DropboxError::Transport(
                "the batch commit task ended without an answer".into(),
            ))
        })
    }

    /// The batcher: sends what is waiting, batch after batch, until nothing is.
    async fn run_batches(&self) {
        let _reset = BatcherGone(&self.commits);
        let mut again: Vec<(Entry, Duration)> = Vec::new();
        loop {
            if let Some(wait) = again.iter().map(|(_, wait)| *wait).min() {
                tokio::time::sleep(wait).await;
            }
            let mut batch: Vec<Entry> = again.drain(..).map(|(entry, _)| entry).collect();
            {
                let mut queue = self.commits.queue();
                batch.append(&mut queue.waiting);
                if batch.is_empty() {
                    queue.batching = false;
                    return;
                }
                if batch.len() > MAX_BATCH {
                    queue.waiting.splice(0..0, batch.split_off(MAX_BATCH));
                }
            }
            self.commits.until_idle(IDLE_WAIT_LIMIT).await;
            again = self.commit_batch(batch).await;
        }
    }

    /// One round: one batch request, then each entry settled; the entries to send again.
    async fn commit_batch(&self, mut batch: Vec<Entry>) -> Vec<(Entry, Duration)> {
        let attempts: Vec<u32> = batch.iter_mut().map(|e| e.attempts.begin()).collect();
        let sent = {
            let _in_flight = self.commits.begin();
            let args: Vec<&UploadSessionFinishArg> = batch.iter().map(|e| &e.arg).collect();
            self.finish_batch_once(&args).await
        };
        let results: Vec<Result<FileMetadata, DropboxError>> = match sent {
            Ok(results) if results.len() == batch.len() => results,
            Ok(results) => {
                let error = DropboxError::Decode(format!(
                    "{}: {} results for {} entries",
                    routes::SESSION_FINISH_BATCH.name,
                    results.len(),
                    batch.len()
                ));
                vec![Err(error); batch.len()]
            }
            Err(error) => vec![Err(error); batch.len()],
        };
        // An answer that is not a list of entries leaves each entry's fate unknown.
        let whole_batch_lost = results.iter().all(|r| {
            r.as_ref()
                .is_err_and(|e| Failure::sent(e.clone()).is_ambiguous() || is_decode(e))
        });
        let mut again = Vec::new();
        for ((mut entry, attempt), result) in batch.into_iter().zip(attempts).zip(results) {
            entry.may_have_landed |= whole_batch_lost;
            match self.settle(&mut entry, attempt, result).await {
                Outcome::Done(answer) => {
                    if answer.is_ok() {
                        self.recent.wrote(&entry.arg.commit.path);
                    }
                    let _ = entry.reply.send(answer);
                }
                Outcome::Again(wait) => again.push((entry, wait)),
            }
        }
        again
    }

    /// What one entry's result means (see the module doc).
    async fn settle(
        &self,
        entry: &mut Entry,
        attempt: u32,
        result: Result<FileMetadata, DropboxError>,
    ) -> Outcome {
        let error = match result {
            Ok(stored) => return Outcome::Done(Ok(stored)),
            Err(error) => error,
        };
        if entry.may_have_landed || error.is_conflict() {
            let path = &entry.arg.commit.path;
            match self.look_for_file(path, &entry.content_hash).await {
                Ok(Look::Applied(stored)) => {
                    tracing::debug!("a batched commit had landed although its answer was lost");
                    return Outcome::Done(Ok(stored));
                }
                Ok(_) if entry.may_have_landed => {}
                Ok(_) => return Outcome::Done(Err(error)),
                Err(look_failed) => return Outcome::Done(Err(look_failed)),
            }
        } else if !error.has_tag("too_many_write_operations") {
            return Outcome::Done(Err(error));
        }
        // Not there, and sending it again is as safe as the first time.
        let failure = Failure::sent(error);
        match entry
            .attempts
            .retry_wait(&failure, Safety::Idempotent, self.can_refresh())
        {
            Some(wait) => {
                record_retry(routes::SESSION_FINISH_BATCH.name, attempt, wait, &failure);
                Outcome::Again(wait)
            }
            None => Outcome::Done(Err(failure.error)),
        }
    }

    /// One `finish_batch_v2` request (the transport repeats it only when Dropbox certainly
    /// did nothing); each entry's result, in order.
    async fn finish_batch_once(
        &self,
        entries: &[&UploadSessionFinishArg],
    ) -> Result<Vec<Result<FileMetadata, DropboxError>>, DropboxError> {
        let arg = json!({ "entries": entries });
        let answer: BatchResult = self.rpc(&routes::SESSION_FINISH_BATCH, &arg).await?;
        Ok(answer
            .entries
            .into_iter()
            .map(|entry| match entry {
                EntryResult::Success(stored) => Ok(stored),
                EntryResult::Failure { failure } => Err(error::route_error(failure)),
            })
            .collect())
    }
}

fn is_decode(error: &DropboxError) -> bool {
    matches!(error, DropboxError::Decode(_))
}

/// Ends the batcher's turn however its task ends: should it fail, the commits still waiting
/// are answered (their senders dropped) and the next commit starts a new batcher.
struct BatcherGone<'a>(&'a Commits);

impl Drop for BatcherGone<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue();
        queue.batching = false;
        queue.waiting.clear();
    }
}
