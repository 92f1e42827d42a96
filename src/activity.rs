//! What is happening on one gateway now, for the admin page: the connections that are open,
//! the transfers in progress, the latest audit events, and when each user last logged in.
//!
//! It is an [`AuditListener`]: the audit stream already says when a connection opens
//! (`connect`), logs in (`login`) and closes (`disconnect`), and how each operation ended, so
//! the page shows exactly what the audit log records and nothing is reported twice from the
//! SSH layer. Transfers in progress are not audit lines (those come when a transfer ends); they
//! come from the gateway's [`LiveTransfers`], which the audit wrapper keeps.
//!
//! Everything it holds is bounded. The ring of recent events holds the last N lines. The
//! connection map gains an entry only on a `connect` that was not refused and loses it on that
//! connection's `disconnect`; the SSH layer writes that line however the connection ends (its
//! guard writes it on drop) and before the connection gives up its place in
//! `limits.max_connections`, so the map never holds more than that many. If a disconnect were
//! ever lost, a map at that size still takes a new connection by forgetting the oldest entry
//! (logged at WARN), so a lost line costs one wrong row for a while, never growing memory. The
//! last logins are kept only for successful logins, so only configured users' names are kept
//! (not every name a client tries).
//!
//! Times are [`SystemTime`]s read from the audit lines' own `time` (RFC 3339), so the page and
//! the audit log agree to the millisecond; a line whose time does not parse (never written by
//! dropgate) counts as now.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::audit_log::{AuditEvent, AuditListener};
use crate::transfers::{LiveTransfer, LiveTransfers};

/// One gateway's activity, kept up to date from its audit stream.
pub struct Activity {
    transfers: LiveTransfers,
    bounds: ActivityBounds,
    state: Mutex<Seen>,
}

/// How much an [`Activity`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityBounds {
    /// Audit events kept for [`ActivitySnapshot::recent`] (`[admin] recent_events`).
    pub recent_events: usize,
    /// The gateway's cap on open connections (`limits.max_connections`).
    pub connections: usize,
}

/// An open SSH connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConnection {
    /// The audit log's `conn`.
    pub conn: u64,
    /// The client's address and port.
    pub remote: String,
    /// Set once it has logged in.
    pub user: Option<String>,
    /// The client's SSH version line (`SSH-2.0-...`), known from its login.
    pub client_version: Option<String>,
    /// When it connected.
    pub since: SystemTime,
}

/// A user's most recent successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastLogin {
    pub time: SystemTime,
    /// The client's address and port.
    pub remote: String,
    /// publickey, certificate or password.
    pub method: &'static str,
}

/// What the activity page shows, taken at one moment.
#[derive(Debug, Clone)]
pub struct ActivitySnapshot {
    /// Oldest first.
    pub connections: Vec<LiveConnection>,
    /// Oldest first.
    pub transfers: Vec<LiveTransfer>,
    /// Newest first.
    pub recent: Vec<AuditEvent>,
}

#[derive(Default)]
struct Seen {
    /// By `conn`, which grows with each connection: iteration is oldest first.
    connections: BTreeMap<u64, LiveConnection>,
    last_logins: HashMap<String, LastLogin>,
    /// Oldest first.
    recent: VecDeque<AuditEvent>,
}

impl Activity {
    /// An activity that reads its transfers from `transfers` (the gateway's audit log's).
    pub fn new(transfers: LiveTransfers, bounds: ActivityBounds) -> Activity {
        Activity {
            transfers,
            bounds,
            state: Mutex::default(),
        }
    }

    pub fn snapshot(&self) -> ActivitySnapshot {
        let (connections, recent) = {
            let seen = self.seen();
            let connections = seen.connections.values().cloned().collect();
            let recent = seen.recent.iter().rev().cloned().collect();
            (connections, recent)
        };
        ActivitySnapshot {
            connections,
            transfers: self.transfers.snapshot(),
            recent,
        }
    }

    /// Each user's last successful login since the gateway started, by user name.
    pub fn last_logins(&self) -> HashMap<String, LastLogin> {
        self.seen().last_logins.clone()
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AuditListener for Activity {
    fn audited(&self, event: &AuditEvent) {
        let mut seen = self.seen();
        seen.remember(event, self.bounds.recent_events);
        match event.event {
            "connect" if event.result != Some("refused") => {
                seen.connected(event, self.bounds.connections)
            }
            "login" if event.result == Some("ok") => seen.logged_in(event),
            "disconnect" => {
                seen.connections.remove(&event.conn);
            }
            _ => {}
        }
    }
}

impl Seen {
    fn remember(&mut self, event: &AuditEvent, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.recent.len() >= capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(event.clone());
    }

    fn connected(&mut self, event: &AuditEvent, capacity: usize) {
        while self.connections.len() >= capacity.max(1) {
            let Some((lost, _)) = self.connections.pop_first() else {
                break;
            };
            tracing::warn!(
                conn = lost,
                "the activity page forgets a connection whose disconnect was never recorded"
            );
        }
        let connection = LiveConnection {
            conn: event.conn,
            remote: event.remote.clone(),
            user: None,
            client_version: None,
            since: time_of(event),
        };
        self.connections.insert(event.conn, connection);
    }

    fn logged_in(&mut self, event: &AuditEvent) {
        let Some(user) = &event.user else { return };
        if let Some(connection) = self.connections.get_mut(&event.conn) {
            connection.user = Some(user.clone());
            connection.client_version = event.client_version.clone();
        }
        let login = LastLogin {
            time: time_of(event),
            remote: event.remote.clone(),
            method: event.method.unwrap_or("unknown"),
        };
        self.last_logins.insert(user.clone(), login);
    }
}

/// The line's own time.
fn time_of(event: &AuditEvent) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(&event.time)
        .map(SystemTime::from)
        .unwrap_or_else(|_| SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfers::{Direction, TransferStart};
    use std::sync::Arc;
    use std::time::Duration;

    fn activity(recent_events: usize, connections: usize) -> Arc<Activity> {
        Arc::new(Activity::new(
            LiveTransfers::default(),
            ActivityBounds {
                recent_events,
                connections,
            },
        ))
    }

    fn line(event: &'static str, conn: u64, result: &'static str) -> AuditEvent {
        AuditEvent {
            time: "2026-03-01T10:00:00.250Z".into(),
            event,
            conn,
            remote: format!("192.0.2.{conn}:5000"),
            result: Some(result),
            ..AuditEvent::default()
        }
    }

    fn login(conn: u64, user: &str, result: &'static str) -> AuditEvent {
        AuditEvent {
            user: Some(user.into()),
            method: Some("publickey"),
            client_version: Some("SSH-2.0-OpenSSH_9.2p1".into()),
            ..line("login", conn, result)
        }
    }

    fn conns(activity: &Activity) -> Vec<u64> {
        activity
            .snapshot()
            .connections
            .iter()
            .map(|c| c.conn)
            .collect()
    }

    #[test]
    fn the_ring_keeps_the_last_events_newest_first() {
        let activity = activity(3, 10);
        for conn in 1..=5 {
            activity.audited(&line("connect", conn, "ok"));
        }
        let recent: Vec<u64> = activity.snapshot().recent.iter().map(|e| e.conn).collect();
        assert_eq!(recent, [5, 4, 3]);
    }

    #[test]
    fn a_ring_of_none_keeps_none() {
        let activity = activity(0, 10);
        activity.audited(&line("connect", 1, "ok"));
        assert!(activity.snapshot().recent.is_empty());
        assert_eq!(conns(&activity), [1]);
    }

    #[test]
    fn a_connection_is_listed_from_connect_to_disconnect_with_its_login() {
        let activity = activity(100, 10);
        activity.audited(&line("connect", 1, "ok"));
        activity.audited(&line("connect", 2, "refused"));
        let seen = activity.snapshot().connections;
        assert_eq!(seen.len(), 1, "a refused connection is not open: {seen:?}");
        assert_eq!(seen[0].user, None);
        assert_eq!(seen[0].remote, "192.0.2.1:5000");
        let expected = SystemTime::UNIX_EPOCH + Duration::from_millis(1_772_359_200_250);
        assert_eq!(seen[0].since, expected, "the time is the line's own");

        activity.audited(&login(1, "mallory", "failed"));
        assert_eq!(activity.snapshot().connections[0].user, None);
        assert!(
            activity.last_logins().is_empty(),
            "a failed name is not kept"
        );
        activity.audited(&login(1, "alice", "ok"));
        let seen = activity.snapshot().connections;
        assert_eq!(seen[0].user.as_deref(), Some("alice"));
        assert_eq!(
            seen[0].client_version.as_deref(),
            Some("SSH-2.0-OpenSSH_9.2p1")
        );

        activity.audited(&line("operation", 1, "ok"));
        assert_eq!(conns(&activity), [1]);
        activity.audited(&line("disconnect", 1, "ok"));
        assert!(conns(&activity).is_empty());
        let recent: Vec<&str> = activity.snapshot().recent.iter().map(|e| e.event).collect();
        assert_eq!(
            recent,
            [
                "disconnect",
                "operation",
                "login",
                "login",
                "connect",
                "connect"
            ]
        );
    }

    #[test]
    fn the_last_login_of_each_user_is_kept_after_they_leave() {
        let activity = activity(100, 10);
        activity.audited(&line("connect", 1, "ok"));
        activity.audited(&login(1, "alice", "ok"));
        activity.audited(&line("disconnect", 1, "ok"));
        activity.audited(&line("connect", 2, "ok"));
        let mut again = login(2, "alice", "ok");
        again.method = Some("password");
        again.time = "2026-03-01T11:00:00Z".into();
        activity.audited(&again);
        activity.audited(&line("connect", 3, "ok"));
        activity.audited(&login(3, "bob", "ok"));

        let logins = activity.last_logins();
        assert_eq!(logins.len(), 2);
        let alice = &logins["alice"];
        assert_eq!(alice.method, "password");
        assert_eq!(alice.remote, "192.0.2.2:5000");
        assert_eq!(
            alice.time,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_362_800)
        );
        assert_eq!(logins["bob"].method, "publickey");
    }

    #[test]
    fn lost_disconnects_cannot_grow_the_map_past_the_connection_cap() {
        let activity = activity(100, 3);
        for conn in 1..=10 {
            activity.audited(&line("connect", conn, "ok"));
        }
        assert_eq!(conns(&activity), [8, 9, 10], "the oldest are forgotten");
        activity.audited(&line("disconnect", 9, "ok"));
        activity.audited(&line("disconnect", 42, "ok"));
        assert_eq!(conns(&activity), [8, 10]);
    }

    #[test]
    fn a_login_without_a_connect_changes_no_connection() {
        let activity = activity(100, 10);
        activity.audited(&login(7, "alice", "ok"));
        assert!(conns(&activity).is_empty());
        assert!(activity.last_logins().contains_key("alice"));
    }

    #[test]
    fn the_snapshot_holds_the_transfers_in_progress() {
        let transfers = LiveTransfers::default();
        let activity = Activity::new(
            transfers.clone(),
            ActivityBounds {
                recent_events: 10,
                connections: 10,
            },
        );
        let progress = transfers.start(TransferStart {
            conn: 1,
            user: "alice".into(),
            remote: "192.0.2.1:5000".into(),
            path: "/a.bin".into(),
            dropbox_path: None,
            direction: Direction::Upload,
            size: None,
        });
        progress.add_bytes(5);
        let seen = activity.snapshot().transfers;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].bytes, 5);
        drop(progress);
        assert!(activity.snapshot().transfers.is_empty());
    }
}
