//! Process-wide counters for operators, rendered in the Prometheus text format.
//!
//! Plain atomics and small label maps, no metrics crate: the set is small and fixed, and the
//! text format is a few lines to write. Counting happens where things end (a connection is
//! admitted, a login decided, an operation finished, a Dropbox call answered), so a counter
//! never moves twice for one event. The counters are global because the Dropbox client and the
//! SSH layer must not know about each other; one process serves one gateway. This module
//! depends on no other part of dropgate: everything reports to it, it asks nobody. [`server`] is the
//! optional HTTP listener that serves them (`/metrics`) and a health check (`/healthz`).

pub mod server;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the upload commit latency histogram's buckets: from a small
/// single upload to a large session finish.
const COMMIT_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static CONNECTIONS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_REFUSED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
static BYTES_UPLOADED: AtomicU64 = AtomicU64::new(0);
static BYTES_DOWNLOADED: AtomicU64 = AtomicU64::new(0);
static LOGINS: Labelled = Labelled::new();
static OPERATIONS: Labelled = Labelled::new();
static DROPBOX_REQUESTS: Labelled = Labelled::new();
static DROPBOX_RETRIES: AtomicU64 = AtomicU64::new(0);
static COMMIT_LATENCY: Histogram = Histogram::new();
/// Hook deliveries by (hook, result); hook names come from the config, so the map stays small.
static HOOK_DELIVERIES: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());
/// Per hook: undelivered events, and when the oldest of them was accepted (Unix seconds).
static HOOK_QUEUES: Mutex<BTreeMap<String, (u64, Option<u64>)>> = Mutex::new(BTreeMap::new());

/// A Dropbox request is about to be sent again after a failure.
pub fn dropbox_retry() {
    DROPBOX_RETRIES.fetch_add(1, Ordering::Relaxed);
}

/// Dropbox requests sent again so far, by any client of this process.
pub fn dropbox_retries() -> u64 {
    DROPBOX_RETRIES.load(Ordering::Relaxed)
}

/// A TCP connection was admitted (it holds a place until [`connection_closed`]).
pub fn connection_accepted() {
    CONNECTIONS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
    CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
}

pub fn connection_closed() {
    CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
}

/// A connection closed before SSH: a ban, a cap, an untrusted proxy, a bad PROXY header.
pub fn connection_refused() {
    CONNECTIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// `method`: publickey, password or certificate; `result`: ok or failed.
pub fn login(method: &'static str, result: &'static str) {
    LOGINS.add((method, result.to_string()));
}

/// A finished file operation (upload, download, list, ...) and its result (ok, denied, failed).
pub fn operation(op: &'static str, result: &'static str) {
    OPERATIONS.add((op, result.to_string()));
}

/// Bytes received from clients (written to uploads).
pub fn bytes_uploaded(count: u64) {
    BYTES_UPLOADED.fetch_add(count, Ordering::Relaxed);
}

/// Bytes sent to clients (read from downloads).
pub fn bytes_downloaded(count: u64) {
    BYTES_DOWNLOADED.fetch_add(count, Ordering::Relaxed);
}

/// One HTTP exchange with Dropbox: its route and status code, or `"error"` when no answer came.
pub fn dropbox_request(route: &'static str, status: Option<u16>) {
    let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    DROPBOX_REQUESTS.add((route, status));
}

/// How long an upload's commit took (CLOSE until Dropbox has the file), successful or not.
pub fn upload_commit(took: Duration) {
    COMMIT_LATENCY.observe(took);
}

/// A hook delivery ended: ok, failed (to be tried again), dropped (too old), damaged (an
/// unreadable queue record) or lost (the queue could not be written).
pub fn hook_delivery(hook: &str, result: &'static str) {
    let mut counts = HOOK_DELIVERIES.lock().unwrap_or_else(|e| e.into_inner());
    *counts.entry((hook.to_string(), result)).or_insert(0) += 1;
}

/// A hook's queue now: its length and when its oldest undelivered event was accepted.
pub fn hook_queue(hook: &str, length: u64, oldest_accepted: Option<u64>) {
    let mut queues = HOOK_QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    queues.insert(hook.to_string(), (length, oldest_accepted));
}

/// Every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let mut out = String::new();
    let accepted = CONNECTIONS_ACCEPTED.load(Ordering::Relaxed);
    let refused = CONNECTIONS_REFUSED.load(Ordering::Relaxed);
    header(
        &mut out,
        "dropgate_connections_total",
        "counter",
        "TCP connections, by whether they were admitted.",
    );
    let _ = writeln!(
        out,
        "dropgate_connections_total{{result=\"accepted\"}} {accepted}"
    );
    let _ = writeln!(
        out,
        "dropgate_connections_total{{result=\"refused\"}} {refused}"
    );
    gauge(
        &mut out,
        "dropgate_connections_open",
        "Connections open now.",
        CONNECTIONS_OPEN.load(Ordering::Relaxed),
    );
    LOGINS.render(
        &mut out,
        "dropgate_logins_total",
        "Login attempts, by method and result.",
        ["method", "result"],
    );
    OPERATIONS.render(
        &mut out,
        "dropgate_operations_total",
        "File operations, by kind and result.",
        ["op", "result"],
    );
    counter(
        &mut out,
        "dropgate_uploaded_bytes_total",
        "Bytes received from SFTP clients.",
        BYTES_UPLOADED.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "dropgate_downloaded_bytes_total",
        "Bytes sent to SFTP clients.",
        BYTES_DOWNLOADED.load(Ordering::Relaxed),
    );
    DROPBOX_REQUESTS.render(
        &mut out,
        "dropgate_dropbox_requests_total",
        "HTTP requests to Dropbox, by route and status (\"error\": no answer).",
        ["route", "status"],
    );
    counter(
        &mut out,
        "dropgate_dropbox_retries_total",
        "Dropbox requests sent again after a failure.",
        DROPBOX_RETRIES.load(Ordering::Relaxed),
    );
    COMMIT_LATENCY.render(
        &mut out,
        "dropgate_upload_commit_seconds",
        "Time from CLOSE until Dropbox holds the file.",
    );
    render_hooks(&mut out);
    out
}

fn render_hooks(out: &mut String) {
    header(
        out,
        "dropgate_hook_deliveries_total",
        "counter",
        "Hook delivery attempts and outcomes, by hook and result.",
    );
    let counts = HOOK_DELIVERIES.lock().unwrap_or_else(|e| e.into_inner());
    for ((hook, result), value) in counts.iter() {
        let _ = writeln!(
            out,
            "dropgate_hook_deliveries_total{{hook=\"{}\",result=\"{result}\"}} {value}",
            escape(hook)
        );
    }
    drop(counts);
    let queues = HOOK_QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    header(
        out,
        "dropgate_hook_queue_length",
        "gauge",
        "Events accepted and not yet delivered, by hook.",
    );
    for (hook, (length, _)) in queues.iter() {
        let _ = writeln!(
            out,
            "dropgate_hook_queue_length{{hook=\"{}\"}} {length}",
            escape(hook)
        );
    }
    header(
        out,
        "dropgate_hook_oldest_undelivered_seconds",
        "gauge",
        "Age of the oldest undelivered event, by hook (0 when none waits).",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (hook, (_, oldest)) in queues.iter() {
        let age = oldest.map_or(0, |accepted| now.saturating_sub(accepted));
        let _ = writeln!(
            out,
            "dropgate_hook_oldest_undelivered_seconds{{hook=\"{}\"}} {age}",
            escape(hook)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter with two labels. The first label's values are fixed names from the code; the
/// second is a result or a status code, so the map stays small.
struct Labelled {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Labelled {
    const fn new() -> Self {
        Labelled {
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, key: (&'static str, String)) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_insert(0) += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: [&str; 2]) {
        header(out, name, "counter", help);
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for ((first, second), value) in counts.iter() {
            let _ = writeln!(
                out,
                "{name}{{{}=\"{}\",{}=\"{}\"}} {value}",
                labels[0],
                escape(first),
                labels[1],
                escape(second)
            );
        }
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A histogram with fixed buckets ([`COMMIT_BUCKETS`]); the sum is kept in microseconds.
struct Histogram {
    buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        Histogram {
            buckets: [ZERO; COMMIT_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        // Buckets are stored non-cumulative; rendering adds them up.
        if let Some(index) = COMMIT_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `prefix` (name and labels).
    fn sample(text: &str, prefix: &str) -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn counters_and_histogram_render_in_the_text_format() {
        let before = render();
        let key = "dropgate_operations_total{op=\"mkdir\",result=\"ok\"}";
        operation("mkdir", "ok");
        upload_commit(Duration::from_millis(300));
        let after = render();
        assert_eq!(sample(&after, key), sample(&before, key) + 1);
        let count = "dropgate_upload_commit_seconds_count";
        assert_eq!(sample(&after, count), sample(&before, count) + 1);
        let half = "dropgate_upload_commit_seconds_bucket{le=\"0.5\"}";
        assert!(sample(&after, half) > sample(&before, half));
        assert!(after.contains("# TYPE dropgate_upload_commit_seconds histogram"));
        assert!(after.contains("dropgate_upload_commit_seconds_bucket{le=\"+Inf\"}"));
    }

    #[test]
    fn hook_metrics_render_by_hook() {
        hook_delivery("metrics-test", "ok");
        hook_queue("metrics-test", 3, Some(1));
        let text = render();
        assert!(
            sample(
                &text,
                "dropgate_hook_deliveries_total{hook=\"metrics-test\",result=\"ok\"}"
            ) >= 1
        );
        assert_eq!(
            sample(&text, "dropgate_hook_queue_length{hook=\"metrics-test\"}"),
            3
        );
        assert!(
            sample(
                &text,
                "dropgate_hook_oldest_undelivered_seconds{hook=\"metrics-test\"}"
            ) > 1_000_000
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
