//! A hook's durable queue: an append-only file of accepted events and a mark of how far they
//! have been delivered.
//!
//! Why a file and not memory: an event is promised to its receiver once the operation it
//! reports is answered, so it must outlive a crash. [`Queue::push`] appends one JSON line and
//! fsyncs it before it returns, and the operation's reply waits for that. The delivery mark
//! (`<hook>.delivered`, the byte offset of the first undelivered record) is replaced atomically
//! after each delivery, so a restart resends at most the one event that was in flight (at least
//! once, with the same id). When everything is delivered the file is emptied, the mark first,
//! so the queue never grows beyond what is undelivered.
//!
//! A crash in the middle of an append leaves a torn last line; opening the queue cuts it off
//! (that event's operation was never answered, so nothing was promised). A complete line that
//! does not parse (a damaged disk) is skipped at delivery with an error, never fatal.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::event::HookEvent;
use crate::metrics;

/// One queue line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the event was accepted, in Unix seconds: its age counts from here.
    pub accepted: u64,
    pub event: HookEvent,
}

/// The first undelivered record, and where the next one starts.
pub struct Head {
    /// The record, or why its line could not be read back.
    pub record: Result<Record, String>,
    end: u64,
}

pub struct Queue {
    name: String,
    dir: PathBuf,
    state: Mutex<State>,
    ready: tokio::sync::Notify,
}

struct State {
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
    /// Where the first undelivered record starts.
    delivered: u64,
    /// Records after `delivered`.
    pending: u64,
    /// `accepted` of the first undelivered record.
    oldest: Option<u64>,
}

impl Queue {
    /// Opens (or creates) the queue of hook `name` in `dir`, cutting off a torn last record.
    pub fn open(dir: &Path, name: &str) -> std::io::Result<Queue> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(format!("{name}.queue"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        // Two gateways delivering (and emptying) one queue would lose events: one owner only.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                std::io::Error::other(format!(
                    "{} is in use by another dropgate process",
                    path.display()
                ))
            },
        )?;
        let whole = whole_records_len(&file)?;
        if whole < file.metadata()?.len() {
            tracing::warn!(
                hook = name,
                kept_bytes = whole,
                "cutting off a torn last record of the hook queue (a crash during an append)"
            );
            file.set_len(whole)?;
            file.sync_data()?;
        }
        let mut delivered = read_mark(&dir.join(format!("{name}.delivered")))?;
        if delivered > whole {
            tracing::warn!(
                hook = name,
                "the delivery mark is past the queue's end; delivering the whole queue again"
            );
            delivered = 0;
        }
        let (pending, oldest) = count_from(&file, delivered, whole)?;
        let queue = Queue {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                file,
                len: whole,
                delivered,
                pending,
                oldest,
            }),
            ready: tokio::sync::Notify::new(),
        };
        queue.publish(&queue.lock());
        Ok(queue)
    }

    /// Appends `event` and makes it durable before returning.
    pub fn push(&self, event: &HookEvent) -> std::io::Result<()> {
        let record = Record {
            accepted: unix_now(),
            event: event.clone(),
        };
        let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut state = self.lock();
        if let Err(e) = state.append(&line) {
            // A partly written line would spoil every later one: take it back.
            let _ = state.file.set_len(state.len);
            return Err(e);
        }
        state.len += line.len() as u64;
        state.pending += 1;
        state.oldest.get_or_insert(record.accepted);
        self.publish(&state);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The first undelivered record, if any.
    pub fn head(&self) -> std::io::Result<Option<Head>> {
        let state = self.lock();
        state.head()
    }

    /// Marks `head` delivered (or given up): the next [`Queue::head`] is the record after it.
    pub fn advance(&self, head: &Head) -> std::io::Result<()> {
        let mut state = self.lock();
        if head.end <= state.delivered {
            return Ok(());
        }
        if head.end == state.len {
            // All delivered: empty the file, writing the mark first so that a crash in between
            // resends (never skips).
            write_mark(&self.dir, &self.name, 0)?;
            state.file.set_len(0)?;
            state.file.sync_data()?;
            state.len = 0;
            state.delivered = 0;
            state.pending = 0;
            state.oldest = None;
        } else {
            write_mark(&self.dir, &self.name, head.end)?;
            state.delivered = head.end;
            state.pending = state.pending.saturating_sub(1);
            state.oldest = match state.head()? {
                Some(Head { record: Ok(r), .. }) => Some(r.accepted),
                _ => None,
            };
        }
        self.publish(&state);
        Ok(())
    }

    /// Waits until something is pushed (at once if something was pushed since the last wait).
    pub async fn pushed(&self) {
        self.ready.notified().await;
    }

    /// Undelivered records.
    pub fn pending(&self) -> u64 {
        self.lock().pending
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &State) {
        metrics::hook_queue(&self.name, state.pending, state.oldest);
    }
}

impl State {
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.file.write_all(line)?;
        self.file.sync_data()
    }

    fn head(&self) -> std::io::Result<Option<Head>> {
        if self.delivered >= self.len {
            return Ok(None);
        }
        let line = read_line_at(&self.file, self.delivered, self.len)?;
        let end = self.delivered + line.len() as u64;
        let record = serde_json::from_slice::<Record>(&line).map_err(|e| e.to_string());
        Ok(Some(Head { record, end }))
    }
}

/// The length of the file's whole records: up to the last newline.
fn whole_records_len(file: &File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(std::io::Read::take(file, len));
    let mut whole = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(whole);
        }
        whole += read as u64;
    }
}

/// The records from `from` to `to`, and the first one's `accepted`.
fn count_from(file: &File, from: u64, to: u64) -> std::io::Result<(u64, Option<u64>)> {
    let mut offset = from;
    let mut count = 0;
    let mut oldest = None;
    while offset < to {
        let line = read_line_at(file, offset, to)?;
        if count == 0 {
            oldest = serde_json::from_slice::<Record>(&line)
                .ok()
                .map(|r| r.accepted);
        }
        offset += line.len() as u64;
        count += 1;
    }
    Ok((count, oldest))
}

/// The line (newline included) that starts at `offset`, reading no further than `end`.
fn read_line_at(file: &File, offset: u64, end: u64) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut at = offset;
    while at < end {
        let want = chunk.len().min((end - at) as usize);
        let read = file.read_at(&mut chunk[..want], at)?;
        if read == 0 {
            break;
        }
        if let Some(newline) = chunk[..read].iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&chunk[..=newline]);
            return Ok(line);
        }
        line.extend_from_slice(&chunk[..read]);
        at += read as u64;
    }
    Ok(line)
}

fn mark_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.delivered"))
}

/// The delivery mark; 0 (deliver everything) when there is none or it cannot be read.
fn read_mark(path: &Path) -> std::io::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "unreadable delivery mark; delivering the whole queue again");
            0
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Replaces the mark atomically (a new file renamed over the old one).
fn write_mark(dir: &Path, name: &str, offset: u64) -> std::io::Result<()> {
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(offset.to_string().as_bytes())?;
    temp.as_file().sync_data()?;
    temp.persist(mark_path(dir, name)).map_err(|e| e.error)?;
    Ok(())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::event::EventKind;

    fn event(path: &str) -> HookEvent {
        HookEvent {
            id: format!("id-{path}"),
            event: EventKind::Upload,
            time: "2026-12-07T12:00:00.000Z".into(),
            op: "upload".into(),
            user: Some("alice".into()),
            path: Some(path.into()),
            target: None,
            bytes: Some(1),
            dropbox_id: None,
            rev: None,
            content_hash: None,
            method: None,
            remote: "127.0.0.1:1".into(),
            conn: 1,
        }
    }

    fn head_path(queue: &Queue) -> Option<String> {
        queue
            .head()
            .unwrap()
            .map(|h| h.record.unwrap().event.path.unwrap())
    }

    #[test]
    fn records_come_back_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        for path in ["/a", "/b", "/c"] {
            queue.push(&event(path)).unwrap();
        }
        let head = queue.head().unwrap().unwrap();
        assert_eq!(
            head.record.as_ref().unwrap().event.path.as_deref(),
            Some("/a")
        );
        queue.advance(&head).unwrap();
        drop(queue);

        // A restart: /a was delivered and is not sent again; /b is next.
        let queue = Queue::open(dir.path(), "h").unwrap();
        assert_eq!(queue.pending(), 2);
        assert_eq!(head_path(&queue).as_deref(), Some("/b"));
        let head = queue.head().unwrap().unwrap();
        assert_eq!(head.record.as_ref().unwrap().event.id, "id-/b");
        // Not advanced before a second restart: /b comes again, with the same id.
        drop(queue);
        let queue = Queue::open(dir.path(), "h").unwrap();
        let again = queue.head().unwrap().unwrap();
        assert_eq!(again.record.as_ref().unwrap().event.id, "id-/b");
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_later_records_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        queue.push(&event("/a")).unwrap();
        drop(queue);
        let path = dir.path().join("h.queue");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"accepted\":17,\"event\":{\"id\":\"to")
            .unwrap();
        drop(file);

        let queue = Queue::open(dir.path(), "h").unwrap();
        assert_eq!(queue.pending(), 1);
        queue.push(&event("/b")).unwrap();
        let first = queue.head().unwrap().unwrap();
        assert_eq!(
            first.record.as_ref().unwrap().event.path.as_deref(),
            Some("/a")
        );
        queue.advance(&first).unwrap();
        assert_eq!(head_path(&queue).as_deref(), Some("/b"));
    }

    #[test]
    fn a_damaged_whole_line_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h.queue"), b"not json\n").unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        queue.push(&event("/a")).unwrap();
        let bad = queue.head().unwrap().unwrap();
        assert!(bad.record.is_err());
        queue.advance(&bad).unwrap();
        assert_eq!(head_path(&queue).as_deref(), Some("/a"));
    }

    #[test]
    fn the_file_is_emptied_once_everything_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        queue.push(&event("/a")).unwrap();
        queue.push(&event("/b")).unwrap();
        for _ in 0..2 {
            let head = queue.head().unwrap().unwrap();
            queue.advance(&head).unwrap();
        }
        assert!(queue.head().unwrap().is_none());
        assert_eq!(
            std::fs::metadata(dir.path().join("h.queue")).unwrap().len(),
            0
        );
        drop(queue);
        let queue = Queue::open(dir.path(), "h").unwrap();
        assert!(queue.head().unwrap().is_none());
        queue.push(&event("/c")).unwrap();
        assert_eq!(head_path(&queue).as_deref(), Some("/c"));
    }

    #[test]
    fn a_mark_past_the_end_resends_rather_than_skips() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        queue.push(&event("/a")).unwrap();
        drop(queue);
        std::fs::write(dir.path().join("h.delivered"), "99999").unwrap();
        let queue = Queue::open(dir.path(), "h").unwrap();
        assert_eq!(head_path(&queue).as_deref(), Some("/a"));
    }

    #[test]
    fn one_process_owns_a_queue() {
        let dir = tempfile::tempdir().unwrap();
        let first = Queue::open(dir.path(), "h").unwrap();
        let second = Queue::open(dir.path(), "h")
            .err()
            .expect("a second owner is refused");
        assert!(second
            .to_string()
            .contains("in use by another dropgate process"));
        drop(first);
        Queue::open(dir.path(), "h").unwrap();
    }

    #[test]
    fn the_queue_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let queue = Queue::open(&state, "h").unwrap();
        queue.push(&event("/a")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state.join("h.queue")), 0o600);
        assert_eq!(mode(&state), 0o700);
    }
}
