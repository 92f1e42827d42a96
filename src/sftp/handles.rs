//! The session's table of open handles, and the work that flows to them.
//!
//! Each open handle is served by one task (see `actor`) that owns the backend object (reader,
//! upload, listing) and takes [`Job`]s from a queue. The session's reader puts a handle's requests
//! on that queue in the order they arrived, which is what keeps pipelined WRITEs, the FSETSTAT
//! before CLOSE, and CLOSE itself in the client's order while other handles and path requests run
//! concurrently.
//!
//! A CLOSE takes the handle out of service at once (later requests naming it are invalid) but the
//! entry stays until its task has finished committing. Path requests that touch a file whose
//! upload is still committing wait for that ([`HandleTable::barriers`]): WinSCP, for one, sends
//! its SETSTAT right behind the CLOSE without waiting for the reply.
//!
//! Open handles are capped per session, and with a [`HandleQuota`] also per user over all their
//! sessions: every write handle holds a spool file, so sessions times handles would otherwise
//! be the file descriptors one user can pin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use russh_sftp::protocol::FileAttributes;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::extensions::CopyRange;
use super::replies::Permit;
use crate::vfs::{VPath, VfsError};

/// A request for one handle.
#[derive(Debug)]
pub(super) enum HandleOp {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        data: Bytes,
    },
    Fstat,
    /// FSETSTAT, or a SETSTAT by path that names a file this session is uploading.
    SetStat(Box<FileAttributes>),
    ReadDir,
    Fsync,
    /// copy-data into this (write) handle from the file at `source`.
    CopyFrom {
        source: VPath,
        range: CopyRange,
    },
    Close,
}

/// A handle request with what its reply needs: the request id, and the in-flight permit that is
/// released once the reply is written.
#[derive(Debug)]
pub(super) struct Job {
    pub id: u32,
    pub op: HandleOp,
    pub permit: Permit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandleKind {
    Read,
    Write,
    Dir,
}

/// What a handle's task receives when its handle is registered.
pub(super) struct Registration {
    pub handle: String,
    pub jobs: mpsc::UnboundedReceiver<Job>,
    /// Dropped when the task ends: wakes requests waiting for a commit (see `barriers`).
    pub done: watch::Sender<()>,
}

struct Entry {
    path: VPath,
    kind: HandleKind,
    /// `None` once CLOSE has been queued (or the session is ending): no more requests go in.
    queue: Option<mpsc::UnboundedSender<Job>>,
    done: watch::Receiver<()>,
    /// The handle's place in its user's quota, given back when the entry goes.
    _quota: Option<OwnedSemaphorePermit>,
}

impl Entry {
    fn is_open(&self) -> bool {
        self.queue.is_some()
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    next_handle: u64,
    /// Set when the session ends: no new handles.
    shut: bool,
}

/// Open handles one user may hold over all their sessions, shared by those sessions. A handle
/// counts from its OPEN until its task has ended (a closed upload still holds its spool file
/// while it commits).
#[derive(Debug, Clone)]
pub struct HandleQuota {
    open: Arc<Semaphore>,
    limit: usize,
}

impl HandleQuota {
    pub fn new(limit: usize) -> Self {
        HandleQuota {
            open: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    fn refusal(&self) -> VfsError {
        VfsError::Failure(format!(
            "too many open handles for this user over all sessions (the limit is {}); \
             close some first",
            self.limit
        ))
    }

    fn check(&self) -> Result<(), VfsError> {
        match self.open.available_permits() {
            0 => Err(self.refusal()),
            _ => Ok(()),
        }
    }

    fn take(&self) -> Result<OwnedSemaphorePermit, VfsError> {
        self.open
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.refusal())
    }
}

/// Open handles of one session. Locked only for short, non-async sections.
pub(super) struct HandleTable {
    inner: Mutex<Inner>,
    max_open: usize,
    user_quota: Option<HandleQuota>,
}

impl HandleTable {
    pub fn new(max_open: usize, user_quota: Option<HandleQuota>) -> Self {
        HandleTable {
            inner: Mutex::new(Inner::default()),
            max_open,
            user_quota,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; if something did, the table is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A quick check before opening anything; `register` decides for good.
    pub fn check_room(&self) -> Result<(), VfsError> {
        let inner = self.lock();
        self.room_in(&inner)
    }

    fn room_in(&self, inner: &Inner) -> Result<(), VfsError> {
        if inner.shut {
            return Err(VfsError::Failure("the session is closing".to_string()));
        }
        let open = inner.entries.values().filter(|e| e.is_open()).count();
        if open >= self.max_open {
            return Err(VfsError::Failure(format!(
                "too many open handles (the limit is {}); close some first",
                self.max_open
            )));
        }
        self.user_quota.as_ref().map_or(Ok(()), HandleQuota::check)
    }

    /// Adds a handle and returns what its task needs to serve it.
    pub fn register(&self, path: VPath, kind: HandleKind) -> Result<Registration, VfsError> {
        let mut inner = self.lock();
        self.room_in(&inner)?;
        let quota = self
            .user_quota
            .as_ref()
            .map(HandleQuota::take)
            .transpose()?;
        inner.next_handle += 1;
        let handle = inner.next_handle.to_string();
        let (queue, jobs) = mpsc::unbounded_channel();
        let (done, done_rx) = watch::channel(());
        inner.entries.insert(
            handle.clone(),
            Entry {
                path,
                kind,
                queue: Some(queue),
                done: done_rx,
                _quota: quota,
            },
        );
        Ok(Registration { handle, jobs, done })
    }

    /// Queues a request for an open handle; gives the job back if the handle is not open.
    /// A CLOSE is the last request the handle accepts.
    pub fn submit(&self, handle: &str, job: Job) -> Result<(), Job> {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(handle) else {
            return Err(job);
        };
        let closing = matches!(job.op, HandleOp::Close);
        let Some(queue) = &entry.queue else {
            return Err(job);
        };
        queue.send(job).map_err(|e| e.0)?;
        if closing {
            entry.queue = None;
        }
        Ok(())
    }

    /// The handle of an open upload of `path`, if this session has one. A SETSTAT by path goes
    /// there, so an mtime set while uploading becomes the file's modification time.
    /// Paths are compared by their case key: on Dropbox `/A.txt` and `/a.txt` are one file.
    pub fn open_upload(&self, path: &VPath) -> Option<String> {
        let key = path.case_key();
        let inner = self.lock();
        inner
            .entries
            .iter()
            .find(|(_, e)| e.kind == HandleKind::Write && e.path.case_key() == key && e.is_open())
            .map(|(handle, _)| handle.clone())
    }

    /// The file an open read handle reads (copy-data's source).
    pub fn read_source(&self, handle: &str) -> Option<VPath> {
        let inner = self.lock();
        inner
            .entries
            .get(handle)
            .filter(|e| e.kind == HandleKind::Read && e.is_open())
            .map(|e| e.path.clone())
    }

    /// Signals to wait on before touching `paths`: one for each upload of those paths that is
    /// closing (committing) right now.
    /// Compared by case key, as `open_upload`.
    pub fn barriers(&self, paths: &[VPath]) -> Vec<watch::Receiver<()>> {
        let keys: Vec<String> = paths.iter().map(VPath::case_key).collect();
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter(|e| {
                e.kind == HandleKind::Write && !e.is_open() && keys.contains(&e.path.case_key())
            })
            .map(|e| e.done.clone())
            .collect()
    }

    /// Called by a handle's task when it ends.
    pub fn remove(&self, handle: &str) {
        self.lock().entries.remove(handle);
    }

    /// The session is ending: refuse new handles and close every queue, so each handle's task
    /// finishes what is queued and ends. Uploads that never got a CLOSE are dropped uncommitted.
    pub fn shut_down(&self) {
        let mut inner = self.lock();
        inner.shut = true;
        for entry in inner.entries.values_mut() {
            entry.queue = None;
        }
    }
}

/// Waits until every signal's sender is gone (its handle's task has ended).
pub(super) async fn wait_for(barriers: Vec<watch::Receiver<()>>) {
    for mut barrier in barriers {
        while barrier.changed().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(op: HandleOp) -> Job {
        Job {
            id: 1,
            op,
            permit: Permit::detached(),
        }
    }

    fn path(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn limits_open_handles_and_frees_on_close() {
        let table = HandleTable::new(1, None);
        let first = table.register(path("/a"), HandleKind::Read).unwrap();
        assert!(table.register(path("/b"), HandleKind::Read).is_err());
        table.submit(&first.handle, job(HandleOp::Close)).unwrap();
        // Closed: no longer counted, and no longer accepts requests.
        assert!(table.check_room().is_ok());
        assert!(table.submit(&first.handle, job(HandleOp::Fstat)).is_err());
    }

    #[test]
    fn closing_upload_is_a_barrier_until_its_task_ends() {
        let table = HandleTable::new(4, None);
        let reg = table.register(path("/f"), HandleKind::Write).unwrap();
        assert!(table.barriers(&[path("/f")]).is_empty());
        table.submit(&reg.handle, job(HandleOp::Close)).unwrap();
        assert_eq!(table.barriers(&[path("/f")]).len(), 1);
        assert!(table.barriers(&[path("/g")]).is_empty());
        assert_eq!(
            table.barriers(&[path("/F")]).len(),
            1,
            "one file on Dropbox, whatever its case"
        );
        table.remove(&reg.handle);
        assert!(table.barriers(&[path("/f")]).is_empty());
    }

    #[test]
    fn setstat_finds_an_open_upload_of_the_path() {
        let table = HandleTable::new(4, None);
        let reg = table.register(path("/f"), HandleKind::Write).unwrap();
        table.register(path("/f"), HandleKind::Read).unwrap();
        assert_eq!(table.open_upload(&path("/f")), Some(reg.handle.clone()));
        assert_eq!(table.open_upload(&path("/other")), None);
        assert_eq!(
            table.open_upload(&path("/F")),
            Some(reg.handle.clone()),
            "the same file on Dropbox"
        );
        table.submit(&reg.handle, job(HandleOp::Close)).unwrap();
        assert_eq!(table.open_upload(&path("/f")), None);
    }

    #[test]
    fn the_user_quota_spans_sessions_and_frees_when_a_handle_task_ends() {
        let quota = HandleQuota::new(2);
        let first = HandleTable::new(4, Some(quota.clone()));
        let second = HandleTable::new(4, Some(quota));
        let a = first.register(path("/a"), HandleKind::Write).unwrap();
        second.register(path("/b"), HandleKind::Read).unwrap();
        let Err(refused) = second.register(path("/c"), HandleKind::Read) else {
            panic!("a third handle over a quota of two");
        };
        assert!(
            refused.to_string().contains("too many open handles"),
            "{refused}"
        );
        assert!(first.check_room().is_err());
        // A CLOSE alone does not free the place: the upload still commits from its spool file.
        first.submit(&a.handle, job(HandleOp::Close)).unwrap();
        assert!(first.check_room().is_err());
        first.remove(&a.handle);
        second.register(path("/c"), HandleKind::Read).unwrap();
    }

    #[test]
    fn shut_down_refuses_new_handles() {
        let table = HandleTable::new(4, None);
        table.shut_down();
        assert!(table.register(path("/f"), HandleKind::Read).is_err());
    }
}
