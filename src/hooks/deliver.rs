//! The delivery worker: one task per hook that takes its queue's first event, tries to deliver
//! it, and moves on only once it is delivered or too old.
//!
//! Strictly one event at a time, in the order accepted: that keeps events of one path in order
//! (an upload before the rename of the same file) without tracking paths, at the price that an
//! event the receiver keeps refusing holds the ones behind it until it is delivered or reaches
//! the hook's `max_age_secs`. Each try is bounded by the hook's timeout, so a hung receiver
//! costs one timeout per try. Failed tries are repeated after 1, 2, 4, ... seconds, at most
//! [`MAX_BACKOFF`] apart. An event older than its age limit is dropped with an ERROR line and
//! counted (`result="dropped"`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::command::CommandHook;
use super::event::HookEvent;
use super::queue::{unix_now, Head, Queue};
use super::webhook::Webhook;
use crate::log_safe::Untrusted;
use crate::metrics;

/// The longest wait between two tries of one event.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The wait after the queue itself failed (a disk error), before trying again.
const QUEUE_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// How a hook delivers.
pub enum Sender {
    Webhook(Webhook),
    Command(CommandHook),
}

impl Sender {
    pub async fn deliver(&self, event: &HookEvent) -> Result<(), String> {
        match self {
            Sender::Webhook(webhook) => webhook.deliver(event).await,
            Sender::Command(command) => command.deliver(event).await,
        }
    }
}

/// Delivers the queue of hook `hook` with `deliver`, forever.
pub async fn run<F, Fut>(hook: String, queue: Arc<Queue>, max_age: Duration, deliver: F)
where
    F: Fn(HookEvent) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut failures: u32 = 0;
    loop {
        let head = match queue.head() {
            Ok(Some(head)) => head,
            Ok(None) => {
                queue.pushed().await;
                continue;
            }
            Err(e) => {
                tracing::error!(hook, error = %e, "cannot read the hook queue");
                tokio::time::sleep(QUEUE_ERROR_PAUSE).await;
                continue;
            }
        };
        let record = match &head.record {
            Ok(record) => record,
            Err(why) => {
                tracing::error!(hook, error = %why, "skipping a damaged record of the hook queue");
                metrics::hook_delivery(&hook, "damaged");
                advance(&hook, &queue, &head).await;
                continue;
            }
        };
        let event = &record.event;
        let age = Duration::from_secs(unix_now().saturating_sub(record.accepted));
        if age > max_age {
            tracing::error!(
                hook,
                event_id = %event.id,
                event = event.event.name(),
                user = %Untrusted(event.user.as_deref().unwrap_or("")),
                conn = event.conn,
                path = %Untrusted(event.path.as_deref().unwrap_or("")),
                age_secs = age.as_secs(),
                tries = failures,
                "dropping an event that could not be delivered within max_age_secs"
            );
            metrics::hook_delivery(&hook, "dropped");
            advance(&hook, &queue, &head).await;
            failures = 0;
            continue;
        }
        match deliver(event.clone()).await {
            Ok(()) => {
                tracing::info!(
                    hook,
                    event_id = %event.id,
                    event = event.event.name(),
                    path = %Untrusted(event.path.as_deref().unwrap_or("")),
                    tries = failures + 1,
                    "hook delivered"
                );
                metrics::hook_delivery(&hook, "ok");
                advance(&hook, &queue, &head).await;
                failures = 0;
            }
            Err(why) => {
                failures += 1;
                let wait =
                    backoff(failures).min(max_age.saturating_sub(age) + Duration::from_secs(1));
                tracing::warn!(
                    hook,
                    event_id = %event.id,
                    event = event.event.name(),
                    user = %Untrusted(event.user.as_deref().unwrap_or("")),
                    conn = event.conn,
                    path = %Untrusted(event.path.as_deref().unwrap_or("")),
                    tries = failures,
                    error = %why,
                    retry_in_secs = wait.as_secs_f32(),
                    "hook delivery failed; will try again"
                );
                metrics::hook_delivery(&hook, "failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// 1, 2, 4, ... seconds after the first, second, third failure, up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// Marks the head done; if that fails the event will be delivered again (at least once).
async fn advance(hook: &str, queue: &Queue, head: &Head) {
    if let Err(e) = queue.advance(head) {
        tracing::error!(hook, error = %e, "cannot record a delivery in the hook queue; it will be sent again");
        tokio::time::sleep(QUEUE_ERROR_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::event::EventKind;
    use std::sync::Mutex;

    fn event(path: &str) -> HookEvent {
        HookEvent {
            id: format!("id{path}"),
            event: EventKind::Upload,
            time: String::new(),
            op: "upload".into(),
            user: None,
            path: Some(path.into()),
            target: None,
            bytes: None,
            dropbox_id: None,
            rev: None,
            content_hash: None,
            method: None,
            remote: String::new(),
            conn: 0,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_failure_is_retried_and_the_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), "h").unwrap());
        queue.push(&event("/a")).unwrap();
        queue.push(&event("/b")).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tries = seen.clone();
        let worker = tokio::spawn(run(
            "h".into(),
            queue.clone(),
            Duration::from_secs(60),
            move |e| {
                let tries = tries.clone();
                async move {
                    let mut tries = tries.lock().unwrap();
                    tries.push(e.id.clone());
                    // The first try of the first event fails.
                    if tries.len() == 1 {
                        Err("no".to_string())
                    } else {
                        Ok(())
                    }
                }
            },
        ));
        for _ in 0..300 {
            if queue.pending() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.abort();
        assert_eq!(*seen.lock().unwrap(), ["id/a", "id/a", "id/b"]);
    }

    #[tokio::test]
    async fn an_event_past_its_age_limit_is_dropped_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(Queue::open(dir.path(), "h").unwrap());
        queue.push(&event("/never")).unwrap();
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let sink = delivered.clone();
        let worker = tokio::spawn(run(
            "age-limit-test".into(),
            queue.clone(),
            Duration::from_secs(1),
            move |e| {
                let sink = sink.clone();
                async move {
                    if e.path.as_deref() == Some("/never") {
                        return Err("refused".to_string());
                    }
                    sink.lock().unwrap().push(e.id);
                    Ok(())
                }
            },
        ));
        // Pushed while the first one is still being tried (it is dropped 2 to 3 s after it was
        // accepted): the second waits behind it, young enough to be delivered.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        queue.push(&event("/later")).unwrap();
        for _ in 0..300 {
            if queue.pending() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.abort();
        assert_eq!(queue.pending(), 0, "the old event was never dropped");
        assert_eq!(*delivered.lock().unwrap(), ["id/later"]);
        let metrics = metrics::render();
        for (result, count) in [("dropped", 1), ("ok", 1)] {
            let line = format!(
                "dropgate_hook_deliveries_total{{hook=\"age-limit-test\",result=\"{result}\"}} {count}"
            );
            assert!(metrics.contains(&line), "no {line} in\n{metrics}");
        }
    }
}
