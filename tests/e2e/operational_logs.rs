//! The operational log as an operator gets it: `dropgate serve` as a real process with its
//! stderr in a file (as the journal or a redirect would have it), `RUST_LOG` unset.
//!
//! In a file the text log has no colour escapes, and only dropgate's own lines below WARN; a
//! failed upload (Dropbox refusing it) is a WARN line naming the user, the connection and the
//! path, and a spool file that cannot be created an ERROR naming the folder. `--log-format
//! json` wins over the config's `log_format`, and every line is a JSON object whose span list
//! carries the connection and user. A refused key is logged with the reason and the key's
//! fingerprint, and clients that simply close their connection (OpenSSH, paramiko) leave no
//! warning or error behind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    insufficient_space_fault, output_text, poll_until, python_with_paramiko, run_bounded,
    wait_until_listening, GatewayConfig, ServeDir, PARAMIKO_PRELUDE,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_has_no_colours_and_names_who_an_upload_failed_for() {
    let served = ServeDir::new().await;
    let mut server = serve(&served, &served.config(), &[]).await;
    std::fs::write(served.path("hello.txt"), b"hello").unwrap();
    sftp_ok(
        &served,
        "alice",
        "put hello.txt kept.txt\n-rm missing.txt\n",
    )
    .await;

    served
        .dropbox()
        .set_faults(insufficient_space_fault())
        .await;
    let out = sftp(&served, "alice", "put hello.txt doomed.txt\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(served
        .dropbox()
        .metadata("/alice/doomed.txt")
        .await
        .is_none());

    // The spool folder replaced by a file: no upload can start, and the log says where.
    served.dropbox().clear_faults().await;
    let spool = served.path("spool");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let out = sftp(&served, "alice", "put hello.txt unspooled.txt\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        !output_text(&out).contains(&*spool.to_string_lossy()),
        "the client is told the server's folder: {}",
        output_text(&out)
    );

    // Four connections: the probe that found the port open, and three sftp runs.
    let log = stop(&mut server, &served, 4).await;
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in the log file:\n{log}"
    );
    let failed = line_with(&log, &["operation failed", "doomed.txt"]);
    for part in [
        " ERROR ",
        "conn{conn=",
        "user=alice}",
        "op=\"upload\"",
        "dropbox_path=/alice/doomed.txt",
        "error=",
    ] {
        assert!(failed.contains(part), "no {part:?} in {failed:?}");
    }
    let spool_error = line_with(&log, &["cannot create a spool file"]);
    for part in [
        " ERROR ",
        "user=alice}",
        &format!("folder={}", spool.display()),
    ] {
        assert!(spool_error.contains(part), "no {part:?} in {spool_error:?}");
    }
    assert!(
        !log.contains("missing.txt"),
        "a client's own mistake (removing a missing file) is no warning:\n{log}"
    );
    let below_warn = |line: &&str| {
        [" INFO ", " DEBUG ", " TRACE "]
            .iter()
            .any(|l| line.contains(l))
    };
    let foreign: Vec<&str> = log
        .lines()
        .filter(below_warn)
        .filter(|line| !line.contains("dropgate::"))
        .collect();
    assert!(
        foreign.is_empty(),
        "dependencies log below WARN without RUST_LOG:\n{}",
        foreign.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_carry_the_connection_and_a_refused_key_its_reason_and_fingerprint() {
    let served = ServeDir::new().await;
    let mut config = served.config();
    config.server.log_format = Some("text".into());
    let mut server = serve(&served, &config, &["--log-format", "json"]).await;

    sftp_ok(&served, "alice", "ls\n").await;
    let out = sftp_with_key(&served, "bob", &served.path("alice"), "ls\n").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    paramiko_session(&served).await;

    let text = stop(&mut server, &served, 4).await;
    let lines: Vec<Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();

    let accepted = message(&lines, "login accepted");
    assert_eq!(accepted.len(), 2, "{text}");
    for line in &accepted {
        let conn = &line["spans"][0];
        assert_eq!(conn["name"], "conn", "{line}");
        assert_eq!(conn["user"], "alice", "{line}");
        assert!(conn["conn"].as_u64().is_some(), "{line}");
        assert!(
            conn["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
    }

    let refused = message(&lines, "login refused");
    assert_eq!(refused.len(), 1, "{text}");
    let refused = refused[0];
    assert_eq!(refused["user"], "bob", "{refused}");
    assert_eq!(refused["method"], "publickey", "{refused}");
    assert_eq!(
        refused["reason"], "the key is not one of the user's authorized keys",
        "{refused}"
    );
    assert_eq!(
        refused["key"],
        fingerprint(&served.path("alice.pub")),
        "{refused}"
    );

    // Four connections (the probe that found the port open, two sftp runs, paramiko), each
    // ended by its client: an ordinary disconnect, not an error.
    let ended = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("disconnected")
        })
        .count();
    assert_eq!(ended, 4, "{text}");
    let alarming: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        // The first start creates the host key, which is rightly a warning of its own.
        .filter(|l| !is_host_key_creation(l))
        .collect();
    assert!(alarming.is_empty(), "warnings or errors: {alarming:#?}");
}

/// The warning a first start gives when it creates a host key (see `host_key_create`).
fn is_host_key_creation(line: &Value) -> bool {
    line["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("created a new host key"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_while_dropbox_is_unreachable_is_an_error_line_naming_user_and_path() {
    let mut served = ServeDir::new().await;
    let config = served.config();
    let mut server = serve(&served, &config, &[]).await;
    served.stop_dropbox().await;
    std::fs::write(served.path("orders.csv"), b"id,qty\n1,2\n").unwrap();

    // The gateway retries for about half a minute before it gives up on Dropbox.
    let out = sftp(&served, "alice", "put orders.csv\n").await;
    assert!(
        !out.status.success(),
        "an upload Dropbox never got was reported stored:\n{}",
        output_text(&out)
    );

    let log = stop(&mut server, &served, 2).await;
    let failed = line_with(&log, &["operation failed", "orders.csv"]);
    for part in [
        " ERROR ",
        "user=alice}",
        "op=\"upload\"",
        "path=/orders.csv",
        "dropbox_path=/alice/orders.csv",
    ] {
        assert!(failed.contains(part), "no {part:?} in {failed:?}");
    }
    println!("the log line of the failed upload:\n{failed}");
}

/// Lines whose message is `text`.
fn message<'a>(lines: &'a [Value], text: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == text).collect()
}

/// Writes `config` and starts `dropgate serve` on it with `args`, `RUST_LOG` unset and its
/// stderr in `gateway.log`; returns once it listens, with its host key in `known_hosts`.
async fn serve(served: &ServeDir, config: &GatewayConfig, args: &[&str]) -> tokio::process::Child {
    config.write(&served.config_path());
    let log = std::fs::File::create(served.path("gateway.log")).unwrap();
    let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropgate"))
        .args(["serve", "--config"])
        .arg(served.config_path())
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(
        wait_until_listening(served.port).await,
        "dropgate serve did not start"
    );
    served.trust_host_key();
    process
}

/// Stops the gateway once it has logged the end of its `connections` (SIGKILL: the log is
/// written line by line) and returns its log.
async fn stop(server: &mut tokio::process::Child, served: &ServeDir, connections: usize) -> String {
    let log = || std::fs::read_to_string(served.path("gateway.log")).unwrap_or_default();
    let ended = |text: &str| {
        text.matches("disconnected").count() + text.matches("connection ended").count()
    };
    poll_until(Duration::from_secs(10), || {
        std::future::ready(ended(&log()) >= connections)
    })
    .await;
    server.start_kill().unwrap();
    let _ = server.wait().await;
    log()
}

fn line_with<'a>(log: &'a str, parts: &[&str]) -> &'a str {
    log.lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .unwrap_or_else(|| panic!("no log line with {parts:?}:\n{log}"))
}

async fn sftp(served: &ServeDir, user: &str, commands: &str) -> std::process::Output {
    sftp_with_key(served, user, &served.path(user), commands).await
}

async fn sftp_ok(served: &ServeDir, user: &str, commands: &str) {
    let out = sftp(served, user, commands).await;
    assert!(out.status.success(), "{}", output_text(&out));
}

/// OpenSSH's `sftp -b` as `user` with the private key `key`.
async fn sftp_with_key(
    served: &ServeDir,
    user: &str,
    key: &Path,
    commands: &str,
) -> std::process::Output {
    run_bounded(served.sftp_as(user, key, commands, &[]), "sftp").await
}

/// A paramiko session as alice that lists her folder and closes, as a script would.
async fn paramiko_session(served: &ServeDir) {
    let body = format!(
        r#"
client = connect("127.0.0.1", {port}, "alice", {known_hosts:?}, key={key:?})
sftp = client.open_sftp()
names = sftp.listdir(".")
sftp.close()
client.close()
print(json.dumps({{"listed": len(names)}}))
"#,
        port = served.port,
        known_hosts = served.known_hosts().display().to_string(),
        key = served.path("alice").display().to_string(),
    );
    let mut command = tokio::process::Command::new(python_with_paramiko());
    command.args(["-c", &[PARAMIKO_PRELUDE, &body].concat()]);
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(out.status.success(), "{}", output_text(&out));
}

/// A public key's SHA256 fingerprint, as `ssh-keygen -l` prints it.
fn fingerprint(public_key: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}
