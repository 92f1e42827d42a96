//! Nothing lost: a replacing rename never loses its target, a download handle never
//! mixes two versions of a file, and rmdir never takes a file that arrived while it looked.
//!
//! Clients are real (paramiko, OpenSSH sftp); what is on Dropbox afterwards is read from the
//! emulator's own API. Races and lost answers are made deterministic with the emulator's fault
//! hooks: `drop_after` (the request is applied, its answer lost), `error` (with `skip` to let
//! the first requests through) and `delay_after` (an answer held back while the test acts).

use std::time::Duration;

use crate::common::{paramiko_as_alice, poll_until, random_bytes, request_count, stderr, Bench};
use serde_json::{json, Value};

/// A bench whose gateway writes an audit log to `audit.log` in the bench dir.
async fn audited_bench() -> Bench {
    Bench::audited(|_, _| {}).await
}

fn operation_lines(bench: &Bench, op: &str) -> Vec<Value> {
    bench
        .audit_lines()
        .into_iter()
        .filter(|line| line["op"] == op)
        .collect()
}

fn rename_lines(bench: &Bench) -> Vec<Value> {
    operation_lines(bench, "rename")
}

/// Names in alice's root that a replacing rename uses for the file it moves aside.
async fn leftovers(bench: &Bench, folder: &str) -> Vec<String> {
    bench
        .dropbox_list(folder)
        .await
        .into_iter()
        .filter(|name| name.starts_with(".dropgate-replace-"))
        .collect()
}

/// paramiko's posix_rename, as "ok" or the exception with the server's message.
async fn posix_rename(bench: &Bench, from: &str, to: &str) -> String {
    let script = format!("result['rename'] = attempt(lambda: sftp.posix_rename({from:?}, {to:?}))");
    let result = paramiko_as_alice(bench, &script).await;
    result["rename"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn posix_rename_of_a_missing_source_leaves_the_target_alone() {
    let bench = audited_bench().await;
    let important = random_bytes(10_000);
    bench
        .dropbox_upload("/alice/important.csv", important.clone())
        .await;

    let outcome = posix_rename(&bench, "/does-not-exist", "/important.csv").await;

    assert!(outcome.starts_with("FileNotFoundError"), "{outcome}");
    assert_eq!(
        bench.dropbox_download("/alice/important.csv").await,
        important
    );
    assert!(leftovers(&bench, "/alice").await.is_empty());
    let done = poll_until(Duration::from_secs(5), || {
        std::future::ready(!rename_lines(&bench).is_empty())
    })
    .await;
    assert!(done, "no rename line in the audit log");
    let line = &rename_lines(&bench)[0];
    assert_eq!(line["result"], "failed", "{line}");
    assert_eq!(line["target"], "/important.csv", "{line}");
    assert!(line.get("replaced").is_none(), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replacing_rename_is_audited_as_a_replace_and_leaves_nothing_behind() {
    let bench = audited_bench().await;
    bench
        .dropbox_upload("/alice/new.csv", b"new".to_vec())
        .await;
    bench
        .dropbox_upload("/alice/old.csv", b"old".to_vec())
        .await;

    assert_eq!(posix_rename(&bench, "/new.csv", "/old.csv").await, "ok");
    assert_eq!(bench.dropbox_download("/alice/old.csv").await, b"new");
    assert!(bench.dropbox_metadata("/alice/new.csv").await.is_none());
    assert!(leftovers(&bench, "/alice").await.is_empty());

    assert_eq!(posix_rename(&bench, "/old.csv", "/fresh.csv").await, "ok");
    let done = poll_until(Duration::from_secs(5), || {
        std::future::ready(rename_lines(&bench).len() >= 2)
    })
    .await;
    assert!(done, "rename lines missing: {:#?}", rename_lines(&bench));
    let lines = rename_lines(&bench);
    assert_eq!(
        (&lines[0]["result"], &lines[0]["replaced"]),
        (&json!("ok"), &json!(true))
    );
    assert_eq!(
        (&lines[1]["result"], &lines[1]["replaced"]),
        (&json!("ok"), &json!(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn posix_rename_whose_move_fails_puts_the_target_back() {
    let bench = Bench::start().await;
    let target = random_bytes(5_000);
    bench
        .dropbox_upload("/alice/dir/report.csv", target.clone())
        .await;

    // Dropbox refuses to move a folder into itself: the move fails after the target is aside.
    let outcome = posix_rename(&bench, "/dir", "/dir/report.csv").await;

    assert!(
        outcome.starts_with("OSError") || outcome.starts_with("IOError"),
        "{outcome}"
    );
    assert_eq!(
        bench.dropbox_download("/alice/dir/report.csv").await,
        target
    );
    assert!(leftovers(&bench, "/alice/dir").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replace_whose_move_answers_are_lost_still_replaces_exactly_once() {
    let bench = Bench::start().await;
    bench
        .dropbox_upload("/alice/a.csv", b"source".to_vec())
        .await;
    bench
        .dropbox_upload("/alice/b.csv", b"target".to_vec())
        .await;
    // Every move is applied but its answer never arrives; moves are not sent twice.
    bench
        .set_emulator_faults(json!([{ "kind": "drop_after", "route": "files/move_v2" }]))
        .await;

    let outcome = posix_rename(&bench, "/a.csv", "/b.csv").await;
    bench.clear_emulator_faults().await;

    assert_eq!(outcome, "ok");
    assert_eq!(bench.dropbox_download("/alice/b.csv").await, b"source");
    assert!(bench.dropbox_metadata("/alice/a.csv").await.is_none());
    assert!(leftovers(&bench, "/alice").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_cannot_be_put_back_is_kept_and_named() {
    let bench = Bench::start().await;
    let target = random_bytes(5_000);
    bench
        .dropbox_upload("/alice/a.csv", b"source".to_vec())
        .await;
    bench.dropbox_upload("/alice/b.csv", target.clone()).await;
    // The target is moved aside; then the source's move and the move back both fail.
    let refused =
        json!({ "error_summary": "too_many_files/..", "error": { ".tag": "too_many_files" } });
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/move_v2", "skip": 1, "count": 2, "body": refused
        }]))
        .await;

    let outcome = posix_rename(&bench, "/a.csv", "/b.csv").await;
    bench.clear_emulator_faults().await;

    let aside = leftovers(&bench, "/alice").await;
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(outcome.contains(&format!("/{}", aside[0])), "{outcome}");
    assert_eq!(
        bench
            .dropbox_download(&format!("/alice/{}", aside[0]))
            .await,
        target
    );
    assert_eq!(bench.dropbox_download("/alice/a.csv").await, b"source");
}

/// Version A is read at offset 0; another connection replaces the file with B (shorter, as in
/// the report); READs of the open handle at new offsets fail or give A's bytes, never B's.
#[tokio::test(flavor = "multi_thread")]
async fn a_download_handle_never_mixes_versions() {
    let bench = audited_bench().await;
    let version_a = random_bytes(200_000);
    let version_b = random_bytes(149_000);
    bench
        .dropbox_upload("/alice/data.bin", version_a.clone())
        .await;
    std::fs::write(bench.path("b.bin"), &version_b).unwrap();

    let script = r#"
f = sftp.open("/data.bin", "rb")
result["size"] = f.stat().st_size
result["first"] = list(f.read(4096))
other = client.open_sftp()
other.put("b.bin", "/data.bin")
reads = []
for offset in (100000, 10000, 148000, 190000):
    f.seek(offset)
    try:
        reads.append([offset, list(f.read(1000))])
    except Exception as e:
        reads.append([offset, "%s: %s" % (type(e).__name__, e)])
result["reads"] = reads
"#;
    let result = paramiko_as_alice(&bench, script).await;

    assert_eq!(bench.dropbox_download("/alice/data.bin").await, version_b);
    assert_eq!(result["size"], 200_000);
    let first: Vec<u8> = serde_json::from_value(result["first"].clone()).unwrap();
    assert_eq!(first, version_a[..4096]);
    for read in result["reads"].as_array().unwrap() {
        let offset = read[0].as_u64().unwrap() as usize;
        match read[1].as_array() {
            Some(bytes) => {
                let bytes: Vec<u8> = bytes.iter().map(|b| b.as_u64().unwrap() as u8).collect();
                let from_b = version_b.get(offset..offset + 1000) == Some(&bytes[..]);
                assert!(
                    bytes == version_a[offset..offset + 1000],
                    "READ at {offset} did not return version A's bytes (version B's: {from_b})"
                );
            }
            None => assert!(read[1].as_str().unwrap().contains("Error"), "{read}"),
        }
    }
    // This emulator keeps only a file's latest version, so the reads failed, and the download's
    // audit line says so.
    let failed = poll_until(Duration::from_secs(5), || {
        let lines = operation_lines(&bench, "download");
        std::future::ready(lines.iter().any(|line| line["result"] == "failed"))
    })
    .await;
    assert!(failed, "{:#?}", operation_lines(&bench, "download"));
}

/// An rmdir that found the folder empty must not delete a file uploaded right after its look.
#[tokio::test(flavor = "multi_thread")]
async fn rmdir_does_not_delete_a_file_that_arrives_while_it_looks() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench.sftp_ok(&alice, "mkdir docs\n").await;
    // The listing that finds the folder empty is held back; the upload lands meanwhile (once
    // the listing has been asked for and answered, before the answer reaches the gateway).
    bench.reset_emulator_stats().await;
    bench
        .set_emulator_faults(json!([{
            "kind": "delay_after", "route": "files/list_folder", "count": 1, "delay_ms": 3000
        }]))
        .await;
    let arrival = async {
        let listed = poll_until(Duration::from_secs(20), || async {
            request_count(&bench.emulator_stats().await, "files/list_folder") >= 1
        })
        .await;
        assert!(listed, "rmdir never listed the folder");
        tokio::time::sleep(Duration::from_millis(300)).await;
        bench
            .dropbox_upload("/alice/docs/late.txt", b"late".to_vec())
            .await;
    };
    let (rmdir, ()) = tokio::join!(bench.sftp(&alice, "rmdir docs\n"), arrival);
    bench.clear_emulator_faults().await;

    assert!(
        !rmdir.status.success(),
        "rmdir succeeded: {}",
        stderr(&rmdir)
    );
    assert_eq!(
        bench.dropbox_download("/alice/docs/late.txt").await,
        b"late"
    );

    // Once the folder is really empty, rmdir works.
    bench
        .sftp_ok(&alice, "rm docs/late.txt\nrmdir docs\n")
        .await;
    assert!(bench.dropbox_metadata("/alice/docs").await.is_none());
}
