//! Command hooks: a program run once per event, the event JSON on its stdin and its fields in
//! `DROPGATE_*` environment variables (for a shell script that needs no JSON parser).
//!
//! The program gets a clean environment (`PATH` and the `DROPGATE_*` variables only): the
//! gateway's own environment may hold credentials that a hook has no business seeing. It runs
//! for at most the hook's timeout and is killed after it. Exit 0 is delivered; anything else
//! (or a timeout) is a failure that is retried like a webhook's. The exit status and the first
//! lines of its stderr go to the log, so an operator sees why.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::event::HookEvent;
use crate::log_safe::Untrusted;

/// Lines of a failing command's stderr shown in the log.
const STDERR_LINES: usize = 5;

pub struct CommandHook {
    pub hook: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl CommandHook {
    /// Runs the program for `event`; Ok when it exits 0 within the timeout.
    pub async fn deliver(&self, event: &HookEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .envs(variables(event))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let run = async move {
            // A program that does not read its stdin closes the pipe: not a failure by itself.
            let _ = stdin.write_all(&body).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(self.timeout, run).await {
            Ok(output) => output.map_err(|e| format!("cannot wait for the command: {e}"))?,
            // Dropping the future dropped the child, which kill_on_drop kills.
            Err(_) => return Err(format!("killed after {} s", self.timeout.as_secs())),
        };
        let stderr = first_lines(&output.stderr);
        if output.status.success() {
            if !stderr.is_empty() {
                tracing::info!(hook = %self.hook, stderr = %Untrusted(&stderr), "command hook wrote to stderr");
            }
            return Ok(());
        }
        Err(format!("{}; stderr: {}", output.status, Untrusted(&stderr)))
    }
}

/// The event's fields as environment variables; those that do not apply are not set.
fn variables(event: &HookEvent) -> Vec<(&'static str, String)> {
    let optional = [
        ("DROPGATE_USER", event.user.clone()),
        ("DROPGATE_PATH", event.path.clone()),
        ("DROPGATE_TARGET", event.target.clone()),
        ("DROPGATE_BYTES", event.bytes.map(|b| b.to_string())),
        ("DROPGATE_DROPBOX_ID", event.dropbox_id.clone()),
        ("DROPGATE_REV", event.rev.clone()),
        ("DROPGATE_CONTENT_HASH", event.content_hash.clone()),
        ("DROPGATE_METHOD", event.method.clone()),
    ];
    let mut variables = vec![
        ("DROPGATE_EVENT", event.event.name().to_string()),
        ("DROPGATE_EVENT_ID", event.id.clone()),
        ("DROPGATE_OP", event.op.clone()),
        ("DROPGATE_TIME", event.time.clone()),
        ("DROPGATE_REMOTE", event.remote.clone()),
    ];
    variables.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?))),
    );
    variables
}

/// The first [`STDERR_LINES`] lines, joined with " | ".
fn first_lines(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .take(STDERR_LINES)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::event::EventKind;
    use std::os::unix::fs::PermissionsExt;

    fn event() -> HookEvent {
        HookEvent {
            id: "abc".into(),
            event: EventKind::Upload,
            time: "t".into(),
            op: "upload".into(),
            user: Some("alice".into()),
            path: Some("/in/a b.csv".into()),
            target: None,
            bytes: Some(7),
            dropbox_id: None,
            rev: None,
            content_hash: None,
            method: None,
            remote: "127.0.0.1:1".into(),
            conn: 1,
        }
    }

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn hook(program: PathBuf, timeout: Duration) -> CommandHook {
        CommandHook {
            hook: "t".into(),
            program,
            args: vec!["arg1".into()],
            timeout,
        }
    }

    #[tokio::test]
    async fn the_command_gets_the_json_the_variables_and_its_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let program = script(
            dir.path(),
            &format!(
                "cat > {0}.json; echo \"$1|$DROPGATE_EVENT|$DROPGATE_USER|$DROPGATE_PATH|$DROPGATE_BYTES|${{HOME:-nohome}}\" > {0}.env",
                out.display()
            ),
        );
        hook(program, Duration::from_secs(10))
            .deliver(&event())
            .await
            .unwrap();
        let json: HookEvent =
            serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
        assert_eq!(json, event());
        let env = std::fs::read_to_string(dir.path().join("out.env")).unwrap();
        assert_eq!(env.trim(), "arg1|upload|alice|/in/a b.csv|7|nohome");
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_status_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "echo first >&2; echo second >&2; exit 3");
        let error = hook(program, Duration::from_secs(10))
            .deliver(&event())
            .await
            .unwrap_err();
        assert!(error.contains("exit status: 3"), "{error}");
        assert!(error.contains("first | second"), "{error}");
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let program = script(
            dir.path(),
            &format!("echo $$ > {}; exec sleep 60", pid_file.display()),
        );
        let started = std::time::Instant::now();
        let error = hook(program, Duration::from_secs(1))
            .deliver(&event())
            .await
            .unwrap_err();
        assert!(error.contains("killed after 1 s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // Killed and reaped by tokio: the process is gone shortly after.
        let mut gone = false;
        for _ in 0..50 {
            if !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(gone, "the command still runs");
    }
}
