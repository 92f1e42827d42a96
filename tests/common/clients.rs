//! The real clients the tests drive: OpenSSH `sftp`/`scp`/`ssh` with the bench's generated keys
//! and known_hosts, lftp and paramiko scripts (for what OpenSSH cannot express, and because
//! they show the server's messages), and `ssh-keygen`.
//!
//! A missing client fails the test with a message that says how to install it; it never skips.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{Bench, TestUser};

/// How long one client run may take.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(120);

impl Bench {
    /// The ssh options every OpenSSH client of the bench uses (key, known hosts, batch mode).
    pub fn ssh_args(&self, user: &TestUser) -> Vec<String> {
        vec![
            "-i".into(),
            user.key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// Runs `sftp -b BATCH` with `commands` as the batch; the working directory is the bench dir.
    pub async fn sftp(&self, user: &TestUser, commands: &str) -> Output {
        self.sftp_with(user, &[], commands).await
    }

    /// Like [`Bench::sftp`], with `extra` options before the destination.
    pub async fn sftp_with(&self, user: &TestUser, extra: &[String], commands: &str) -> Output {
        let batch = self.path("batch");
        std::fs::write(&batch, commands).unwrap();
        let mut args = self.ssh_args(user);
        args.extend(extra.iter().cloned());
        args.extend([
            "-P".into(),
            self.port().to_string(),
            "-b".into(),
            batch.display().to_string(),
            format!("{}@127.0.0.1", user.name),
        ]);
        self.run("sftp", &args).await
    }

    /// Like [`Bench::sftp`] but the batch must succeed; returns stdout.
    pub async fn sftp_ok(&self, user: &TestUser, commands: &str) -> String {
        let out = self.sftp(user, commands).await;
        assert!(
            out.status.success(),
            "sftp batch failed:\n{commands}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// An `sftp -b BATCH` command with `commands` as the batch and `extra_args` before the
    /// destination, not yet started: the working directory is the bench dir, stdin is null,
    /// output is piped, and it runs in a process group of its own (its pid is the group id), so
    /// that a test can kill sftp together with its ssh child.
    pub fn sftp_command(
        &self,
        user: &TestUser,
        commands: &str,
        extra_args: &[&str],
    ) -> tokio::process::Command {
        let batch = self.path(&format!("batch-{}", rand::random::<u32>()));
        std::fs::write(&batch, commands).unwrap();
        let mut command = tokio::process::Command::new("sftp");
        command
            .args(self.ssh_args(user))
            .args(["-P".to_string(), self.port().to_string()])
            .args(extra_args)
            .arg("-b")
            .arg(&batch)
            .arg(format!("{}@127.0.0.1", user.name))
            .current_dir(self.path(""))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command
    }

    /// Runs `scp` with `args` after the connection options (remote paths as `host:path`).
    pub async fn scp(&self, user: &TestUser, args: &[String]) -> Output {
        let mut all = self.ssh_args(user);
        all.extend(["-P".into(), self.port().to_string()]);
        all.extend(args.iter().cloned());
        self.run("scp", &all).await
    }

    /// `user@127.0.0.1:path` for scp.
    pub fn remote(&self, user: &TestUser, path: &str) -> String {
        format!("{}@127.0.0.1:{path}", user.name)
    }

    pub async fn ssh(&self, user: &TestUser, command: &str) -> Output {
        let mut args = self.ssh_args(user);
        args.extend([
            "-p".into(),
            self.port().to_string(),
            format!("{}@127.0.0.1", user.name),
            command.into(),
        ]);
        self.run("ssh", &args).await
    }

    async fn run(&self, program: &str, args: &[String]) -> Output {
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(self.path(""))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(300), child)
            .await
            .unwrap_or_else(|_| panic!("{program} did not finish within 300 s"))
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }
}

/// Runs lftp with `commands` after connecting as alice; lftp exits non-zero at the first
/// failed command (`cmd:fail-exit`). Its rc files are not read; HOME is the bench dir.
pub async fn lftp(bench: &Bench, commands: &str) -> Output {
    let available = std::process::Command::new("lftp")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        available.is_ok_and(|s| s.success()),
        "lftp is not installed: these tests need it (Debian: apt-get install lftp; .ci/run \
         installs it)"
    );
    let alice = bench.user("alice");
    // lftp runs `<connect-program> -l alice -p PORT 127.0.0.1 -s sftp` through a shell.
    let ssh_args = bench.ssh_args(&alice);
    for arg in &ssh_args {
        assert!(
            !arg.contains(['"', '\'', ' ', '\\']),
            "ssh option {arg:?} would need quoting inside lftp's connect-program"
        );
    }
    let script = format!(
        "set cmd:fail-exit yes\n\
         set net:max-retries 1\n\
         set net:timeout 30\n\
         set net:reconnect-interval-base 1\n\
         set sftp:connect-program \"ssh -a -x {}\"\n\
         open sftp://alice:@127.0.0.1:{}\n\
         {commands}",
        ssh_args.join(" "),
        bench.port()
    );
    let script_path = bench.path(&format!("lftp-{}.script", rand::random::<u32>()));
    std::fs::write(&script_path, script).unwrap();
    let mut command = tokio::process::Command::new("lftp");
    command
        .arg("--norc")
        .arg("-f")
        .arg(&script_path)
        .current_dir(bench.path(""))
        .env("HOME", bench.path(""));
    run_bounded(command, "lftp").await
}

/// Waits (within [`CLIENT_LIMIT`]) for a client started with piped output; its output.
pub async fn wait_for_client(child: tokio::process::Child, what: &str) -> Output {
    tokio::time::timeout(CLIENT_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_LIMIT:?}"))
        .unwrap()
}

/// Runs a client to completion within [`CLIENT_LIMIT`], capturing its output.
pub async fn run_bounded(mut command: tokio::process::Command, what: &str) -> Output {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(CLIENT_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Everything a client printed, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    )
}

/// Creates an ed25519 key pair with `ssh-keygen` at `path` and `path.pub`.
pub fn ssh_keygen(path: &Path) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen -f {}", path.display());
}

// ---- paramiko ----

/// The python3 that has paramiko: the first `python3` on PATH, else Debian's.
pub fn python_with_paramiko() -> String {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = std::process::Command::new(python)
            .args(["-c", "import paramiko"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.to_string();
        }
    }
    panic!(
        "paramiko is not installed for python3: these tests need it \
         (python3 -m pip install paramiko, or Debian's python3-paramiko; .ci/run installs it)"
    );
}

/// The Python every paramiko script starts with: `connect(...)` logs in checking the host key
/// against `known_hosts` (no agent, no other keys), with a key file or a password;
/// `attempt(action)` runs `action` and says "ok" or the exception it raised.
pub const PARAMIKO_PRELUDE: &str = r#"
import json, sys
import paramiko

def connect(host, port, user, known_hosts, key=None, password=None):
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host, port=int(port), username=user, key_filename=key, password=password,
                   look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=30,
                   auth_timeout=30)
    return client

def attempt(action):
    try:
        action()
        return "ok"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
"#;

/// A python3 command running [`PARAMIKO_PRELUDE`] then `body`, in the bench dir.
pub fn paramiko_script(bench: &Bench, body: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command
        .args(["-c", &[PARAMIKO_PRELUDE, body].concat()])
        .current_dir(bench.path(""));
    command
}

/// Runs a paramiko script and returns the one JSON line it prints.
pub async fn paramiko_json(command: tokio::process::Command) -> Value {
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(
        out.status.success(),
        "paramiko script failed:\n{}",
        output_text(&out)
    );
    serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("the script prints JSON ({e}):\n{}", output_text(&out)))
}

/// Runs a paramiko script connected as `user` with `password` (password login only: no keys,
/// no agent). The script's `result` dict is printed as JSON; a failed login sets
/// `result["login"]` to the exception's name.
pub async fn paramiko_with_password(
    bench: &Bench,
    user: &str,
    password: &str,
    script: &str,
) -> Value {
    let body = r#"
host, port, user, password, known_hosts, script = sys.argv[1:7]
result = {}
try:
    client = connect(host, port, user, known_hosts, password=password)
    result["login"] = "ok"
except Exception as e:
    result["login"] = type(e).__name__
if result["login"] == "ok":
    sftp = client.open_sftp()
    exec(script)
print(json.dumps(result))
"#;
    let mut command = paramiko_script(bench, body);
    command
        .arg("127.0.0.1")
        .arg(bench.port().to_string())
        .arg(user)
        .arg(password)
        .arg(bench.known_hosts())
        .arg(script);
    paramiko_json(command).await
}

/// Runs `script` (Python, with `sftp` connected as alice) and returns the JSON it prints.
/// `send(local, remote)` uploads without paramiko's pipelining, so a refused WRITE raises at
/// once with the server's message (paramiko's own `put` only reports a size mismatch).
pub async fn paramiko_as_alice(bench: &Bench, script: &str) -> Value {
    let alice = bench.user("alice");
    let body = format!(
        r#"
host, port, user, key, known_hosts = sys.argv[1:6]
client = connect(host, port, user, known_hosts, key=key)
sftp = client.open_sftp()
def send(local, remote):
    with open(local, "rb") as src, sftp.open(remote, "w") as dst:
        while True:
            block = src.read(32768)
            if not block:
                break
            dst.write(block)
result = {{}}
{script}
print(json.dumps(result))
"#
    );
    paramiko_json(paramiko_as(bench, &alice, &body)).await
}

/// A python3 command running [`PARAMIKO_PRELUDE`] then `body`, whose first five arguments
/// are `host, port, user, key, known_hosts` for `connect` as `user`; add more with `.arg`.
pub fn paramiko_as(bench: &Bench, user: &TestUser, body: &str) -> tokio::process::Command {
    let mut command = paramiko_script(bench, body);
    command
        .arg("127.0.0.1")
        .arg(bench.port().to_string())
        .arg(user.name)
        .arg(&user.key)
        .arg(bench.known_hosts());
    command
}
