//! Upload sessions: sequential and concurrent rules.

use serde_json::json;

use super::{start, Harness};
use crate::content_hash::content_hash;

const MIB4: usize = 4 * 1024 * 1024;

async fn call(h: &Harness, route: &str, arg: serde_json::Value, body: Vec<u8>) -> super::Answer {
    h.upload_raw(route, &arg.to_string(), body).await
}

#[tokio::test]
async fn sequential_session_appends_in_order() {
    let h = start().await;
    let start = call(&h, "files/upload_session/start", json!({}), b"abc".to_vec()).await;
    assert_eq!(start.status, 200, "{:?}", start.body);
    let id = start.body["session_id"].as_str().unwrap().to_string();

    let wrong = call(
        &h,
        "files/upload_session/append_v2",
        json!({"cursor": {"session_id": id, "offset": 0}}),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(wrong.status, 409);
    assert_eq!(
        wrong.body["error"],
        json!({".tag": "incorrect_offset", "correct_offset": 3})
    );

    let append = call(
        &h,
        "files/upload_session/append_v2",
        json!({"cursor": {"session_id": id, "offset": 3}}),
        b"def".to_vec(),
    )
    .await;
    assert_eq!(append.status, 200);
    assert_eq!(append.body, serde_json::Value::Null);

    let bad_finish = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 2}, "commit": {"path": "/s.txt"}}),
        vec![],
    )
    .await;
    assert_eq!(
        bad_finish.body["error"],
        json!({".tag": "lookup_failed", "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 6}})
    );

    h.upload("/s.txt", b"other").await;
    let conflict = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 6}, "commit": {"path": "/s.txt"}}),
        b"g".to_vec(),
    )
    .await;
    assert_eq!(conflict.summary(), "path/conflict/file/..");

    // content_hash covers this call's data (none), not the whole file.
    let whole_file_hash = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 7}, "commit": {"path": "/s.txt", "mode": "overwrite"}, "content_hash": content_hash(b"abcdefg")}),
        vec![],
    )
    .await;
    assert_eq!(whole_file_hash.summary(), "content_hash_mismatch/..");
    let finish = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 7}, "commit": {"path": "/s.txt", "mode": "overwrite"}, "content_hash": content_hash(b"")}),
        vec![],
    )
    .await;
    assert_eq!(finish.status, 200, "{:?}", finish.body);
    assert!(finish.body.get(".tag").is_none());
    assert_eq!(finish.body["size"], 7);
    assert_eq!(finish.body["content_hash"], content_hash(b"abcdefg"));

    let gone = call(
        &h,
        "files/upload_session/append_v2",
        json!({"cursor": {"session_id": id, "offset": 7}}),
        vec![],
    )
    .await;
    assert_eq!(gone.body["error"], json!({".tag": "not_found"}));
}

#[tokio::test]
async fn closed_sequential_session_refuses_appends() {
    let h = start().await;
    let start = call(
        &h,
        "files/upload_session/start",
        json!({"close": true}),
        b"abc".to_vec(),
    )
    .await;
    let id = start.body["session_id"].as_str().unwrap().to_string();
    let closed = call(
        &h,
        "files/upload_session/append_v2",
        json!({"cursor": {"session_id": id, "offset": 3}}),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(closed.body["error"], json!({".tag": "closed"}));
}

#[tokio::test]
async fn concurrent_session_takes_aligned_pieces_in_any_order() {
    let h = start().await;
    let data: Vec<u8> = (0..2 * MIB4 + 123).map(|i| (i % 253) as u8).collect();
    let with_data = call(
        &h,
        "files/upload_session/start",
        json!({"session_type": {".tag": "concurrent"}}),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        with_data.body["error"],
        json!({".tag": "concurrent_session_data_not_allowed"})
    );
    let start = call(
        &h,
        "files/upload_session/start",
        json!({"session_type": "concurrent"}),
        vec![],
    )
    .await;
    let id = start.body["session_id"].as_str().unwrap().to_string();
    let append = |offset: usize, end: usize, close: bool| {
        let arg = json!({"cursor": {"session_id": id, "offset": offset}, "close": close});
        call(
            &h,
            "files/upload_session/append_v2",
            arg,
            data[offset..end].to_vec(),
        )
    };
    let odd_size = append(0, 100, false).await;
    assert_eq!(
        odd_size.body["error"],
        json!({".tag": "concurrent_session_invalid_data_size"})
    );
    let odd_offset = call(
        &h,
        "files/upload_session/append_v2",
        json!({"cursor": {"session_id": id, "offset": 5}}),
        vec![0; MIB4],
    )
    .await;
    assert_eq!(
        odd_offset.body["error"],
        json!({".tag": "concurrent_session_invalid_offset"})
    );

    assert_eq!(append(2 * MIB4, data.len(), true).await.status, 200);
    let early = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": data.len()}, "commit": {"path": "/c.bin"}}),
        vec![],
    )
    .await;
    assert_eq!(
        early.body["error"],
        json!({".tag": "concurrent_session_missing_data"})
    );
    assert_eq!(append(MIB4, 2 * MIB4, false).await.status, 200);
    assert_eq!(append(0, MIB4, false).await.status, 200);

    let wrong = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 1}, "commit": {"path": "/c.bin"}}),
        vec![],
    )
    .await;
    assert_eq!(wrong.summary(), "lookup_failed/incorrect_offset/..");
    let finish = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": data.len()}, "commit": {"path": "/c.bin"}}),
        vec![],
    )
    .await;
    assert_eq!(finish.status, 200, "{:?}", finish.body);
    assert_eq!(finish.body["size"], data.len());
    assert_eq!(finish.body["content_hash"], content_hash(&data));
    let (content, _) = h
        .download("/c.bin", Some(&format!("bytes={}-", 2 * MIB4)))
        .await;
    assert_eq!(content.status, 206);
}

/// A concurrent piece sent again after its first try landed (its answer lost) is refused as
/// the spec describes `incorrect_offset`, and so is one overlapping a piece already held; the
/// closing piece sent again is `closed`. None of them changes the session, which still
/// finishes with exactly the first bytes.
#[tokio::test]
async fn a_concurrent_piece_sent_twice_is_refused_and_changes_nothing() {
    let h = start().await;
    let data: Vec<u8> = (0..3 * MIB4 + 5).map(|i| (i % 241) as u8).collect();
    let start = call(
        &h,
        "files/upload_session/start",
        json!({"session_type": "concurrent"}),
        vec![],
    )
    .await;
    let id = start.body["session_id"].as_str().unwrap().to_string();
    let append = |offset: usize, body: Vec<u8>, close: bool| {
        let arg = json!({"cursor": {"session_id": id, "offset": offset}, "close": close});
        call(&h, "files/upload_session/append_v2", arg, body)
    };
    let piece = |offset: usize, end: usize| data[offset..end].to_vec();
    assert_eq!(append(MIB4, piece(MIB4, 2 * MIB4), false).await.status, 200);
    let again = append(MIB4, vec![0; MIB4], false).await;
    assert_eq!(
        again.body["error"],
        json!({".tag": "incorrect_offset", "correct_offset": 0})
    );
    assert_eq!(append(0, piece(0, MIB4), false).await.status, 200);
    let overlapping = append(0, vec![0; 2 * MIB4], false).await;
    assert_eq!(
        overlapping.body["error"],
        json!({".tag": "incorrect_offset", "correct_offset": 2 * MIB4})
    );
    assert_eq!(
        append(2 * MIB4, piece(2 * MIB4, 3 * MIB4), false)
            .await
            .status,
        200
    );
    let tail = piece(3 * MIB4, data.len());
    assert_eq!(append(3 * MIB4, tail.clone(), true).await.status, 200);
    let closing_again = append(3 * MIB4, tail, true).await;
    assert_eq!(closing_again.body["error"], json!({".tag": "closed"}));

    let finish = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": data.len()}, "commit": {"path": "/twice.bin"}}),
        vec![],
    )
    .await;
    assert_eq!(finish.status, 200, "{:?}", finish.body);
    assert_eq!(finish.body["content_hash"], content_hash(&data));
    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["concurrent_sessions"], 1, "{stats}");
    assert_eq!(
        stats["peak_appends_in_flight"], 1,
        "one append at a time: {stats}"
    );
}

/// A finish whose data does not match its content_hash stores nothing and leaves the session
/// as it was, so the same finish with the right bytes still succeeds.
#[tokio::test]
async fn a_finish_with_a_wrong_hash_of_its_own_data_changes_nothing() {
    let h = start().await;
    let start = call(&h, "files/upload_session/start", json!({}), b"abc".to_vec()).await;
    let id = start.body["session_id"].as_str().unwrap().to_string();
    let finish = |data: &'static [u8], hash: String| {
        call(
            &h,
            "files/upload_session/finish",
            json!({"cursor": {"session_id": id, "offset": 3}, "commit": {"path": "/f.txt"}, "content_hash": hash}),
            data.to_vec(),
        )
    };
    let wrong = finish(b"def", content_hash(b"xyz")).await;
    assert_eq!(wrong.summary(), "content_hash_mismatch/..");
    let missing = h.rpc("files/get_metadata", json!({"path": "/f.txt"})).await;
    assert_eq!(missing.status, 409, "nothing stored");
    let right = finish(b"def", content_hash(b"def")).await;
    assert_eq!(right.status, 200, "{:?}", right.body);
    assert_eq!(right.body["content_hash"], content_hash(b"abcdef"));
}

/// Sessions expire (Dropbox: after 7 days); an expired one is `not_found` to append and finish.
/// The realism hook shortens the lifetime at run time, and a bad setting is refused.
#[tokio::test]
async fn an_expired_session_is_not_found() {
    let h = start().await;
    let realism = json!({"session_lifetime_secs": 1});
    h.hook(reqwest::Method::PUT, "realism", Some(realism.clone()))
        .await;
    let in_force = h.hook(reqwest::Method::GET, "realism", None).await;
    assert_eq!(in_force["session_lifetime_secs"], 1, "{in_force}");
    assert_eq!(
        in_force["lag_ms"],
        serde_json::Value::Null,
        "unset models are off"
    );
    let start = call(&h, "files/upload_session/start", json!({}), b"abc".to_vec()).await;
    let id = start.body["session_id"].as_str().unwrap().to_string();
    let append = |offset: u64| {
        call(
            &h,
            "files/upload_session/append_v2",
            json!({"cursor": {"session_id": id, "offset": offset}}),
            b"d".to_vec(),
        )
    };
    assert_eq!(append(3).await.status, 200, "fresh, it takes data");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(append(4).await.summary(), "not_found/..");
    let finish = call(
        &h,
        "files/upload_session/finish",
        json!({"cursor": {"session_id": id, "offset": 4}, "commit": {"path": "/late.txt"}}),
        vec![],
    )
    .await;
    assert_eq!(finish.summary(), "lookup_failed/not_found/..");

    let refused = h
        .http
        .put(format!("{}/__emulator/realism", h.emulator.base_url()))
        .json(&json!({"no_such_model": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422, "an unknown model is refused");
}

#[test]
fn a_session_may_not_grow_past_dropboxs_largest_file() {
    use crate::sessions::{within_max_size, MAX_SESSION_BYTES};
    assert_eq!(MAX_SESSION_BYTES, 2_199_019_061_248);
    assert!(within_max_size(MAX_SESSION_BYTES - 10, 10));
    assert!(!within_max_size(MAX_SESSION_BYTES - 10, 11));
    assert!(!within_max_size(u64::MAX, 1));
}
