//! The transfers in progress on one gateway: who is moving which file, how far it got, and how
//! fast it goes now.
//!
//! The audit log says what a transfer did once it has ended; an operator watching the admin
//! page wants the ones still running. The audit wrapper (`vfs/audited.rs`) registers each
//! upload and download when its file is opened and reports bytes as they flow; the registry
//! holds only what runs now, because an entry leaves when its guard ([`TransferProgress`]) is
//! dropped: a transfer that ends in any way (committed, failed, cut off by a disconnect) cannot
//! linger.
//!
//! The rate is measured over the last few seconds ([`RATE_WINDOW`]), not averaged since the
//! start: an upload that has been crawling for a minute shows its crawl, not the good first
//! minute before it. A transfer that stops moving drops to 0 within the window.
//!
//! One registry per gateway, not a process global: the end-to-end tests run many gateways in
//! one process, and each must see only its own transfers. This module depends on no other part
//! of dropgate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How far back the rate looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(3);
/// The finest spacing of the rate's samples; bounds how many a window holds, however small the
/// writes.
const SAMPLE_SPACING: Duration = Duration::from_millis(250);

/// The registry of one gateway's transfers in progress; clones share it.
#[derive(Clone, Default)]
pub struct LiveTransfers {
    registry: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    /// By id, which grows with each start: iteration is oldest first.
    running: Mutex<BTreeMap<u64, Arc<Running>>>,
}

/// What a transfer is, said once when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferStart {
    /// The SSH connection it runs on (the audit log's `conn`).
    pub conn: u64,
    pub user: String,
    /// The client's address and port.
    pub remote: String,
    /// The path as the user sees it.
    pub path: String,
    /// Where that is in Dropbox, when the user's root is known.
    pub dropbox_path: Option<String>,
    pub direction: Direction,
    /// The whole file's size when known from the start (a download's).
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// Where a transfer is: an upload is `Receiving` the client's bytes, then `Committing` them to
/// Dropbox; a download is `Sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Receiving,
    Committing,
    Sending,
}

/// One transfer in progress, as it was when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTransfer {
    /// Unique within the gateway's run.
    pub id: u64,
    pub conn: u64,
    pub user: String,
    pub remote: String,
    pub path: String,
    pub dropbox_path: Option<String>,
    pub direction: Direction,
    pub size: Option<u64>,
    pub state: State,
    /// Bytes received from the client (upload) or sent to it (download) so far.
    pub bytes: u64,
    /// Bytes per second over the last [`RATE_WINDOW`] (since the start if younger).
    pub rate: u64,
    pub started: SystemTime,
}

/// A registered transfer; dropping it takes the transfer out of the registry.
pub struct TransferProgress {
    running: Arc<Running>,
    registry: Arc<Registry>,
}

struct Running {
    id: u64,
    start: TransferStart,
    started: SystemTime,
    progress: Mutex<Progress>,
}

struct Progress {
    state: State,
    meter: Meter,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }

    fn first_state(self) -> State {
        match self {
            Direction::Upload => State::Receiving,
            Direction::Download => State::Sending,
        }
    }
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Receiving => "receiving",
            State::Committing => "committing",
            State::Sending => "sending",
        }
    }
}

impl LiveTransfers {
    /// Registers a transfer; it stays in [`LiveTransfers::snapshot`] until the guard is dropped.
    pub fn start(&self, start: TransferStart) -> TransferProgress {
        let id = self.registry.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let running = Arc::new(Running {
            id,
            progress: Mutex::new(Progress {
                state: start.direction.first_state(),
                meter: Meter::new(Instant::now()),
            }),
            start,
            started: SystemTime::now(),
        });
        self.registry.running().insert(id, running.clone());
        TransferProgress {
            running,
            registry: self.registry.clone(),
        }
    }

    /// Every transfer in progress, oldest first.
    pub fn snapshot(&self) -> Vec<LiveTransfer> {
        let running: Vec<Arc<Running>> = self.registry.running().values().cloned().collect();
        let now = Instant::now();
        running.iter().map(|r| r.seen(now)).collect()
    }
}

impl Registry {
    fn running(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Running {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn seen(&self, now: Instant) -> LiveTransfer {
        let mut progress = self.progress();
        let start = &self.start;
        LiveTransfer {
            id: self.id,
            conn: start.conn,
            user: start.user.clone(),
            remote: start.remote.clone(),
            path: start.path.clone(),
            dropbox_path: start.dropbox_path.clone(),
            direction: start.direction,
            size: start.size,
            state: progress.state,
            bytes: progress.meter.bytes,
            rate: progress.meter.rate(now),
            started: self.started,
        }
    }
}

impl TransferProgress {
    /// `n` more bytes moved.
    pub fn add_bytes(&self, n: u64) {
        self.running.progress().meter.add(n, Instant::now());
    }

    pub fn set_state(&self, state: State) {
        self.running.progress().state = state;
    }
}

impl Drop for TransferProgress {
    fn drop(&mut self) {
        self.registry.running().remove(&self.running.id);
    }
}

/// Bytes so far, and enough recent samples of them to tell the rate over [`RATE_WINDOW`].
struct Meter {
    bytes: u64,
    /// (when, bytes by then), oldest first. The first is the newest sample at or before the
    /// window's start (the start itself while the transfer is younger than the window); the
    /// last always holds the current count.
    samples: VecDeque<(Instant, u64)>,
}

impl Meter {
    fn new(now: Instant) -> Meter {
        Meter {
            bytes: 0,
            samples: VecDeque::from([(now, 0)]),
        }
    }

    fn add(&mut self, n: u64, now: Instant) {
        self.bytes += n;
        let len = self.samples.len();
        // The last sample moves forward until it is SAMPLE_SPACING past the one before it;
        // only then does a new one start, so a flood of small writes adds few samples.
        let last_is_fresh =
            len >= 2 && now.duration_since(self.samples[len - 2].0) < SAMPLE_SPACING;
        if last_is_fresh {
            self.samples[len - 1] = (now, self.bytes);
        } else {
            self.samples.push_back((now, self.bytes));
        }
        self.forget_before_window(now);
    }

    /// Keeps one sample at or before the window's start as the baseline, and none older.
    fn forget_before_window(&mut self, now: Instant) {
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    fn rate(&mut self, now: Instant) -> u64 {
        self.forget_before_window(now);
        let (since, bytes_then) = self.samples[0];
        let elapsed = now.duration_since(since).as_secs_f64();
        if elapsed <= 0.0 {
            return 0;
        }
        ((self.bytes - bytes_then) as f64 / elapsed) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn upload(path: &str) -> TransferStart {
        TransferStart {
            conn: 3,
            user: "alice".into(),
            remote: "192.0.2.1:5000".into(),
            path: path.into(),
            dropbox_path: Some(format!("/alice{path}")),
            direction: Direction::Upload,
            size: None,
        }
    }

    #[test]
    fn a_transfer_is_listed_while_its_guard_lives_and_gone_when_it_drops() {
        let transfers = LiveTransfers::default();
        let first = transfers.start(upload("/a.bin"));
        let second = transfers.start(TransferStart {
            direction: Direction::Download,
            size: Some(10),
            ..upload("/b.bin")
        });
        first.add_bytes(100);
        first.add_bytes(23);
        first.set_state(State::Committing);

        let seen = transfers.snapshot();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].path, "/a.bin", "oldest first");
        assert_eq!(seen[0].bytes, 123);
        assert_eq!(seen[0].state, State::Committing);
        assert_eq!(seen[0].dropbox_path.as_deref(), Some("/alice/a.bin"));
        assert_eq!(seen[1].state, State::Sending, "a download starts sending");
        assert_eq!(seen[1].size, Some(10));
        assert_ne!(seen[0].id, seen[1].id);

        drop(first);
        let seen = transfers.snapshot();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/b.bin");
        drop(second);
        assert!(transfers.snapshot().is_empty());
    }

    #[test]
    fn a_guard_dropped_in_a_panic_still_leaves_the_registry() {
        let transfers = LiveTransfers::default();
        let clone = transfers.clone();
        let result = std::thread::spawn(move || {
            let _progress = clone.start(upload("/a.bin"));
            panic!("the transfer's task fails");
        })
        .join();
        assert!(result.is_err());
        assert!(transfers.snapshot().is_empty());
    }

    #[test]
    fn registries_are_separate() {
        let one = LiveTransfers::default();
        let other = LiveTransfers::default();
        let _progress = one.start(upload("/a.bin"));
        assert_eq!(one.snapshot().len(), 1);
        assert!(other.snapshot().is_empty());
    }

    /// Feeds `rate` bytes per second to `meter` in 10 ms writes for `secs`, from `from`; the
    /// time after the last write.
    fn feed(meter: &mut Meter, from: Instant, secs: u64, rate: u64) -> Instant {
        let mut now = from;
        for _ in 0..secs * 100 {
            now += Duration::from_millis(10);
            meter.add(rate / 100, now);
        }
        now
    }

    #[test]
    fn the_rate_is_that_of_the_last_seconds_not_the_average_since_the_start() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        let now = feed(&mut meter, start, 20, MB);
        let now = feed(&mut meter, now, 4, 5 * MB);
        let rate = meter.rate(now);
        // Since the start it would be 40 MB / 24 s = 1.7 MB/s.
        assert!(
            (4 * MB..=5 * MB).contains(&rate),
            "rate {rate} is not the recent 5 MB/s"
        );
        assert_eq!(meter.bytes, 40 * MB);
    }

    #[test]
    fn a_young_transfer_is_measured_since_its_start() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        let now = feed(&mut meter, start, 1, 2 * MB);
        assert_eq!(meter.rate(now), 2 * MB);
    }

    #[test]
    fn a_stalled_transfer_drops_to_zero_within_the_window() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        let now = feed(&mut meter, start, 5, MB);
        let halfway = meter.rate(now + RATE_WINDOW / 2);
        assert!(halfway > 0 && halfway < MB, "{halfway}");
        assert_eq!(meter.rate(now + RATE_WINDOW), 0);
        assert_eq!(meter.rate(now + Duration::from_secs(60)), 0);
    }

    #[test]
    fn many_small_writes_keep_few_samples() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        let mut now = start;
        for _ in 0..100_000 {
            now += Duration::from_micros(100);
            meter.add(1, now);
        }
        // Every other sample is at least SAMPLE_SPACING after the one before it.
        let most = (RATE_WINDOW.as_millis() / SAMPLE_SPACING.as_millis()) as usize * 2 + 4;
        assert!(meter.samples.len() <= most, "{}", meter.samples.len());
        let rate = meter.rate(now);
        assert!((9_900..=10_100).contains(&rate), "{rate}");
    }

    #[test]
    fn a_transfer_with_no_bytes_yet_has_no_rate() {
        let start = Instant::now();
        let mut meter = Meter::new(start);
        assert_eq!(meter.rate(start), 0);
        assert_eq!(meter.rate(start + Duration::from_secs(1)), 0);
    }
}
