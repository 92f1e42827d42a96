//! The [`Vfs`] wrapper that writes the audit log's operation lines.
//!
//! It sits outermost (in front of the permission checks), so refused operations are audited
//! too. Transfers are logged once, when they end: an upload at its commit (with the bytes and
//! the Dropbox id and rev) or when its handle is dropped without one (nothing was stored); a
//! download when its handle goes away (with the bytes actually sent). STAT and statvfs are not
//! logged: clients send them constantly and they change nothing.
//!
//! The same points feed the [`metrics`]: every operation line is also counted by kind and
//! result, bytes are counted as they flow, and a commit's duration goes to the upload commit
//! latency histogram. One wrapper does both so the two can never disagree.
//!
//! And the same points keep the gateway's list of transfers in progress
//! ([`crate::transfers`], for the admin page): a transfer is registered when its file is opened,
//! its bytes counted as they flow, an upload marked as committing when its commit starts, and
//! it leaves the list just before its line is written (however it ended), so a transfer whose
//! line a listener has seen is no longer listed as in progress.
//!
//! It is also the one place where an operation's failure is known after everything below
//! (the Dropbox client's retries, the spool, the commit) has given up, so the operational log's
//! warning for a failed operation is written here too, with the path and the Dropbox path; it
//! runs in the session's span, which names the connection and the user. Only failures on the
//! gateway's side are warnings; a missing file or a name already taken is the client's affair
//! and stays in the audit log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{
    Capabilities, Committed, FileInfo, FileReader, FileWriter, Renamed, SpaceUsage, VPath, Vfs,
    VfsError, VfsResult, WriteOptions,
};
use crate::audit_log::{AuditEvent, AuditSession};
use crate::log_safe::Untrusted;
use crate::metrics;
use crate::transfers::{Direction, State, TransferProgress, TransferStart};

/// A backend whose operations are written to the audit log.
pub struct Audited<F> {
    inner: F,
    session: Arc<AuditSession>,
}

impl<F: Vfs> Audited<F> {
    pub fn new(inner: F, session: AuditSession) -> Self {
        Audited {
            inner,
            session: Arc::new(session),
        }
    }

    /// Logs a finished path operation and hands its result back.
    fn logged<T>(
        &self,
        op: &'static str,
        path: &VPath,
        target: Option<&VPath>,
        started: Instant,
        result: VfsResult<T>,
    ) -> VfsResult<T> {
        let mut line = operation(&self.session, op, path, started, &result);
        line.target = target.map(ToString::to_string);
        record(&self.session, &line);
        result
    }
}

/// Writes an operation line and counts it in the metrics.
fn record(session: &AuditSession, line: &AuditEvent) {
    session.record(line);
    if let (Some(op), Some(result)) = (line.op, line.result) {
        metrics::operation(op, result);
    }
}

/// The `result` and `error` fields for an outcome.
pub fn outcome<T>(result: &Result<T, VfsError>) -> (&'static str, Option<String>) {
    match result {
        Ok(_) => ("ok", None),
        Err(e @ VfsError::PermissionDenied(_)) => ("denied", Some(e.to_string())),
        Err(e) => ("failed", Some(e.to_string())),
    }
}

/// Logs an operation that failed on the gateway's side (Dropbox, the network, the spool; not
/// a client's mistake such as a missing file), in the span of its connection and user: an
/// upload that was not stored at ERROR (a partner's file did not arrive: someone must act),
/// anything else at WARN.
fn log_failed(session: &AuditSession, op: &str, path: &VPath, error: &VfsError) {
    let path = path.to_string();
    let dropbox_path = session.dropbox_path(&path).unwrap_or_default();
    let (path, dropbox_path, error) =
        (Untrusted(&path), Untrusted(&dropbox_path), Untrusted(error));
    if op == "upload" {
        tracing::error!(op, %path, %dropbox_path, %error, "operation failed");
    } else {
        tracing::warn!(op, %path, %dropbox_path, %error, "operation failed");
    }
}

/// An operation line with its outcome filled in.
fn operation<T>(
    session: &AuditSession,
    op: &'static str,
    path: &VPath,
    started: Instant,
    result: &VfsResult<T>,
) -> AuditEvent {
    if let Err(error @ VfsError::Failure(_)) = result {
        log_failed(session, op, path, error);
    }
    let (result, error) = outcome(result);
    let mut line = session.event("operation");
    line.op = Some(op);
    line.path = Some(path.to_string());
    line.dropbox_path = session.dropbox_path(&path.to_string());
    line.duration_ms = Some(started.elapsed().as_millis() as u64);
    line.result = Some(result);
    line.error = error;
    line
}

impl<F: Vfs> Vfs for Audited<F> {
    type Reader = AuditedReader<F::Reader>;
    type Writer = AuditedWriter<F::Writer>;
    type Lister = F::Lister;

    /// Not audited (clients send it constantly), but a failure on the gateway's side is
    /// logged like an operation's.
    async fn stat(&self, path: &VPath) -> VfsResult<FileInfo> {
        let result = self.inner.stat(path).await;
        if let Err(error @ VfsError::Failure(_)) = &result {
            log_failed(&self.session, "stat", path, error);
        }
        result
    }

    async fn open_dir(&self, path: &VPath) -> VfsResult<F::Lister> {
        let started = Instant::now();
        let result = self.inner.open_dir(path).await;
        self.logged("list", path, None, started, result)
    }

    async fn open_read(&self, path: &VPath) -> VfsResult<Self::Reader> {
        let started = Instant::now();
        match self.inner.open_read(path).await {
            Ok(inner) => {
                let size = Some(inner.stat().size);
                let transfer =
                    Transfer::new(&self.session, path, started, Direction::Download, size);
                Ok(AuditedReader::new(inner, transfer))
            }
            Err(e) => self.logged("download", path, None, started, Err(e)),
        }
    }

    async fn open_write(&self, path: &VPath, options: WriteOptions) -> VfsResult<Self::Writer> {
        let started = Instant::now();
        match self.inner.open_write(path, options).await {
            Ok(inner) => Ok(AuditedWriter {
                inner: Some(inner),
                transfer: Transfer::new(&self.session, path, started, Direction::Upload, None),
            }),
            Err(e) => self.logged("upload", path, None, started, Err(e)),
        }
    }

    async fn mkdir(&self, path: &VPath) -> VfsResult<()> {
        let started = Instant::now();
        let result = self.inner.mkdir(path).await;
        self.logged("mkdir", path, None, started, result)
    }

    async fn rmdir(&self, path: &VPath) -> VfsResult<()> {
        let started = Instant::now();
        let result = self.inner.rmdir(path).await;
        self.logged("rmdir", path, None, started, result)
    }

    async fn remove(&self, path: &VPath) -> VfsResult<()> {
        let started = Instant::now();
        let result = self.inner.remove(path).await;
        self.logged("remove", path, None, started, result)
    }

    /// A replacing rename's line says so (`replaced`): the file that was at the target is gone.
    async fn rename(&self, from: &VPath, to: &VPath, replace: bool) -> VfsResult<Renamed> {
        let started = Instant::now();
        let result = self.inner.rename(from, to, replace).await;
        let mut line = operation(&self.session, "rename", from, started, &result);
        line.target = Some(to.to_string());
        line.replaced = result.as_ref().ok().map(|renamed| renamed.replaced);
        record(&self.session, &line);
        result
    }

    async fn set_mtime(&self, path: &VPath, mtime: i64) -> VfsResult<()> {
        let started = Instant::now();
        let result = self.inner.set_mtime(path, mtime).await;
        self.logged("setstat", path, None, started, result)
    }

    async fn space_usage(&self) -> VfsResult<SpaceUsage> {
        self.inner.space_usage().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn copy_file(&self, from: &VPath, to: &VPath) -> VfsResult<FileInfo> {
        let started = Instant::now();
        let result = self.inner.copy_file(from, to).await;
        self.logged("copy", from, Some(to), started, result)
    }
}

/// What a transfer line needs: who, which file, since when, how many bytes; and the
/// transfer's place in the list of those in progress until its line is written.
struct Transfer {
    session: Arc<AuditSession>,
    path: VPath,
    started: Instant,
    bytes: AtomicU64,
    live: Option<TransferProgress>,
}

impl Transfer {
    fn new(
        session: &Arc<AuditSession>,
        path: &VPath,
        started: Instant,
        direction: Direction,
        size: Option<u64>,
    ) -> Self {
        let shown = path.to_string();
        let live = session.log.transfers().start(TransferStart {
            conn: session.conn,
            user: session.user.clone().unwrap_or_default(),
            remote: session.remote.to_string(),
            dropbox_path: session.dropbox_path(&shown),
            path: shown,
            direction,
            size,
        });
        Transfer {
            session: session.clone(),
            path: path.clone(),
            started,
            bytes: AtomicU64::new(0),
            live: Some(live),
        }
    }

    /// `n` more bytes moved, for the list of transfers in progress.
    fn moved(&self, n: u64) {
        if let Some(live) = &self.live {
            live.add_bytes(n);
        }
    }

    fn committing(&self) {
        if let Some(live) = &self.live {
            live.set_state(State::Committing);
        }
    }

    /// Takes the transfer out of the list in progress: it has ended, its line comes next.
    fn ended(&mut self) {
        self.live = None;
    }

    fn line<T>(&self, op: &'static str, result: &VfsResult<T>) -> AuditEvent {
        let mut line = operation(&self.session, op, &self.path, self.started, result);
        line.bytes = Some(self.bytes.load(Ordering::Relaxed));
        line
    }
}

/// A download; its line is written when the handle goes away, saying whether the client got
/// the whole file: `ok` only when its READs reached the end, `failed` with the error when a READ
/// failed, and `interrupted` (with the bytes sent) when the handle closed before the end.
pub struct AuditedReader<R: FileReader> {
    inner: R,
    transfer: Transfer,
    /// The end of the furthest READ answered: the client has seen the file up to here.
    reached: u64,
    /// The first READ that failed; the line reports it.
    failure: Option<VfsError>,
}

impl<R: FileReader> AuditedReader<R> {
    fn new(inner: R, transfer: Transfer) -> Self {
        AuditedReader {
            inner,
            transfer,
            reached: 0,
            failure: None,
        }
    }
}

impl<R: FileReader> FileReader for AuditedReader<R> {
    async fn read(&mut self, offset: u64, len: u32) -> VfsResult<Bytes> {
        let data = match self.inner.read(offset, len).await {
            Ok(data) => data,
            Err(error) => {
                self.failure.get_or_insert_with(|| error.clone());
                return Err(error);
            }
        };
        metrics::bytes_downloaded(data.len() as u64);
        self.transfer
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.transfer.moved(data.len() as u64);
        self.reached = self.reached.max(offset + data.len() as u64);
        Ok(data)
    }

    fn stat(&self) -> FileInfo {
        self.inner.stat()
    }
}

impl<R: FileReader> Drop for AuditedReader<R> {
    fn drop(&mut self) {
        self.transfer.ended();
        let size = self.inner.stat().size;
        let mut line = match self.failure.take() {
            Some(error) => self.transfer.line("download", &Err::<(), _>(error)),
            None => self.transfer.line("download", &Ok(())),
        };
        if line.result == Some("ok") && self.reached < size {
            line.result = Some("interrupted");
            line.error = Some(format!(
                "the client closed the file after reading up to byte {} of {size}",
                self.reached
            ));
        }
        record(&self.transfer.session, &line);
    }
}

/// An upload; its line is written at commit, or when it is dropped without one.
pub struct AuditedWriter<W: FileWriter> {
    /// Taken by the commit; still here on drop means nothing was stored.
    inner: Option<W>,
    transfer: Transfer,
}

impl<W: FileWriter> AuditedWriter<W> {
    fn inner(&mut self) -> &mut W {
        self.inner
            .as_mut()
            .expect("the writer is only taken by commit")
    }
}

impl<W: FileWriter> FileWriter for AuditedWriter<W> {
    async fn write(&mut self, offset: u64, data: Bytes) -> VfsResult<()> {
        let len = data.len() as u64;
        self.inner().write(offset, data).await?;
        metrics::bytes_uploaded(len);
        self.transfer.moved(len);
        Ok(())
    }

    async fn set_size(&mut self, size: u64) -> VfsResult<()> {
        self.inner().set_size(size).await
    }

    fn set_mtime(&mut self, mtime: i64) {
        self.inner().set_mtime(mtime);
    }

    fn stat(&self) -> FileInfo {
        self.inner
            .as_ref()
            .expect("the writer is only taken by commit")
            .stat()
    }

    async fn commit(mut self) -> VfsResult<Committed> {
        let inner = self.inner.take().expect("commit runs once");
        let size = inner.stat().size;
        let commit_started = Instant::now();
        self.transfer.committing();
        let result = inner.commit().await;
        metrics::upload_commit(commit_started.elapsed());
        self.transfer.ended();
        self.transfer.bytes.store(size, Ordering::Relaxed);
        let mut line = self.transfer.line("upload", &result);
        if let Ok(committed) = &result {
            line.bytes = Some(committed.info.size);
            line.dropbox_id = committed.id.clone();
            line.rev = committed.rev.clone();
            line.content_hash = committed.content_hash.clone();
        }
        record(&self.transfer.session, &line);
        result
    }
}

impl<W: FileWriter> Drop for AuditedWriter<W> {
    fn drop(&mut self) {
        let Some(inner) = &self.inner else { return };
        self.transfer.ended();
        self.transfer
            .bytes
            .store(inner.stat().size, Ordering::Relaxed);
        let aborted: VfsResult<()> = Err(VfsError::Failure(
            "the upload was not closed (disconnect?); nothing was stored".to_string(),
        ));
        let line = self.transfer.line("upload", &aborted);
        record(&self.transfer.session, &line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::audit_log::{AuditListener, AuditLog};
    use crate::transfers::{LiveTransfer, LiveTransfers};
    use crate::vfs::memory::MemFs;

    /// Notes, as each operation line is recorded, how many transfers are still in progress.
    #[derive(Default)]
    struct InProgressAtEachLine {
        transfers: LiveTransfers,
        seen: Mutex<Vec<(&'static str, &'static str, usize)>>,
    }

    impl AuditListener for InProgressAtEachLine {
        fn audited(&self, event: &AuditEvent) {
            if let (Some(op), Some(result)) = (event.op, event.result) {
                let open = self.transfers.snapshot().len();
                self.seen.lock().unwrap().push((op, result, open));
            }
        }
    }

    fn audited(backend: &MemFs) -> (Audited<MemFs>, Arc<InProgressAtEachLine>) {
        let log = AuditLog::disabled();
        let listener = Arc::new(InProgressAtEachLine {
            transfers: log.transfers().clone(),
            ..Default::default()
        });
        let session = AuditSession {
            log: log.with_listener(listener.clone()),
            conn: 4,
            remote: "192.0.2.1:5000".parse().unwrap(),
            user: Some("alice".into()),
            dropbox_root: Some("/partners/alice".into()),
            negotiation: Arc::default(),
        };
        (Audited::new(backend.clone(), session), listener)
    }

    fn in_progress(listener: &InProgressAtEachLine) -> Vec<LiveTransfer> {
        listener.transfers.snapshot()
    }

    fn path(text: &str) -> VPath {
        VPath::parse(text).unwrap()
    }

    #[tokio::test]
    async fn an_upload_is_receiving_then_committing_then_gone_before_its_line() {
        let backend = MemFs::new();
        backend.slow_commits(Duration::from_millis(300));
        backend.add_folder("/in");
        let (fs, listener) = audited(&backend);
        let mut writer = fs
            .open_write(&path("/in/a.bin"), WriteOptions::default())
            .await
            .unwrap();
        let seen = in_progress(&listener);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].direction, Direction::Upload);
        assert_eq!(seen[0].state, State::Receiving);
        assert_eq!(seen[0].bytes, 0);
        assert_eq!(seen[0].user, "alice");
        assert_eq!(seen[0].conn, 4);
        assert_eq!(seen[0].remote, "192.0.2.1:5000");
        assert_eq!(seen[0].path, "/in/a.bin");
        assert_eq!(
            seen[0].dropbox_path.as_deref(),
            Some("/partners/alice/in/a.bin")
        );

        writer.write(0, Bytes::from(vec![1; 1000])).await.unwrap();
        writer.write(1000, Bytes::from(vec![2; 500])).await.unwrap();
        assert_eq!(in_progress(&listener)[0].bytes, 1500);

        let commit = tokio::spawn(writer.commit());
        let mut committing = false;
        for _ in 0..100 {
            committing = in_progress(&listener)
                .first()
                .is_some_and(|t| t.state == State::Committing);
            if committing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(committing, "the commit never showed as committing");
        commit.await.unwrap().unwrap();
        assert!(in_progress(&listener).is_empty());
        assert_eq!(
            *listener.seen.lock().unwrap(),
            [("upload", "ok", 0)],
            "the transfer left the list before its line was written"
        );
    }

    #[tokio::test]
    async fn a_failed_commit_and_a_dropped_upload_leave_the_list() {
        let backend = MemFs::new();
        backend.fail_commits(true);
        let (fs, listener) = audited(&backend);
        let mut writer = fs
            .open_write(&path("/a.bin"), WriteOptions::default())
            .await
            .unwrap();
        writer.write(0, Bytes::from_static(b"abc")).await.unwrap();
        assert!(writer.commit().await.is_err());
        assert!(in_progress(&listener).is_empty());

        let mut writer = fs
            .open_write(&path("/b.bin"), WriteOptions::default())
            .await
            .unwrap();
        writer.write(0, Bytes::from_static(b"abc")).await.unwrap();
        assert_eq!(in_progress(&listener).len(), 1);
        drop(writer);
        assert!(in_progress(&listener).is_empty());
        assert_eq!(
            *listener.seen.lock().unwrap(),
            [("upload", "failed", 0), ("upload", "failed", 0)]
        );
    }

    #[tokio::test]
    async fn a_download_is_sending_with_its_size_until_its_handle_goes() {
        let backend = MemFs::new();
        backend.add_file("/report.pdf", &[7; 4000], 0);
        let (fs, listener) = audited(&backend);
        let mut reader = fs.open_read(&path("/report.pdf")).await.unwrap();
        reader.read(0, 1000).await.unwrap();
        let seen = in_progress(&listener);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].direction, Direction::Download);
        assert_eq!(seen[0].state, State::Sending);
        assert_eq!(seen[0].size, Some(4000));
        assert_eq!(seen[0].bytes, 1000);
        drop(reader);
        assert!(in_progress(&listener).is_empty());
        assert_eq!(
            *listener.seen.lock().unwrap(),
            [("download", "interrupted", 0)]
        );
    }

    #[tokio::test]
    async fn a_refused_open_registers_nothing() {
        let backend = MemFs::new();
        let (fs, listener) = audited(&backend);
        assert!(fs.open_read(&path("/missing")).await.is_err());
        assert!(in_progress(&listener).is_empty());
        assert_eq!(*listener.seen.lock().unwrap(), [("download", "failed", 0)]);
    }
}
