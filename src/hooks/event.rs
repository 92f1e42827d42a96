//! The event a hook receives: built from an audit line, so a hook is told exactly what the
//! audit log records, and nothing the audit log does not.
//!
//! Only what happened becomes an event: successful uploads (committed), downloads (read to the
//! end), deletes (files and folders), renames and folder creations, and failed logins. Refused
//! and failed operations, listings and the rest are not. Each event gets a random id when it is
//! accepted; a redelivery carries the same id, so a receiver can drop duplicates.

use serde::{Deserialize, Serialize};

use crate::audit_log::AuditEvent;

/// What an event is about, as `on = [...]` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Upload,
    Download,
    Delete,
    Rename,
    Mkdir,
    LoginFailed,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Download => "download",
            EventKind::Delete => "delete",
            EventKind::Rename => "rename",
            EventKind::Mkdir => "mkdir",
            EventKind::LoginFailed => "login_failed",
        }
    }

    /// The kind of event an audit line stands for, if it is one.
    fn of(line: &AuditEvent) -> Option<EventKind> {
        match (line.event, line.op, line.result) {
            ("login", _, Some("failed")) => Some(EventKind::LoginFailed),
            ("operation", Some(op), Some("ok")) => match op {
                "upload" => Some(EventKind::Upload),
                "download" => Some(EventKind::Download),
                "remove" | "rmdir" => Some(EventKind::Delete),
                "rename" => Some(EventKind::Rename),
                "mkdir" => Some(EventKind::Mkdir),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The JSON a hook receives (a webhook's body, a command's stdin). Fields that do not apply are
/// left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEvent {
    /// Unique per event (32 hex digits); the same on every delivery of it.
    pub id: String,
    pub event: EventKind,
    /// When it happened: UTC, RFC 3339 with milliseconds (the audit line's time).
    pub time: String,
    /// The audit line's operation: upload, download, remove, rmdir, rename, mkdir; login for a
    /// failed login.
    pub op: String,
    /// The name given at login (for a failed login, the name tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The path in the user's view (their root is `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Rename: the new path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Upload: the Dropbox file id, revision and content hash of the stored file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropbox_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Login: the method tried (publickey, password, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The client's address and port.
    pub remote: String,
    /// The connection's number, as in the logs.
    pub conn: u64,
}

impl HookEvent {
    /// The event an audit line stands for, with a new id; None for lines that are no event.
    pub fn from_audit(line: &AuditEvent) -> Option<HookEvent> {
        let event = EventKind::of(line)?;
        Some(HookEvent {
            id: new_id(),
            event,
            time: line.time.clone(),
            op: line.op.unwrap_or(line.event).to_string(),
            user: line.user.clone(),
            path: line.path.clone(),
            target: line.target.clone(),
            bytes: line.bytes,
            dropbox_id: line.dropbox_id.clone(),
            rev: line.rev.clone(),
            content_hash: line.content_hash.clone(),
            method: line.method.map(str::to_string),
            remote: line.remote.clone(),
            conn: line.conn,
        })
    }
}

/// 128 random bits as hex: unique without coordination between restarts.
fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &'static str, op: Option<&'static str>, result: &'static str) -> AuditEvent {
        AuditEvent {
            time: "2026-12-07T12:00:00.000Z".into(),
            event,
            conn: 3,
            remote: "192.0.2.1:5000".into(),
            user: Some("alice".into()),
            op,
            path: Some("/in/a.csv".into()),
            result: Some(result),
            ..AuditEvent::default()
        }
    }

    #[test]
    fn only_what_happened_is_an_event() {
        let kind = |l: &AuditEvent| HookEvent::from_audit(l).map(|e| e.event);
        assert_eq!(
            kind(&line("operation", Some("upload"), "ok")),
            Some(EventKind::Upload)
        );
        assert_eq!(kind(&line("operation", Some("upload"), "failed")), None);
        assert_eq!(kind(&line("operation", Some("upload"), "denied")), None);
        assert_eq!(
            kind(&line("operation", Some("download"), "interrupted")),
            None
        );
        assert_eq!(
            kind(&line("operation", Some("rmdir"), "ok")),
            Some(EventKind::Delete)
        );
        assert_eq!(kind(&line("operation", Some("list"), "ok")), None);
        assert_eq!(
            kind(&line("login", None, "failed")),
            Some(EventKind::LoginFailed)
        );
        assert_eq!(kind(&line("login", None, "ok")), None);
        assert_eq!(kind(&line("connect", None, "ok")), None);
    }

    #[test]
    fn the_json_carries_the_audit_fields_and_a_fresh_id() {
        let mut upload = line("operation", Some("upload"), "ok");
        upload.bytes = Some(42);
        upload.rev = Some("015f".into());
        let first = HookEvent::from_audit(&upload).unwrap();
        let second = HookEvent::from_audit(&upload).unwrap();
        assert_ne!(first.id, second.id);
        assert_eq!(first.id.len(), 32);
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(json["event"], "upload");
        assert_eq!(json["user"], "alice");
        assert_eq!(json["path"], "/in/a.csv");
        assert_eq!(json["bytes"], 42);
        assert_eq!(json["rev"], "015f");
        assert_eq!(json["remote"], "192.0.2.1:5000");
        assert!(json.get("target").is_none());
        let back: HookEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, first);
    }
}
