//! The audit log end to end: an OpenSSH session that logs in, puts, lists, gets,
//! renames and removes, and the JSON lines it leaves, checked field by field; plus the lines of
//! a refused login and of an operation the user's permissions forbid; and, with `dropgate serve`
//! as a process, the file reopened on SIGHUP, the lines of sessions cut by a shutdown, and the
//! instance id that tells one process's lines from another's.

use std::time::Duration;

use crate::common::{
    output_text, paramiko_as_alice, poll_until, random_bytes, send_signal, Bench, Permissions,
    ServeDir,
};
use serde_json::Value;

async fn bench() -> Bench {
    Bench::audited(|_, _| {}).await
}

/// The lines once `count` disconnects have been written (the server writes that one after the
/// client has gone).
async fn lines_after_disconnects(bench: &Bench, count: usize) -> Vec<Value> {
    let done = poll_until(Duration::from_secs(10), || {
        let disconnects = bench
            .audit_lines()
            .iter()
            .filter(|l| l["event"] == "disconnect")
            .count();
        std::future::ready(disconnects >= count)
    })
    .await;
    assert!(done, "no disconnect line: {:#?}", bench.audit_lines());
    bench.audit_lines()
}

fn operation<'a>(lines: &'a [Value], op: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == "operation" && l["op"] == op)
        .unwrap_or_else(|| panic!("no {op} line in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_get_rename_rm_session_is_logged_line_by_line() {
    let bench = bench().await;
    let data = random_bytes(300_000);
    std::fs::write(bench.path("report.bin"), &data).unwrap();
    let alice = bench.user("alice");
    bench
        .sftp_ok(
            &alice,
            "put report.bin report.bin\nls\nget report.bin back.bin\n\
             rename report.bin final.bin\n-rm missing.bin\nrm final.bin\n",
        )
        .await;
    let lines = lines_after_disconnects(&bench, 1).await;

    // Every line: a time, this process's instance, the same connection and address.
    let conn = lines[0]["conn"].clone();
    let instance = lines[0]["instance"].as_str().unwrap().to_string();
    assert!(
        instance.len() == 8 && instance.chars().all(|c| c.is_ascii_hexdigit()),
        "{instance}"
    );
    let remote = lines[0]["remote"].as_str().unwrap().to_string();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    let mut last_time = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    for line in &lines {
        assert_eq!(line["conn"], conn, "{line}");
        assert_eq!(line["instance"], instance.as_str(), "{line}");
        assert_eq!(line["remote"], remote.as_str(), "{line}");
        let time = chrono::DateTime::parse_from_rfc3339(line["time"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert!(time >= last_time, "lines out of order: {line}");
        last_time = time;
    }

    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"connect"));
    assert_eq!(events.get(1), Some(&"login"));
    assert_eq!(events.last(), Some(&"disconnect"));
    assert_eq!(lines[0]["result"], "ok");
    let login = &lines[1];
    assert_eq!(login["user"], "alice");
    assert_eq!(login["method"], "publickey");
    assert_eq!(login["result"], "ok");

    let upload = operation(&lines, "upload");
    assert_eq!(upload["user"], "alice");
    assert_eq!(upload["path"], "/report.bin");
    assert_eq!(upload["dropbox_path"], "/alice/report.bin");
    assert_eq!(upload["bytes"], data.len() as u64);
    assert_eq!(upload["result"], "ok");
    assert!(upload["duration_ms"].is_u64());
    assert!(upload.get("error").is_none());
    let id = upload["dropbox_id"].as_str().unwrap();
    assert!(id.starts_with("id:"), "{upload}");
    assert!(!upload["rev"].as_str().unwrap().is_empty(), "{upload}");

    let list = operation(&lines, "list");
    assert_eq!(
        (&list["path"], &list["result"]),
        (&"/".into(), &"ok".into())
    );
    assert_eq!(list["dropbox_path"], "/alice");

    let download = operation(&lines, "download");
    assert_eq!(download["path"], "/report.bin");
    assert_eq!(download["bytes"], data.len() as u64);
    assert_eq!(download["result"], "ok");
    assert_eq!(std::fs::read(bench.path("back.bin")).unwrap(), data);

    let rename = operation(&lines, "rename");
    assert_eq!(rename["path"], "/report.bin");
    assert_eq!(rename["target"], "/final.bin");
    assert_eq!(rename["result"], "ok");

    let removes: Vec<&Value> = lines.iter().filter(|l| l["op"] == "remove").collect();
    assert_eq!(removes.len(), 2, "{removes:#?}");
    assert_eq!(removes[0]["path"], "/missing.bin");
    assert_eq!(removes[0]["result"], "failed");
    assert!(removes[0]["error"]
        .as_str()
        .unwrap()
        .contains("no such file"));
    assert_eq!(removes[1]["path"], "/final.bin");
    assert_eq!(removes[1]["result"], "ok");
    assert!(bench.dropbox_metadata("/alice/final.bin").await.is_none());

    let disconnect = lines.last().unwrap();
    assert_eq!(disconnect["user"], "alice");
    assert!(disconnect["duration_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_logins_and_forbidden_operations_are_logged() {
    let bench = Bench::audited(|config, _| {
        config.user("bob").permissions = Some(Permissions::preset("upload-only"));
    })
    .await;
    // alice's key presented as bob: refused.
    let mut wrong_key = bench.user("alice");
    wrong_key.name = "bob";
    let out = bench.sftp(&wrong_key, "ls\n").await;
    assert!(!out.status.success());
    // bob may not list.
    bench.sftp(&bench.user("bob"), "ls /\n").await;
    let lines = lines_after_disconnects(&bench, 2).await;

    let refused = lines
        .iter()
        .find(|l| l["event"] == "login" && l["result"] == "failed")
        .unwrap_or_else(|| panic!("no failed login in {lines:#?}"));
    assert_eq!(refused["user"], "bob");
    assert_eq!(refused["method"], "publickey");
    assert_eq!(
        refused["error"],
        "the key is not one of the user's authorized keys"
    );
    let fingerprint = refused["key_fingerprint"].as_str().unwrap_or_default();
    assert!(fingerprint.starts_with("SHA256:"), "{refused}");
    let accepted = lines
        .iter()
        .find(|l| l["event"] == "login" && l["user"] == "bob" && l["result"] == "ok")
        .unwrap_or_else(|| panic!("no login of bob in {lines:#?}"));
    assert_ne!(
        accepted["key_fingerprint"], fingerprint,
        "two keys, one fingerprint"
    );

    let list = operation(&lines, "list");
    assert_eq!(list["user"], "bob");
    assert_eq!(list["result"], "denied");
    assert!(
        list["error"].as_str().unwrap().contains("\"list\""),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_closed_before_its_end_is_logged_as_interrupted() {
    let bench = bench().await;
    bench
        .dropbox_upload("/alice/big.bin", random_bytes(300_000))
        .await;
    let result = paramiko_as_alice(
        &bench,
        r#"
with sftp.open("big.bin", "rb") as f:
    result["head"] = len(f.read(1000))
with sftp.open("big.bin", "rb") as f:
    result["whole"] = len(f.read())
"#,
    )
    .await;
    assert_eq!(result["head"], 1000);
    assert_eq!(result["whole"], 300_000);
    let lines = lines_after_disconnects(&bench, 1).await;
    let downloads: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "operation" && l["op"] == "download")
        .collect();
    assert_eq!(downloads.len(), 2, "{lines:#?}");
    let cut = downloads[0];
    assert_eq!(cut["result"], "interrupted", "{cut}");
    let sent = cut["bytes"].as_u64().unwrap();
    assert!((1000..300_000).contains(&sent), "{cut}");
    assert!(
        cut["error"].as_str().unwrap().contains("of 300000"),
        "{cut}"
    );
    assert_eq!(downloads[1]["result"], "ok", "{}", downloads[1]);
    assert_eq!(downloads[1]["bytes"], 300_000);
}

/// `dropgate serve` as a process, as logrotate and systemd treat it: the audit log renamed
/// and SIGHUP sent, then SIGTERM with a session still open, then a second start.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_is_reopened_on_sighup_and_a_session_cut_by_shutdown_is_logged() {
    let served = ServeDir::new().await;
    let audit = served.path("audit.log");
    let rotated = served.path("audit.log.1");
    let mut config = served.config();
    config.audit_to(&audit);
    let gateway_log = || std::fs::File::create(served.path("gateway.log")).unwrap();
    let mut first = served.serve(&config, "info", gateway_log().into()).await;
    let alice = served.path("alice");
    run_ok(served.sftp_as_alice(&alice, "ls\n", &[])).await;

    std::fs::rename(&audit, &rotated).unwrap();
    send_signal(&first, "HUP");
    let reopened = poll_until(Duration::from_secs(10), || {
        std::future::ready(audit.exists())
    })
    .await;
    assert!(reopened, "no new audit log after SIGHUP");
    std::fs::write(served.path("after.txt"), b"rotated").unwrap();
    run_ok(served.sftp_as_alice(&alice, "put after.txt after.txt\n", &[])).await;

    // A session still open when the gateway stops: `ssh -N` logs in and waits.
    let open = tokio::process::Command::new("ssh")
        .arg("-i")
        .arg(&alice)
        .args([
            "-N",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
        ])
        .arg(format!(
            "UserKnownHostsFile={}",
            served.known_hosts().display()
        ))
        .args(["-p", &served.port.to_string(), "alice@127.0.0.1"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logins = || {
        read_lines(&audit)
            .iter()
            .filter(|l| l["event"] == "login")
            .count()
    };
    let logged_in = poll_until(Duration::from_secs(10), || {
        std::future::ready(logins() == 2)
    })
    .await;
    assert!(
        logged_in,
        "ssh -N did not log in: {:#?}",
        read_lines(&audit)
    );
    send_signal(&first, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), first.wait())
        .await
        .expect("dropgate did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
    drop(open);

    let before = read_lines(&rotated);
    let after = read_lines(&audit);
    assert!(before.iter().any(|l| l["op"] == "list"), "{before:#?}");
    assert!(!before.iter().any(|l| l["op"] == "upload"), "{before:#?}");
    let upload = after
        .iter()
        .find(|l| l["op"] == "upload")
        .unwrap_or_else(|| panic!("the upload is not in the new file: {after:#?}"));
    assert_eq!(upload["dropbox_path"], "/alice/after.txt");

    // Every connection that got in has its disconnect; the one cut off says so.
    let all: Vec<&Value> = before.iter().chain(&after).collect();
    for connect in all.iter().filter(|l| l["event"] == "connect") {
        let disconnects: Vec<&&Value> = all
            .iter()
            .filter(|l| l["event"] == "disconnect" && l["conn"] == connect["conn"])
            .collect();
        assert_eq!(disconnects.len(), 1, "conn {}: {all:#?}", connect["conn"]);
    }
    let cut = after
        .iter()
        .find(|l| l["event"] == "disconnect" && l["result"] == "interrupted")
        .unwrap_or_else(|| panic!("no disconnect line for the open session: {after:#?}"));
    assert_eq!(cut["user"], "alice");
    assert!(
        cut["error"].as_str().unwrap().contains("gateway stopped"),
        "{cut}"
    );

    // One instance id on every line of the process; another after a restart.
    let instance = &all[0]["instance"];
    assert!(all.iter().all(|l| &l["instance"] == instance), "{all:#?}");
    let mut second = served.serve(&config, "info", gateway_log().into()).await;
    run_ok(served.sftp_as_alice(&alice, "ls\n", &[])).await;
    send_signal(&second, "TERM");
    let _ = tokio::time::timeout(Duration::from_secs(30), second.wait()).await;
    let restarted = read_lines(&audit);
    let new_lines = &restarted[after.len()..];
    assert!(!new_lines.is_empty());
    let second_instance = &new_lines[0]["instance"];
    assert_ne!(second_instance, instance);
    assert!(new_lines.iter().all(|l| &l["instance"] == second_instance));
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn run_ok(mut command: tokio::process::Command) {
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the client did not finish")
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
}
