//! upload_session/finish_batch_v2, finish_batch and finish_batch/check: result shapes per
//! entry, the rules for sessions that are not ready, write modes, the size limit, and one
//! hold of the namespace lock for a whole batch.

use serde_json::{json, Value};

use super::{start, Answer, Harness};
use crate::content_hash::content_hash;

const MIB4: usize = 4 * 1024 * 1024;

/// A sequential session holding `data`, closed on its start if `close`.
async fn session(h: &Harness, data: &[u8], close: bool) -> String {
    let arg = json!({ "close": close }).to_string();
    let started = h
        .upload_raw("files/upload_session/start", &arg, data.to_vec())
        .await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    started.body["session_id"].as_str().unwrap().to_string()
}

fn entry(session_id: &str, offset: usize, path: &str, mode: Value) -> Value {
    json!({
        "cursor": { "session_id": session_id, "offset": offset },
        "commit": { "path": path, "mode": mode },
    })
}

async fn batch(h: &Harness, entries: Vec<Value>) -> Answer {
    h.rpc(
        "files/upload_session/finish_batch_v2",
        json!({ "entries": entries }),
    )
    .await
}

async fn stored(h: &Harness, path: &str) -> Vec<u8> {
    let (answer, _) = h.download(path, None).await;
    assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    match answer.body {
        Value::String(text) => text.into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

#[tokio::test]
async fn each_entry_answers_at_its_position_with_success_or_its_failure() {
    let h = start().await;
    let one_chunk = session(&h, b"one chunk", true).await;
    let appended = session(&h, b"first ", false).await;
    let append = json!({ "cursor": { "session_id": appended, "offset": 6 }, "close": true });
    let closed = h
        .upload_raw(
            "files/upload_session/append_v2",
            &append.to_string(),
            b"second".to_vec(),
        )
        .await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    let open = session(&h, b"still open", false).await;
    let concurrent_arg = json!({ "session_type": "concurrent" }).to_string();
    let concurrent = h
        .upload_raw("files/upload_session/start", &concurrent_arg, Vec::new())
        .await;
    let concurrent = concurrent.body["session_id"].as_str().unwrap().to_string();
    let wrong_offset = session(&h, b"12345", true).await;

    let answer = batch(
        &h,
        vec![
            entry(&one_chunk, 9, "/b/one.txt", json!("add")),
            entry(&appended, 12, "/b/two.txt", json!("add")),
            entry(&open, 10, "/b/open.txt", json!("add")),
            entry(&concurrent, 0, "/b/concurrent.txt", json!("add")),
            entry(&wrong_offset, 4, "/b/offset.txt", json!("add")),
            entry("pid_upload_session:nosuch", 0, "/b/none.txt", json!("add")),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let entries = answer.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    // A success inlines FileMetadata beside its tag.
    assert_eq!(entries[0][".tag"], "success");
    assert_eq!(entries[0]["path_display"], "/b/one.txt");
    assert_eq!(entries[0]["content_hash"], content_hash(b"one chunk"));
    assert_eq!(entries[1][".tag"], "success");
    assert_eq!(entries[1]["size"], 12);
    // A failure holds an UploadSessionFinishError under its own key.
    let failures: Vec<&Value> = entries[2..].iter().map(|e| &e["failure"]).collect();
    assert!(entries[2..].iter().all(|e| e[".tag"] == "failure"));
    assert_eq!(
        *failures[0],
        json!({ ".tag": "lookup_failed", "lookup_failed": { ".tag": "not_closed" } })
    );
    assert_eq!(
        *failures[1],
        json!({ ".tag": "concurrent_session_not_closed" })
    );
    assert_eq!(
        *failures[2],
        json!({ ".tag": "lookup_failed",
                "lookup_failed": { ".tag": "incorrect_offset", "correct_offset": 5 } })
    );
    assert_eq!(
        *failures[3],
        json!({ ".tag": "lookup_failed", "lookup_failed": { ".tag": "not_found" } })
    );

    assert_eq!(stored(&h, "/b/one.txt").await, b"one chunk");
    assert_eq!(stored(&h, "/b/two.txt").await, b"first second");
    for path in ["/b/open.txt", "/b/offset.txt"] {
        let absent = h.rpc("files/get_metadata", json!({ "path": path })).await;
        assert_eq!(absent.status, 409, "{path}");
    }
    // A committed session is gone; a refused one can still be finished.
    let again = batch(
        &h,
        vec![
            entry(&one_chunk, 9, "/b/again.txt", json!("add")),
            entry(&wrong_offset, 5, "/b/offset.txt", json!("add")),
        ],
    )
    .await;
    assert_eq!(
        again.body["entries"][0]["failure"]["lookup_failed"][".tag"],
        "not_found"
    );
    assert_eq!(again.body["entries"][1][".tag"], "success");
    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["batch_entries"], 8);
}

#[tokio::test]
async fn write_modes_hashes_and_concurrent_sessions_hold_per_entry() {
    let h = start().await;
    h.upload("/m/kept.txt", b"old").await;
    let replaced = h.upload("/m/replaced.txt", b"old").await;
    let rev = replaced.body["rev"].as_str().unwrap().to_string();
    let add = session(&h, b"new", true).await;
    let update = session(&h, b"updated", true).await;
    let stale = session(&h, b"stale", true).await;
    let hashed = session(&h, b"hashed", true).await;

    let concurrent_arg = json!({ "session_type": "concurrent" }).to_string();
    let started = h
        .upload_raw("files/upload_session/start", &concurrent_arg, Vec::new())
        .await;
    let concurrent = started.body["session_id"].as_str().unwrap().to_string();
    let mut data = vec![7u8; MIB4];
    data.extend_from_slice(b"tail");
    for (offset, piece, close) in [(MIB4, &data[MIB4..], true), (0, &data[..MIB4], false)] {
        let arg =
            json!({ "cursor": { "session_id": concurrent, "offset": offset }, "close": close });
        let appended = h
            .upload_raw(
                "files/upload_session/append_v2",
                &arg.to_string(),
                piece.to_vec(),
            )
            .await;
        assert_eq!(appended.status, 200, "{:?}", appended.body);
    }

    let mut with_hash = entry(&hashed, 6, "/m/hashed.txt", json!("add"));
    with_hash["content_hash"] = json!(content_hash(b"hashed"));
    let answer = batch(
        &h,
        vec![
            entry(&add, 3, "/m/kept.txt", json!("add")),
            entry(
                &update,
                7,
                "/m/replaced.txt",
                json!({ ".tag": "update", "update": rev }),
            ),
            entry(
                &stale,
                5,
                "/m/replaced.txt",
                json!({ ".tag": "update", "update": rev }),
            ),
            with_hash,
            entry(&concurrent, data.len(), "/m/big.bin", json!("add")),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let entries = answer.body["entries"].as_array().unwrap();
    assert_eq!(
        entries[0]["failure"],
        json!({ ".tag": "path", "path": { ".tag": "conflict", "conflict": { ".tag": "file" } } })
    );
    assert_eq!(entries[1][".tag"], "success");
    // The second update names a rev the first one replaced.
    assert_eq!(entries[2]["failure"]["path"][".tag"], "conflict");
    // An entry's content_hash covers the data sent with it in this call: none.
    assert_eq!(entries[3]["failure"][".tag"], "content_hash_mismatch");
    assert_eq!(entries[4][".tag"], "success");
    assert_eq!(entries[4]["content_hash"], content_hash(&data));
    assert_eq!(stored(&h, "/m/kept.txt").await, b"old");
    assert_eq!(stored(&h, "/m/replaced.txt").await, b"updated");
}

#[tokio::test]
async fn more_than_1000_entries_or_a_bad_argument_is_a_400() {
    let h = start().await;
    let id = session(&h, b"x", true).await;
    let many = vec![entry(&id, 1, "/x.txt", json!("add")); 1001];
    let refused = batch(&h, many).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    let bad_mode = batch(&h, vec![entry(&id, 1, "/x.txt", json!("replace"))]).await;
    assert_eq!(bad_mode.status, 400);
    let unknown = h
        .rpc(
            "files/upload_session/finish_batch_v2",
            json!({ "entries": [], "extra": 1 }),
        )
        .await;
    assert_eq!(unknown.status, 400);
    // Nothing was applied: the session is still there to finish.
    let done = batch(&h, vec![entry(&id, 1, "/x.txt", json!("add"))]).await;
    assert_eq!(done.body["entries"][0][".tag"], "success");
}

#[tokio::test]
async fn a_batch_is_one_commit_for_the_lock_and_a_batch_meeting_it_applies_nothing() {
    let h = start().await;
    let ids = [
        session(&h, b"a", true).await,
        session(&h, b"b", true).await,
        session(&h, b"c", true).await,
    ];
    let entries: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| entry(id, 1, &format!("/l/{i}.txt"), json!("add")))
        .collect();
    let realism = json!({ "write_lock": { "hold_ms": 400, "shape": "route_error" } });
    h.hook(reqwest::Method::PUT, "realism", Some(realism)).await;

    let holder = h.rpc("files/create_folder_v2", json!({ "path": "/holder" }));
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        batch(&h, entries.clone()).await
    };
    let (held, refused) = tokio::join!(holder, later);
    assert_eq!(held.status, 200);
    assert_eq!(refused.status, 200, "{:?}", refused.body);
    for result in refused.body["entries"].as_array().unwrap() {
        assert_eq!(
            result["failure"],
            json!({ ".tag": "too_many_write_operations" })
        );
    }
    let absent = h
        .rpc("files/get_metadata", json!({ "path": "/l/0.txt" }))
        .await;
    assert_eq!(absent.status, 409);

    let rate_limit = json!({ "write_lock": { "hold_ms": 400, "shape": "rate_limit" } });
    h.hook(reqwest::Method::PUT, "realism", Some(rate_limit))
        .await;
    let holder = h.rpc("files/create_folder_v2", json!({ "path": "/holder2" }));
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        batch(&h, entries.clone()).await
    };
    let (_, refused) = tokio::join!(holder, later);
    assert_eq!(
        (refused.status, refused.summary()),
        (429, "too_many_write_operations/..")
    );

    // Sent alone, the three entries are one commit: the lock never meets itself.
    h.hook(reqwest::Method::DELETE, "stats", None).await;
    let done = batch(&h, entries).await;
    assert!(done.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e[".tag"] == "success"));
    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["write_lock_refusals"], 0);
    assert_eq!(stats["batch_entries"], 3);
}

#[tokio::test]
async fn the_async_form_answers_a_job_id_that_check_turns_into_the_result() {
    let h = start().await;
    let id = session(&h, b"async", true).await;
    let launched = h
        .rpc(
            "files/upload_session/finish_batch",
            json!({ "entries": [entry(&id, 5, "/async.txt", json!("add"))] }),
        )
        .await;
    assert_eq!(launched.status, 200, "{:?}", launched.body);
    assert_eq!(launched.body[".tag"], "async_job_id");
    let job = launched.body["async_job_id"].as_str().unwrap();
    let status = h
        .rpc(
            "files/upload_session/finish_batch/check",
            json!({ "async_job_id": job }),
        )
        .await;
    assert_eq!(status.status, 200, "{:?}", status.body);
    assert_eq!(status.body[".tag"], "complete");
    assert_eq!(status.body["entries"][0][".tag"], "success");
    assert_eq!(status.body["entries"][0]["size"], 5);

    let unknown = h
        .rpc(
            "files/upload_session/finish_batch/check",
            json!({ "async_job_id": "dbjid:nosuch" }),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.summary()),
        (409, "invalid_async_job_id/..")
    );
}
