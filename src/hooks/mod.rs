//! Event hooks: partners' automation told about what happened, after it happened, and told
//! even if the gateway crashes in between.
//!
//! Why here and how: the audit log already records every operation once, where it ends, with
//! its outcome ([`crate::vfs::audited`] for file operations, the SSH layer for logins). Hooks
//! listen to that one stream ([`crate::audit_log::AuditListener`]) instead of being called from
//! every operation, so a hook can never see something the audit log does not, or the reverse.
//! An audit line that is an event ([`event`]: a successful upload, download, delete, rename or
//! mkdir, or a failed login) and that a hook's [`filter`] wants is appended to that hook's
//! durable [`queue`] and fsynced before the line's operation is answered (the audit line is
//! recorded before the SFTP reply is sent). One worker task per hook ([`deliver`]) then sends
//! the queue in order, by [`webhook`] (a signed POST) or [`command`] (a program with the event
//! on stdin), retrying with backoff until it is delivered or older than the hook's age limit.
//!
//! What a hook costs an operation: the append and fsync of one small record, nothing else;
//! delivery never delays or fails it. If the record cannot be written (a full disk), the error
//! is logged at ERROR and counted (`result="lost"`), and the operation still succeeds: the file
//! is in Dropbox, and failing the client's request would not undo that.
//!
//! The settings are in [`settings`]; they are read at start (a SIGHUP reload does not change
//! hooks).

pub mod command;
pub mod deliver;
pub mod event;
pub mod filter;
pub mod queue;
pub mod settings;
pub mod webhook;

use std::sync::Arc;

use anyhow::Context;

use crate::audit_log::{AuditEvent, AuditListener};
use crate::log_safe::Untrusted;
use crate::metrics;
use command::CommandHook;
use deliver::Sender;
use event::HookEvent;
use filter::Filter;
use queue::Queue;
use settings::{Action, HookConfig, HookQueueConfig, ResolvedHook};
use webhook::Webhook;

use crate::tls_trust::Trust;

/// The configured hooks, accepting events into their queues.
pub struct Hooks {
    hooks: Vec<Hook>,
}

struct Hook {
    name: String,
    filter: Filter,
    queue: Arc<Queue>,
}

impl Hooks {
    /// Resolves the hooks, opens their queues and starts their delivery workers (on the current
    /// Tokio runtime); None when no hook is configured. Webhooks trust the CAs of `trust`.
    pub fn start(
        configs: &[HookConfig],
        state: &HookQueueConfig,
        trust: &Trust,
    ) -> anyhow::Result<Option<Arc<Hooks>>> {
        if configs.is_empty() {
            return Ok(None);
        }
        let mut hooks = Vec::new();
        for config in configs {
            let resolved = config.resolve()?;
            let queue = Arc::new(Queue::open(&state.dir, &resolved.name).with_context(|| {
                format!(
                    "hooks.{}: cannot open its queue in {}",
                    resolved.name,
                    state.dir.display()
                )
            })?);
            let pending = queue.pending();
            tracing::info!(hook = %resolved.name, pending, "hook ready");
            let name = resolved.name.clone();
            let filter = resolved.filter.clone();
            spawn_worker(resolved, queue.clone(), trust)?;
            hooks.push(Hook {
                name,
                filter,
                queue,
            });
        }
        warn_of_orphaned_queues(&state.dir, configs);
        Ok(Some(Arc::new(Hooks { hooks })))
    }

    /// Appends `event` to the queue of every hook that wants it.
    fn accept(&self, event: &HookEvent) {
        for hook in self.hooks.iter().filter(|h| h.filter.wants(event)) {
            if let Err(e) = blocking(|| hook.queue.push(event)) {
                tracing::error!(
                    hook = %hook.name,
                    event_id = %event.id,
                    event = event.event.name(),
                    path = %Untrusted(event.path.as_deref().unwrap_or("")),
                    error = %e,
                    "cannot write the hook queue: this event will not be delivered"
                );
                metrics::hook_delivery(&hook.name, "lost");
            }
        }
    }
}

impl AuditListener for Hooks {
    fn audited(&self, line: &AuditEvent) {
        if let Some(event) = HookEvent::from_audit(line) {
            self.accept(&event);
        }
    }
}

/// A queue left by a hook that is no longer configured (removed, renamed) holds events nobody
/// will deliver: say so at start rather than drop them silently.
fn warn_of_orphaned_queues(dir: &std::path::Path, configs: &[HookConfig]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".queue"))
        else {
            continue;
        };
        let bytes = entry.metadata().map_or(0, |m| m.len());
        if bytes > 0 && !configs.iter().any(|c| c.name == name) {
            tracing::warn!(
                queue = %path.display(),
                bytes,
                "a hook queue holds events of a hook that is no longer configured; they will not \
                 be delivered unless the hook is configured again"
            );
        }
    }
}

fn spawn_worker(hook: ResolvedHook, queue: Arc<Queue>, trust: &Trust) -> anyhow::Result<()> {
    let sender = Arc::new(match hook.action {
        Action::Webhook { url, secret } => Sender::Webhook(
            Webhook::new(url, secret, hook.timeout, trust)
                .with_context(|| format!("hooks.{}: cannot build its HTTP client", hook.name))?,
        ),
        Action::Command { program, args } => Sender::Command(CommandHook {
            hook: hook.name.clone(),
            program,
            args,
            timeout: hook.timeout,
        }),
    });
    tokio::spawn(deliver::run(hook.name, queue, hook.max_age, move |event| {
        let sender = sender.clone();
        async move { sender.deliver(&event).await }
    }));
    Ok(())
}

/// Runs a blocking write (an fsync) without stalling the other tasks of a multi-threaded
/// runtime's worker; elsewhere (a test's current-thread runtime, no runtime) just runs it.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `check-config`'s line per hook: what it does, or why it cannot run.
pub fn describe(config: &HookConfig) -> (String, Result<String, String>) {
    let events: Vec<&str> = config.on.iter().map(|e| e.name()).collect();
    let outcome = config
        .resolve()
        .map(|hook| {
            let target = match hook.action {
                Action::Webhook { url, .. } => format!("POST {url}"),
                Action::Command { program, .. } => format!("run {}", program.display()),
            };
            format!("ok: {target} on {}", events.join(", "))
        })
        .map_err(|e| format!("{e:#}"));
    (config.name.clone(), outcome)
}
