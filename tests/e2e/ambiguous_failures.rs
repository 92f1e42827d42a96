//! Ambiguous failures: a change whose answer is lost (the connection reset after Dropbox
//! applied it, or before it reached Dropbox, or a 503) still ends as the client asked, and the
//! client hears OK. Every change the gateway makes (mkdir, rename, rm, rmdir, cp, put, large
//! put) meets each kind once, through the real OpenSSH `sftp`; the emulator's own API is the
//! judge of what Dropbox holds. A plain refusal (mkdir of an existing folder) still fails.

use crate::common::{random_bytes, request_count, Bench};
use serde_json::{json, Value};

/// The kinds of fault after which the gateway cannot know whether Dropbox acted, and how many
/// requests of the faulty route Dropbox sees for one change: one if it landed (the gateway
/// looks and finds it), two if it did not (the gateway looks, then sends it again).
const AMBIGUOUS: [(&str, u64); 3] = [("drop_after", 1), ("drop_before", 2), ("status_503", 2)];

/// Runs `commands` with one `kind` fault on `route`; the batch must succeed. Returns how many
/// requests of `route` the emulator saw meanwhile.
async fn with_one_fault(bench: &Bench, kind: &str, route: &str, commands: &str) -> u64 {
    let before = request_count(&bench.emulator_stats().await, route);
    bench
        .set_emulator_faults(json!([{ "kind": kind, "route": route, "count": 1 }]))
        .await;
    let out = bench.sftp(&bench.user("alice"), commands).await;
    bench.clear_emulator_faults().await;
    assert!(
        out.status.success(),
        "{kind} on {route}: `{}` failed: {}",
        commands.trim(),
        crate::common::output_text(&out)
    );
    request_count(&bench.emulator_stats().await, route) - before
}

async fn tag_of(bench: &Bench, path: &str) -> Value {
    bench
        .dropbox_metadata(path)
        .await
        .map_or(Value::Null, |meta| meta[".tag"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_survives_a_lost_answer_once_and_only_once() {
    let bench = Bench::start().await;
    let data = random_bytes(20_000);
    std::fs::write(bench.path("local.bin"), &data).unwrap();

    for (kind, sends) in AMBIGUOUS {
        let home = format!("/alice/{kind}");
        let steps = [
            ("files/create_folder_v2", format!("mkdir {kind}\n")),
            ("files/upload", format!("put local.bin {kind}/a.bin\n")),
            (
                "files/move_v2",
                format!("rename {kind}/a.bin {kind}/b.bin\n"),
            ),
            ("files/copy_v2", format!("cp {kind}/b.bin {kind}/c.bin\n")),
            ("files/delete_v2", format!("rm {kind}/b.bin\n")),
            ("files/create_folder_v2", format!("mkdir {kind}/sub\n")),
            ("files/move_v2", format!("rename {kind}/sub {kind}/moved\n")),
            ("files/delete_v2", format!("rmdir {kind}/moved\n")),
        ];
        for (route, commands) in &steps {
            let seen = with_one_fault(&bench, kind, route, commands).await;
            assert_eq!(seen, sends, "{kind} on {route}: `{}`", commands.trim());
        }

        // Exactly what the client asked for, and nothing twice.
        assert_eq!(tag_of(&bench, &home).await, "folder", "{kind}");
        assert_eq!(bench.dropbox_list(&home).await, ["c.bin"], "{kind}");
        assert_eq!(
            bench.dropbox_download(&format!("{home}/c.bin")).await,
            data,
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_upload_whose_finish_answer_is_lost_is_stored_once() {
    let bench = Bench::with_upload_sessions(1024 * 1024, 4 * 1024 * 1024).await;
    let data = random_bytes(5 * 1024 * 1024 + 123);
    std::fs::write(bench.path("big.bin"), &data).unwrap();

    for (kind, sends) in AMBIGUOUS {
        let route = "files/upload_session/finish";
        let seen = with_one_fault(&bench, kind, route, &format!("put big.bin {kind}.bin\n")).await;
        assert_eq!(seen, sends, "{kind}");
        assert_eq!(
            bench.dropbox_download(&format!("/alice/{kind}.bin")).await,
            data,
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_landed_is_ok_even_if_every_repeat_meets_the_namespace_lock() {
    let bench = Bench::start().await;
    let data = random_bytes(3_000);
    std::fs::write(bench.path("landed.bin"), &data).unwrap();
    let locked = json!({ "error_summary": "path/too_many_write_operations/..",
        "error": { ".tag": "path", "reason": { ".tag": "too_many_write_operations" } } });
    // The first try is applied and its answer lost; any repeat would meet the lock.
    bench
        .set_emulator_faults(json!([
            { "kind": "drop_after", "route": "files/upload", "count": 1 },
            { "kind": "error", "status": 409, "body": locked, "route": "files/upload" },
        ]))
        .await;

    let out = bench
        .sftp(&bench.user("alice"), "put landed.bin landed.bin\n")
        .await;
    bench.clear_emulator_faults().await;

    assert!(out.status.success(), "{}", crate::common::output_text(&out));
    assert_eq!(bench.dropbox_download("/alice/landed.bin").await, data);
}

#[tokio::test(flavor = "multi_thread")]
async fn mkdir_of_an_existing_folder_still_fails() {
    let bench = Bench::start().await;
    bench.sftp_ok(&bench.user("alice"), "mkdir there\n").await;
    let before = bench.dropbox_metadata("/alice/there").await.unwrap();

    let out = bench.sftp(&bench.user("alice"), "mkdir there\n").await;

    assert!(
        !out.status.success(),
        "mkdir of an existing folder succeeded"
    );
    assert_eq!(
        bench.dropbox_metadata("/alice/there").await.unwrap(),
        before
    );
}
