//! The clients partners run, driven as they are: Java JSch (Debian's `libjsch-java`) through
//! the small program `tests/clients/JschTransfer.java`, and PuTTY's `pscp` with a key that
//! `puttygen` converted.
//!
//! Each client verifies the gateway's host key (JSch against a known_hosts file, pscp against
//! the fingerprint an admin would publish), so a test that passes has also shown that the key
//! the gateway serves is one the client accepts. A missing client fails the test with what to
//! install (`.ci/run` installs them); it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::clients::run_bounded;
use super::config::GatewayConfig;
use super::{Bench, TestUser};

/// Debian's JSch jar (package `libjsch-java`).
pub const JSCH_JAR: &str = "/usr/share/java/jsch.jar";

/// The Java program, built into the test binary so that it is compiled from the same source
/// the test was built with.
const JSCH_TRANSFER_SOURCE: &str = include_str!("../clients/JschTransfer.java");

// ---- what the gateway serves ----

/// Gives `user` a second key, one JSch can log in with: ECDSA P-256 in the PEM format (JSch
/// 0.1.55 reads neither ed25519 keys nor OpenSSH's own private key format), at
/// `dir/{user}.jsch`, its public half added to the user's `authorized_keys`.
pub fn give_a_jsch_key(config: &mut GatewayConfig, dir: &Path, user: &str) {
    let key = jsch_key_path(dir, user);
    ssh_keygen_ecdsa(&key, &["-m", "PEM"]);
    let public = std::fs::read_to_string(dir.join(format!("{user}.jsch.pub"))).unwrap();
    config
        .user(user)
        .authorized_keys
        .push(public.trim().to_string());
}

fn jsch_key_path(dir: &Path, user: &str) -> PathBuf {
    dir.join(format!("{user}.jsch"))
}

/// `ssh-keygen -t ecdsa -b 256` at `path` (0600, and `path.pub`), with `extra` options.
pub fn ssh_keygen_ecdsa(path: &Path, extra: &[&str]) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-C", "partner"])
        .args(extra)
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(
        status.success(),
        "ssh-keygen -t ecdsa -f {}",
        path.display()
    );
}

// ---- JSch ----

/// One transfer of a [`jsch`] run, as `ChannelSftp` makes it.
pub enum JschOp<'a> {
    /// `ChannelSftp.put(local, remote)`: `local` in the bench dir.
    Put { local: &'a str, remote: &'a str },
    /// `ChannelSftp.get(remote, local)`: `local` in the bench dir.
    Get { remote: &'a str, local: &'a str },
}

/// Runs `JschTransfer` as `user` with the key [`give_a_jsch_key`] made, the bench's
/// known_hosts and `ops` in order over one SFTP channel. It stops at the first failure: exit 1
/// and the server's message on stderr (exit 2 for a refused login or host key).
pub async fn jsch(bench: &Bench, user: &TestUser, ops: &[JschOp<'_>]) -> Output {
    jsch_trusting(bench, user, &ecdsa_known_hosts(bench), ops).await
}

/// A known_hosts file trusting the gateway's ECDSA P-256 host key, the one JSch 0.1.55 can
/// verify: it knows no ed25519, and signs RSA only with SHA-1 (`ssh-rsa`, which the default
/// policy does not offer). The gateway serves that key by default, beside ed25519 and RSA.
fn ecdsa_known_hosts(bench: &Bench) -> PathBuf {
    let key = std::fs::read_to_string(bench.path("ssh_host_ecdsa_key.pub")).unwrap();
    let path = bench.path("jsch_known_hosts");
    let line = format!("[127.0.0.1]:{} {}\n", bench.port(), key.trim());
    std::fs::write(&path, line).unwrap();
    path
}

/// Like [`jsch`], checking the host key against `known_hosts` instead of the bench's.
pub async fn jsch_trusting(
    bench: &Bench,
    user: &TestUser,
    known_hosts: &Path,
    ops: &[JschOp<'_>],
) -> Output {
    let classes = jsch_classes();
    let mut command = tokio::process::Command::new("java");
    command
        .arg("-cp")
        .arg(format!("{JSCH_JAR}:{}", classes.display()))
        .arg("JschTransfer")
        .arg("127.0.0.1")
        .arg(bench.port().to_string())
        .arg(user.name)
        .arg(jsch_key_path(bench.dir.path(), user.name))
        .arg(known_hosts)
        .current_dir(bench.path(""))
        .env("HOME", bench.path(""));
    for op in ops {
        match op {
            JschOp::Put { local, remote } => command.args(["put", local, remote]),
            JschOp::Get { remote, local } => command.args(["get", remote, local]),
        };
    }
    run_bounded(command, "java JschTransfer").await
}

/// The folder holding `JschTransfer.class`, compiled at most once per test process: into the
/// build's temp folder, under a name made from the source and the jar, so that a later run
/// with both unchanged finds it there and javac (seconds of CPU) runs only when one changed.
fn jsch_classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        require_java_and_jsch();
        let jar = std::fs::read(JSCH_JAR).unwrap();
        let digest = Sha256::new()
            .chain_update(JSCH_TRANSFER_SOURCE)
            .chain_update(&jar)
            .finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let classes = cache.join(format!("jsch-transfer-{hex}"));
        if !classes.join("JschTransfer.class").exists() {
            compile_into(cache, &classes);
        }
        classes
    })
}

/// Compiles the program in a folder of its own, then renames that folder to `classes`, so
/// that a test process running at the same time never sees a half-written class file (if two
/// compile at once, the second rename fails and its copy is dropped: the first is the same).
fn compile_into(cache: &Path, classes: &Path) {
    std::fs::create_dir_all(cache).unwrap();
    let work = tempfile::tempdir_in(cache).unwrap();
    let source = work.path().join("JschTransfer.java");
    std::fs::write(&source, JSCH_TRANSFER_SOURCE).unwrap();
    let out = Command::new("javac")
        // Class files any Java from 11 on runs, whichever JDK compiled them.
        .args(["--release", "11", "-cp", JSCH_JAR, "-d"])
        .arg(work.path())
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .expect("javac runs");
    assert!(
        out.status.success(),
        "javac JschTransfer.java:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&source).unwrap();
    let _ = std::fs::rename(work.path(), classes);
}

fn require_java_and_jsch() {
    for program in ["java", "javac"] {
        assert!(
            runs(Command::new(program).arg("-version")),
            "{program} is not installed: the JSch tests need a JDK (Debian: apt-get install \
             default-jdk-headless; .ci/run installs it)"
        );
    }
    assert!(
        Path::new(JSCH_JAR).exists(),
        "{JSCH_JAR} is missing: the JSch tests need Debian's JSch (apt-get install \
         libjsch-java; .ci/run installs it)"
    );
}

// ---- PuTTY ----

/// The protocol `pscp` speaks.
#[derive(Clone, Copy, Debug)]
pub enum PscpProtocol {
    /// `-sftp`: the SFTP subsystem.
    Sftp,
    /// `-scp`: the legacy SCP protocol (an `scp -t`/`scp -f` exec request).
    Scp,
}

impl PscpProtocol {
    fn flag(self) -> &'static str {
        match self {
            PscpProtocol::Sftp => "-sftp",
            PscpProtocol::Scp => "-scp",
        }
    }
}

/// Runs `pscp` as `user` with `protocol`, checking the gateway's host key against its published
/// SHA256 fingerprint, with `args` (sources then the destination; remote paths from
/// [`Bench::remote`]) after the connection options. `-batch`: any question (an unknown host
/// key, a passphrase) is a failure, never a prompt.
pub async fn pscp(
    bench: &Bench,
    user: &TestUser,
    protocol: PscpProtocol,
    args: &[String],
) -> Output {
    pscp_trusting(
        bench,
        user,
        protocol,
        bench.gateway.host_key_fingerprint(),
        args,
    )
    .await
}

/// Like [`pscp`], trusting only the host key with `fingerprint`.
pub async fn pscp_trusting(
    bench: &Bench,
    user: &TestUser,
    protocol: PscpProtocol,
    fingerprint: &str,
    args: &[String],
) -> Output {
    let key = putty_key(bench, user);
    let mut command = tokio::process::Command::new("pscp");
    command
        .args([protocol.flag(), "-batch", "-hostkey", fingerprint, "-P"])
        .arg(bench.port().to_string())
        .arg("-i")
        .arg(key)
        .args(args)
        .current_dir(bench.path(""))
        // PuTTY keeps its random seed under $HOME; the bench's is its own.
        .env("HOME", bench.path(""));
    run_bounded(command, "pscp").await
}

/// `user`'s bench key converted by `puttygen` to PuTTY's format (`dir/{user}.ppk`), once per
/// bench.
fn putty_key(bench: &Bench, user: &TestUser) -> PathBuf {
    let ppk = user.key.with_extension("ppk");
    if ppk.exists() {
        return ppk;
    }
    assert!(
        runs(Command::new("pscp").arg("-V")) && runs(Command::new("puttygen").arg("--version")),
        "pscp or puttygen is not installed: the PuTTY tests need them (Debian: apt-get \
         install putty-tools; .ci/run installs it)"
    );
    let out = Command::new("puttygen")
        .arg(&user.key)
        .args(["-O", "private", "-o"])
        .arg(&ppk)
        .current_dir(bench.path(""))
        .env("HOME", bench.path(""))
        .stdin(Stdio::null())
        .output()
        .expect("puttygen runs");
    assert!(
        out.status.success(),
        "puttygen {}:\n{}",
        user.key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    ppk
}

/// Whether `command` starts and exits 0 (its output dropped).
fn runs(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
