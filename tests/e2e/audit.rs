//! The audit log end to end: an OpenSSH session that logs in, puts, lists, gets,
//! renames and removes, and the JSON lines it leaves, checked field by field; plus the lines of
//! a refused login and of an operation the user's permissions forbid.

use std::time::Duration;

use crate::common::{paramiko_as_alice, poll_until, random_bytes, Bench, Permissions};
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

    // Every line: a time, the same connection and address.
    let conn = lines[0]["conn"].clone();
    let remote = lines[0]["remote"].as_str().unwrap().to_string();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    let mut last_time = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    for line in &lines {
        assert_eq!(line["conn"], conn, "{line}");
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
