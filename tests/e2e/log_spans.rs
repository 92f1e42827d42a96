//! Every log line can be traced to its connection: `dropgate serve` as a real process, logging
//! at info, takes an upload from alice and one from bob over OpenSSH's sftp, and the "upload
//! committed" line (written deep in the Dropbox backend, on the commit's own task) carries the
//! connection's number and user, the same number its "login accepted" line carries.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::common::{output_text, write_random_file, ServeDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_below_the_ssh_layer_name_their_connection_and_user() {
    let serve = ServeDir::new().await;
    let mut server = serve.serve(&serve.config(), "info", Stdio::piped()).await;
    let mut stderr = server.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    // Large enough to go through an upload session (its appends run on a task of their own).
    let dir = serve.dir.path();
    write_random_file(&dir.join("upload.bin"), 20 * 1024 * 1024);
    for user in ["alice", "bob"] {
        upload(dir, serve.port, user, &format!("{user}-file.bin")).await;
    }

    server.start_kill().unwrap();
    let _ = server.wait().await;
    let log = strip_ansi(&log.await.unwrap());
    let mut conns = Vec::new();
    for user in ["alice", "bob"] {
        let login = line_with(&log, &[&format!("user={user}"), "login accepted"]);
        let conn = conn_of(login).unwrap_or_else(|| panic!("no conn in {login:?}"));
        let committed = line_with(&log, &["upload committed", &format!("{user}-file.bin")]);
        assert!(
            committed.contains(&format!("conn{{conn={conn} "))
                && committed.contains(&format!(" user={user}}}")),
            "{user}'s commit does not name connection {conn} and its user:\n{committed}"
        );
        assert!(
            committed.contains("sftp{session=1}"),
            "{user}'s commit does not name its SFTP session:\n{committed}"
        );
        conns.push(conn);
    }
    assert_ne!(conns[0], conns[1], "two connections got one number:\n{log}");
}

/// `sftp -b` with one put of `upload.bin` as `name`, as `user`.
async fn upload(dir: &Path, port: u16, user: &str, name: &str) {
    let batch = dir.join(format!("{user}.batch"));
    std::fs::write(&batch, format!("put upload.bin {name}\n")).unwrap();
    let out = tokio::process::Command::new("sftp")
        .arg("-i")
        .arg(dir.join(user))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.join("known_hosts").display()
        ))
        .args(["-P", &port.to_string(), "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the upload did not finish")
        .unwrap();
    assert!(out.status.success(), "{user}: {}", output_text(&out));
}

/// The first log line holding every one of `parts`.
fn line_with<'a>(log: &'a str, parts: &[&str]) -> &'a str {
    log.lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .unwrap_or_else(|| panic!("no log line with {parts:?}:\n{log}"))
}

/// The connection number in a line's `conn{conn=N ...}` span.
fn conn_of(line: &str) -> Option<u64> {
    let rest = line.split("conn{conn=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The log as text, without the colours tracing-subscriber writes.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
