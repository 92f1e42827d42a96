//! The audit log: one JSON line per connection event (connect, login, disconnect) and per file
//! operation, for operators and their log shippers.
//!
//! It is separate from the human-readable log (tracing, on stderr): its lines have a fixed
//! shape that tools can parse, and it goes to its own file (or stderr) as configured. Lines are
//! written whole and flushed at once, so a crash loses at most the line being written. Nothing
//! secret goes in: no passwords, hashes or tokens, only names, paths and outcomes.
//!
//! Every line carries the process's `instance` id (random at each start, and logged then), so
//! lines from several gateways, or from one before and after a restart (whose `conn` numbers
//! start again at 1), never look alike. A file is reopened on SIGHUP: logrotate renames it and
//! the gateway then writes to a new file at the configured path.
//!
//! Listeners ([`AuditListener`]: the event hooks, the admin page's activity) are told every
//! line, whether or not a log is written. The log also carries its gateway's registry of
//! transfers in progress ([`LiveTransfers`]): whatever audits a transfer has the log at hand,
//! so that is where it registers the transfer while it runs.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use serde::Serialize;

use crate::transfers::LiveTransfers;

/// Where audit lines go; a disabled log drops them.
#[derive(Clone, Default)]
pub struct AuditLog {
    out: Option<Arc<Mutex<Output>>>,
    /// Told every line, written or not, in the order they were added.
    listeners: Vec<Arc<dyn AuditListener>>,
    transfers: LiveTransfers,
}

/// Something that acts on audit lines as they are recorded, before the operation they
/// describe is answered.
pub trait AuditListener: Send + Sync {
    fn audited(&self, event: &AuditEvent);
}

impl AuditLog {
    pub fn disabled() -> AuditLog {
        AuditLog::default()
    }

    /// `"stderr"`, or a file that lines are appended to (created with mode 0640).
    pub fn open(output: &str) -> anyhow::Result<AuditLog> {
        let out = if output == "stderr" {
            Output::Stderr
        } else {
            let path = PathBuf::from(output);
            let file = open_append(&path)?;
            Output::File { path, file }
        };
        Ok(AuditLog {
            out: Some(Arc::new(Mutex::new(out))),
            ..AuditLog::default()
        })
    }

    /// The same log, also telling `listener` every line (even when no log is written), after
    /// the listeners it already has.
    pub fn with_listener(mut self, listener: Arc<dyn AuditListener>) -> AuditLog {
        self.listeners.push(listener);
        self
    }

    /// The transfers in progress on this log's gateway.
    pub fn transfers(&self) -> &LiveTransfers {
        &self.transfers
    }

    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Opens the file at the configured path again (after logrotate renamed it); the file in
    /// use stays if that fails. Stderr needs nothing.
    pub fn reopen(&self) -> anyhow::Result<()> {
        let Some(out) = &self.out else { return Ok(()) };
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        if let Output::File { path, file } = &mut *out {
            *file = open_append(path)?;
            tracing::info!(path = %path.display(), "audit log reopened");
        }
        Ok(())
    }

    /// Writes one line. A failing audit log is reported in the normal log; it does not stop
    /// the file transfer it describes.
    pub fn record(&self, event: &AuditEvent) {
        for listener in &self.listeners {
            listener.audited(event);
        }
        let Some(out) = &self.out else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode an audit line");
                return;
            }
        };
        line.push(b'\n');
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }
}

/// Where the lines go.
enum Output {
    Stderr,
    /// The file at `path` when it was last opened.
    File {
        path: PathBuf,
        file: std::fs::File,
    },
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stderr => std::io::stderr().write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stderr => std::io::stderr().flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

/// This process's id on every line: 8 hex digits, random at each start.
pub fn instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| format!("{:08x}", rand::random::<u32>()))
}

fn open_append(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options
        .open(path)
        .with_context(|| format!("cannot open the audit log {}", path.display()))
}

/// One audit line. Fields that do not apply to an event are left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    /// The gateway process that wrote it (see [`instance`]).
    pub instance: &'static str,
    /// connect, login, operation, disconnect, or admin (an action on the admin page).
    pub event: &'static str,
    /// The connection's number, as in the human-readable log.
    pub conn: u64,
    /// The client's address and port.
    pub remote: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Login: publickey, certificate or password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Login by key or certificate: the key's SHA256 fingerprint, as `ssh-keygen -l` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Login: the client's SSH version line, as it sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Login: the negotiated key exchange, cipher, MAC (none with an AEAD cipher) and host
    /// key signature algorithms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key_alg: Option<String>,
    /// Operation: upload, download, list, mkdir, rmdir, remove, rename, setstat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Operation: `path` in Dropbox (the user's root, then the path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropbox_path: Option<String>,
    /// Rename: where it went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Rename: whether a file already at the target was replaced (and so is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
    /// Bytes moved (upload, download).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// ok, denied (permissions), failed, refused (connect: a limit or ban), or interrupted (a
    /// download whose client stopped before the end; `bytes` says how much it got).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    /// What went wrong, in the words the client was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A committed upload's Dropbox file id and revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropbox_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// A committed upload's Dropbox content hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// An admin action (event `admin`) on an account: its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One connection's audit context: every line it writes carries its number and address.
#[derive(Clone)]
pub struct AuditSession {
    pub log: AuditLog,
    pub conn: u64,
    pub remote: SocketAddr,
    pub user: Option<String>,
    /// The logged-in user's Dropbox folder ("" for the whole Dropbox), for `dropbox_path`.
    pub dropbox_root: Option<String>,
    /// How the connection's SSH session was set up, once its key exchange has been seen; its
    /// login lines carry it.
    pub negotiation: Arc<OnceLock<Negotiation>>,
}

/// A connection's client version and negotiated algorithms, for its login lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Negotiation {
    pub client_version: String,
    /// None when nothing could be agreed (the connection then ends before any login).
    pub kex: Option<String>,
    pub cipher: Option<String>,
    pub mac: Option<String>,
    pub host_key_alg: Option<String>,
}

impl AuditSession {
    /// A line of `event` with the connection's fields and the current time filled in.
    pub fn event(&self, event: &'static str) -> AuditEvent {
        let mut line = AuditEvent {
            time: now(),
            instance: instance(),
            event,
            conn: self.conn,
            remote: self.remote.to_string(),
            user: self.user.clone(),
            ..AuditEvent::default()
        };
        if event == "login" {
            if let Some(negotiation) = self.negotiation.get() {
                line.client_version = Some(negotiation.client_version.clone());
                line.kex = negotiation.kex.clone();
                line.cipher = negotiation.cipher.clone();
                line.mac = negotiation.mac.clone();
                line.host_key_alg = negotiation.host_key_alg.clone();
            }
        }
        line
    }

    pub fn record(&self, event: &AuditEvent) {
        self.log.record(event);
    }

    pub fn for_user(&self, user: &str) -> AuditSession {
        AuditSession {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    /// The same session, its operation lines carrying `dropbox_path` under `root`.
    pub fn in_dropbox_root(self, root: &str) -> AuditSession {
        AuditSession {
            dropbox_root: Some(root.to_string()),
            ..self
        }
    }

    /// Where `path` (a user's absolute path) is in Dropbox, if the root is known.
    pub fn dropbox_path(&self, path: &str) -> Option<String> {
        let root = self.dropbox_root.as_deref()?;
        Some(match path.trim_start_matches('/') {
            "" if root.is_empty() => "/".to_string(),
            "" => root.to_string(),
            rest => format!("{root}/{rest}"),
        })
    }
}

/// Now, as audit lines write it (UTC, RFC 3339 with milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connection `conn`'s session on `log`, not logged in yet.
    fn session_on(log: AuditLog, conn: u64) -> AuditSession {
        AuditSession {
            log,
            conn,
            remote: "192.0.2.1:5000".parse().unwrap(),
            user: None,
            dropbox_root: None,
            negotiation: Arc::default(),
        }
    }

    #[test]
    fn lines_are_json_with_only_the_fields_that_apply() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let session = session_on(AuditLog::open(file.to_str().unwrap()).unwrap(), 7);
        session.record(&session.event("connect"));
        let _ = session.negotiation.set(Negotiation {
            client_version: "SSH-2.0-test".into(),
            kex: Some("curve25519-sha256".into()),
            ..Negotiation::default()
        });
        let login = session.for_user("alice").event("login");
        assert_eq!(login.client_version.as_deref(), Some("SSH-2.0-test"));
        assert_eq!(login.kex.as_deref(), Some("curve25519-sha256"));
        let mut op = session.for_user("alice").event("operation");
        assert_eq!(op.kex, None, "only login lines carry the negotiation");
        op.op = Some("mkdir");
        op.path = Some("/x".into());
        op.result = Some("ok");
        session.record(&op);
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "connect");
        assert_eq!(lines[0]["conn"], 7);
        assert!(lines[0].get("user").is_none());
        assert_eq!(lines[1]["user"], "alice");
        assert_eq!(lines[1]["op"], "mkdir");
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[0]["instance"], instance());
        assert_eq!(lines[1]["instance"], instance());
    }

    /// Keeps the events it is told.
    #[derive(Default)]
    struct Told(Mutex<Vec<&'static str>>);

    impl AuditListener for Told {
        fn audited(&self, event: &AuditEvent) {
            self.0.lock().unwrap().push(event.event);
        }
    }

    #[test]
    fn every_listener_is_told_every_line_even_with_no_log_written() {
        let (first, second) = (Arc::new(Told::default()), Arc::new(Told::default()));
        let log = AuditLog::disabled()
            .with_listener(first.clone())
            .with_listener(second.clone());
        let session = session_on(log, 1);
        session.record(&session.event("connect"));
        session.record(&session.event("disconnect"));
        assert_eq!(*first.0.lock().unwrap(), ["connect", "disconnect"]);
        assert_eq!(*second.0.lock().unwrap(), ["connect", "disconnect"]);
    }

    #[test]
    fn clones_of_a_log_share_its_transfers_and_other_logs_do_not() {
        use crate::transfers::{Direction, TransferStart};
        let log = AuditLog::disabled();
        let other = AuditLog::disabled();
        let _running = log.clone().transfers().start(TransferStart {
            conn: 1,
            user: "alice".into(),
            remote: "192.0.2.1:5000".into(),
            path: "/a".into(),
            dropbox_path: None,
            direction: Direction::Upload,
            size: None,
        });
        assert_eq!(log.transfers().snapshot().len(), 1);
        assert!(other.transfers().snapshot().is_empty());
    }

    #[test]
    fn the_dropbox_path_is_the_root_then_the_path() {
        let session = AuditSession {
            log: AuditLog::disabled(),
            conn: 1,
            remote: "192.0.2.1:5000".parse().unwrap(),
            user: None,
            dropbox_root: None,
            negotiation: Arc::default(),
        };
        assert_eq!(session.dropbox_path("/a"), None);
        let jailed = session.clone().in_dropbox_root("/partners/alice");
        assert_eq!(jailed.dropbox_path("/a/b").unwrap(), "/partners/alice/a/b");
        assert_eq!(jailed.dropbox_path("/").unwrap(), "/partners/alice");
        let whole = session.in_dropbox_root("");
        assert_eq!(whole.dropbox_path("/a").unwrap(), "/a");
        assert_eq!(whole.dropbox_path("/").unwrap(), "/");
    }

    #[test]
    fn a_renamed_file_is_replaced_by_a_new_one_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let log = AuditLog::open(file.to_str().unwrap()).unwrap();
        let session = AuditSession {
            log: log.clone(),
            conn: 1,
            remote: "192.0.2.1:5000".parse().unwrap(),
            user: None,
            dropbox_root: None,
            negotiation: Arc::default(),
        };
        session.record(&session.event("connect"));
        let rotated = dir.path().join("audit.log.1");
        std::fs::rename(&file, &rotated).unwrap();
        log.reopen().unwrap();
        session.record(&session.event("disconnect"));
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&file).unwrap();
        assert!(
            old.contains("\"connect\"") && !old.contains("disconnect"),
            "{old}"
        );
        assert!(
            new.contains("\"disconnect\"") && !new.contains("\"connect\""),
            "{new}"
        );
    }
}
