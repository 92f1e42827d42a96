//! Names as Dropbox has them, through the real OpenSSH `sftp`: NFD names from the client are
//! stored NFC; Dropbox's length limit (255 characters, not bytes) and disallowed names fail at
//! OPEN, before anything is spooled; a name only Dropbox refuses (emoji, on accounts that do)
//! fails at CLOSE with the old file untouched; a case-only rename works. Messages are read with
//! paramiko, which shows the server's text (OpenSSH shows only the status code's name).

use serde_json::json;

use crate::common::{paramiko_as_alice, stderr, Bench};

const NFC_NAME: &str = "Caf\u{e9} d\u{e9}j\u{e0} vu.txt";
const NFD_NAME: &str = "Cafe\u{301} de\u{301}ja\u{300} vu.txt";

/// `sftp` exited 1 and OpenSSH reported the OPEN of `remote` as failed (`dest open "/x":
/// Failure`; older versions say `remote open`): the refusal came at OPEN, before a byte was
/// sent.
fn assert_refused_at_open(out: &std::process::Output, remote: &str) {
    assert!(!out.status.success(), "the put succeeded");
    let text = stderr(out);
    assert!(
        // OpenSSH may cut a long name short in its message.
        (text.contains("dest open") || text.contains("remote open"))
            && text.contains(&remote[..remote.len().min(100)]),
        "expected OpenSSH's report of a failed OPEN of {remote:?}:\n{text}"
    );
}

/// What paramiko's `open(name, "w")` raised, or "ok" (the message is the server's text).
async fn paramiko_open_error(bench: &Bench, name: &str) -> String {
    let script = format!(
        "result['open'] = attempt(lambda: sftp.open({}, 'w'))",
        serde_json::to_string(name).unwrap()
    );
    let result = paramiko_as_alice(bench, &script).await;
    result["open"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_nfd_name_is_stored_nfc_and_found_by_either_spelling() {
    let bench = Bench::audited(|_, _| {}).await;
    let alice = bench.user("alice");
    // The local file is named in NFD, as on a Mac; sftp sends those bytes as the remote name.
    std::fs::write(bench.path(NFD_NAME), b"first").unwrap();
    assert!(
        NFD_NAME.len() > NFC_NAME.len(),
        "the name really is decomposed"
    );
    bench
        .sftp_ok(&alice, &format!("put \"{NFD_NAME}\"\n"))
        .await;
    assert_eq!(
        bench.dropbox_list("/alice").await,
        vec![NFC_NAME.to_string()]
    );

    // The gateway itself works with the NFC form (its tables, its log, what it sends), not
    // only the emulator, which would also take NFD.
    let uploads: Vec<_> = bench
        .audit_lines()
        .into_iter()
        .filter(|line| line["op"] == "upload")
        .map(|line| line["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(uploads, vec![format!("/{NFC_NAME}")]);

    // Again in NFD with other content: the same file is replaced, no second one appears.
    std::fs::write(bench.path(NFD_NAME), b"second").unwrap();
    bench
        .sftp_ok(&alice, &format!("put \"{NFD_NAME}\"\n"))
        .await;
    assert_eq!(
        bench.dropbox_list("/alice").await,
        vec![NFC_NAME.to_string()]
    );
    assert_eq!(
        bench.dropbox_download(&format!("/alice/{NFC_NAME}")).await,
        b"second"
    );

    // Both spellings find it through the gateway.
    bench
        .sftp_ok(
            &alice,
            &format!("get \"{NFC_NAME}\" by-nfc.txt\nget \"{NFD_NAME}\" by-nfd.txt\n"),
        )
        .await;
    for copy in ["by-nfc.txt", "by-nfd.txt"] {
        assert_eq!(
            std::fs::read(bench.path(copy)).unwrap(),
            b"second",
            "{copy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_longer_than_255_characters_fail_at_open_naming_the_limit() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("a.txt"), b"data").unwrap();
    bench.reset_emulator_stats().await;

    let too_long = "x".repeat(256);
    let out = bench.sftp(&alice, &format!("put a.txt {too_long}\n")).await;
    assert_refused_at_open(&out, &too_long);
    assert_eq!(bench.upload_requests().await.commits(), 0);
    let message = paramiko_open_error(&bench, &too_long).await;
    assert!(
        message.contains("longer than 255 characters"),
        "the refusal names the limit: {message}"
    );

    // 255 characters of three bytes each (765 bytes) is a valid Dropbox name.
    let longest = "日".repeat(255);
    assert!(longest.len() > 255);
    bench
        .sftp_ok(&alice, &format!("put a.txt {longest}\n"))
        .await;
    assert_eq!(
        bench.dropbox_download(&format!("/alice/{longest}")).await,
        b"data"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disallowed_name_fails_at_open_naming_the_rule() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("a.txt"), b"data").unwrap();
    bench.reset_emulator_stats().await;

    for name in ["desktop.ini", "Thumbs.db"] {
        let out = bench.sftp(&alice, &format!("put a.txt {name}\n")).await;
        assert_refused_at_open(&out, name);
        let message = paramiko_open_error(&bench, name).await;
        assert!(
            message.contains("Dropbox does not store files with this name"),
            "{name}: {message}"
        );
    }
    let mkdir = bench.sftp(&alice, "mkdir .dropbox\n").await;
    assert!(!mkdir.status.success(), "mkdir .dropbox succeeded");
    assert_eq!(bench.upload_requests().await.commits(), 0);
    assert!(
        bench.dropbox_metadata("/alice").await.is_none(),
        "nothing was created"
    );
}

/// Some accounts refuse emoji names as `malformed_path`; the gateway learns it only from the
/// commit. The CLOSE then fails naming the rule, and the file stored earlier under that name
/// (while the account took such names) is untouched; with the model off the upload is stored.
#[tokio::test(flavor = "multi_thread")]
async fn an_emoji_name_dropbox_refuses_fails_clearly_and_leaves_the_old_file() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let name = "party \u{1f389}.txt";
    let dropbox_path = format!("/alice/{name}");
    std::fs::write(bench.path("old.txt"), b"old").unwrap();
    std::fs::write(bench.path("new.txt"), b"new content").unwrap();

    // Model off: an emoji name is stored like any other.
    bench
        .sftp_ok(&alice, &format!("put old.txt \"{name}\"\n"))
        .await;
    let before = bench.dropbox_stored(&dropbox_path).await;

    bench
        .dropbox()
        .set_realism(json!({"refuse_non_bmp_names": {}}))
        .await;
    let out = bench
        .sftp(&alice, &format!("put new.txt \"{name}\"\n"))
        .await;
    assert!(!out.status.success(), "the refused upload succeeded");
    assert!(
        stderr(&out).contains("close remote") || stderr(&out).contains("remote open"),
        "{}",
        stderr(&out)
    );
    // paramiko's own close() swallows a failed CLOSE, so the CLOSE is sent by hand.
    let script = format!(
        r#"
from paramiko.sftp import CMD_CLOSE
f = sftp.open({}, "w")
f.write(b"new")
f.flush()
result["put"] = attempt(lambda: sftp._request(CMD_CLOSE, f.handle))
f._closed = True
"#,
        serde_json::to_string(name).unwrap()
    );
    let refused = paramiko_as_alice(&bench, &script).await;
    let refused = refused["put"].as_str().unwrap_or_default();
    assert!(
        refused.contains("outside the Basic Multilingual Plane"),
        "the error names the rule: {refused}"
    );
    bench.assert_unchanged(&dropbox_path, &before, b"old").await;
    assert_eq!(bench.dropbox_list("/alice").await, vec![name.to_string()]);
    bench
        .wait_for_empty_spool(std::time::Duration::from_secs(10))
        .await;

    bench.dropbox().set_realism(json!({})).await;
    bench
        .sftp_ok(&alice, &format!("put new.txt \"{name}\"\n"))
        .await;
    assert_eq!(bench.dropbox_download(&dropbox_path).await, b"new content");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_only_rename_changes_the_case_in_dropbox() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/report.txt", b"r".to_vec())
        .await;
    bench
        .dropbox_upload("/alice/docs/inside.txt", b"i".to_vec())
        .await;
    let file_id = bench.dropbox_stored("/alice/report.txt").await["id"].clone();

    // OpenSSH's `rename` is posix-rename@openssh.com; paramiko's is the plain SFTP RENAME.
    bench
        .sftp_ok(&alice, "rename report.txt Report.TXT\nrename docs Docs\n")
        .await;
    let mut names = bench.dropbox_list("/alice").await;
    names.sort();
    assert_eq!(names, vec!["Docs", "Report.TXT"]);
    let stored = bench.dropbox_stored("/alice/report.txt").await;
    assert_eq!(stored["id"], file_id, "the same file, renamed");
    assert_eq!(bench.dropbox_download("/alice/Docs/inside.txt").await, b"i");

    let plain = paramiko_as_alice(
        &bench,
        "result['rename'] = attempt(lambda: sftp.rename('Report.TXT', 'report.txt'))",
    )
    .await;
    assert_eq!(plain["rename"], "ok", "{plain}");
    let mut names = bench.dropbox_list("/alice").await;
    names.sort();
    assert_eq!(names, vec!["Docs", "report.txt"]);
}

/// The second of the two moves fails: the first is undone, and the failure means the name is
/// as it was, with nothing left under a temporary name.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_case_only_rename_changes_nothing() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench.dropbox_upload("/alice/a.txt", b"a".to_vec()).await;
    let refused =
        json!({ "error_summary": "too_many_files/..", "error": { ".tag": "too_many_files" } });
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/move_v2", "skip": 1, "count": 1, "body": refused
        }]))
        .await;
    let out = bench.sftp(&alice, "rename a.txt A.txt\n").await;
    bench.clear_emulator_faults().await;

    assert!(!out.status.success(), "the failed rename was reported OK");
    assert_eq!(
        bench.dropbox_list("/alice").await,
        vec!["a.txt".to_string()]
    );
    assert_eq!(bench.dropbox_download("/alice/a.txt").await, b"a");
}

/// Both the second move and the move back fail: the error says where the file now is, and it
/// is there, whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_case_only_rename_that_cannot_be_undone_names_where_the_file_is() {
    let bench = Bench::start().await;
    bench.dropbox_upload("/alice/a.txt", b"a".to_vec()).await;
    let refused =
        json!({ "error_summary": "too_many_files/..", "error": { ".tag": "too_many_files" } });
    bench
        .set_emulator_faults(json!([{
            "kind": "error", "route": "files/move_v2", "skip": 1, "count": 2, "body": refused
        }]))
        .await;
    let outcome = paramiko_as_alice(
        &bench,
        "result['rename'] = attempt(lambda: sftp.rename('a.txt', 'A.txt'))",
    )
    .await;
    bench.clear_emulator_faults().await;

    let names = bench.dropbox_list("/alice").await;
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(".dropgate-case-"), "{names:?}");
    let message = outcome["rename"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("/{}", names[0])), "{message}");
    assert_eq!(
        bench
            .dropbox_download(&format!("/alice/{}", names[0]))
            .await,
        b"a"
    );
}

/// The answer to either move is lost though the move was applied: the rename looks where the
/// file is (by its id) instead of guessing, and finishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_case_only_rename_survives_a_lost_answer() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    for (skip, name, new_name) in [(0, "a.txt", "A.txt"), (1, "b.txt", "B.txt")] {
        bench
            .dropbox_upload(&format!("/alice/{name}"), name.as_bytes().to_vec())
            .await;
        bench
            .set_emulator_faults(json!([{
                "kind": "drop_after", "route": "files/move_v2", "skip": skip, "count": 1
            }]))
            .await;
        bench
            .sftp_ok(&alice, &format!("rename {name} {new_name}\n"))
            .await;
        bench.clear_emulator_faults().await;
        assert!(
            bench
                .dropbox_list("/alice")
                .await
                .contains(&new_name.to_string()),
            "{new_name}"
        );
        assert_eq!(
            bench.dropbox_download(&format!("/alice/{new_name}")).await,
            name.as_bytes()
        );
    }
    let mut names = bench.dropbox_list("/alice").await;
    names.sort();
    assert_eq!(names, vec!["A.txt", "B.txt"], "no temporary name is left");
}
