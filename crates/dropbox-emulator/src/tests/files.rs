//! Files routes: upload, metadata, download, listing, write operations, persistence.

use serde_json::json;

use super::{start, start_with, Harness};
use crate::content_hash::content_hash;

#[tokio::test]
async fn upload_then_metadata_and_ranged_download() {
    let h = start().await;
    let name = "/Docs/résumé 日本 🎉.txt";
    let up = h.upload(name, b"hello world").await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert!(
        up.body.get(".tag").is_none(),
        "FileMetadata from upload has no .tag"
    );
    assert_eq!(up.body["name"], "résumé 日本 🎉.txt");
    assert_eq!(up.body["path_lower"], "/docs/résumé 日本 🎉.txt");
    assert_eq!(up.body["size"], 11);
    assert_eq!(up.body["content_hash"], content_hash(b"hello world"));
    assert!(up.body["id"].as_str().unwrap().starts_with("id:"));
    assert!(up.body["rev"].as_str().unwrap().len() >= 9);
    assert_eq!(up.body["is_downloadable"], true);

    let meta = h
        .rpc(
            "files/get_metadata",
            json!({"path": "/DOCS/RÉSUMÉ 日本 🎉.TXT"}),
        )
        .await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.body[".tag"], "file");
    assert_eq!(meta.body["path_display"], "/Docs/résumé 日本 🎉.txt");
    let by_id = h
        .rpc("files/get_metadata", json!({"path": up.body["id"]}))
        .await;
    assert_eq!(by_id.body["rev"], up.body["rev"]);
    let folder = h.rpc("files/get_metadata", json!({"path": "/docs"})).await;
    assert_eq!(
        folder.body,
        json!({".tag": "folder", "name": "Docs", "id": folder.body["id"], "path_lower": "/docs", "path_display": "/Docs"})
    );

    let (whole, result) = h.download(name, None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, "hello world");
    let raw = whole.headers["dropbox-api-result"].to_str().unwrap();
    assert!(raw.is_ascii() && raw.contains("\\ud83c\\udf89"), "{raw}");
    let result = result.unwrap();
    assert_eq!(result["name"], "résumé 日本 🎉.txt");
    assert!(result.get(".tag").is_none());

    for (range, expected, content_range) in [
        ("bytes=0-4", "hello", "bytes 0-4/11"),
        ("bytes=6-", "world", "bytes 6-10/11"),
        ("bytes=-3", "rld", "bytes 8-10/11"),
    ] {
        let (part, _) = h.download(name, Some(range)).await;
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.body, expected);
        assert_eq!(part.headers["content-range"], content_range);
    }
    let (beyond, _) = h.download(name, Some("bytes=20-")).await;
    assert_eq!(beyond.status, 416);
}

#[tokio::test]
async fn arg_header_must_be_ascii_but_escapes_work() {
    let h = start().await;
    let response = h
        .http
        .post(h.url("files/upload"))
        .bearer_auth(&h.token)
        .header(
            "Dropbox-API-Arg",
            reqwest::header::HeaderValue::from_bytes("{\"path\":\"/é.txt\"}".as_bytes()).unwrap(),
        )
        .header("Content-Type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("Error in call to API function \"files/upload\""));

    let escaped = r#"{"path":"/caf\u00e9 \ud83c\udf89.txt","mode":"add"}"#;
    let up = h.upload_raw("files/upload", escaped, b"x".to_vec()).await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.body["name"], "café 🎉.txt");

    let unknown = h
        .upload_raw("files/upload", r#"{"path":"/a.txt","bogus":1}"#, vec![])
        .await;
    assert_eq!(unknown.status, 400);
    let missing = h
        .upload_raw("files/upload", r#"{"mode":"add"}"#, vec![])
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.body.as_str().unwrap().contains("missing field"));
}

#[tokio::test]
async fn content_types_are_enforced() {
    let h = start().await;
    let no_type = h
        .http
        .post(h.url("files/upload"))
        .bearer_auth(&h.token)
        .header("Dropbox-API-Arg", r#"{"path":"/e.txt"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 400, "empty upload without Content-Type");
    let wrong_rpc = h
        .http
        .post(h.url("files/get_metadata"))
        .bearer_auth(&h.token)
        .header("Content-Type", "text/plain")
        .body(r#"{"path":"/x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_rpc.status(), 400);
    let charset = h
        .http
        .post(h.url("files/get_metadata"))
        .bearer_auth(&h.token)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(r#"{"path":"/x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(charset.status(), 409);
    let empty = h
        .upload_raw("files/upload", r#"{"path":"/empty.txt"}"#, vec![])
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["content_hash"], content_hash(b""));
}

#[tokio::test]
async fn root_path_rules() {
    let h = start().await;
    assert_eq!(
        h.rpc("files/list_folder", json!({"path": "/"}))
            .await
            .status,
        400
    );
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": ""}))
            .await
            .status,
        400
    );
    let trailing = h.rpc("files/get_metadata", json!({"path": "/a/"})).await;
    assert_eq!(trailing.status, 409);
    assert_eq!(trailing.summary(), "path/malformed_path/..");
    let root = h.rpc("files/list_folder", json!({"path": ""})).await;
    assert_eq!(root.status, 200);
    assert_eq!(root.body["entries"], json!([]));
}

#[tokio::test]
async fn list_folder_pages_and_continues() {
    let h = start_with(tempfile::TempDir::new().unwrap(), 3).await;
    for i in 0..7 {
        assert_eq!(h.upload(&format!("/P/f{i}.txt"), b"x").await.status, 200);
    }
    h.upload("/P/sub/deep.txt", b"y").await;
    let mut seen = Vec::new();
    let mut page = h.rpc("files/list_folder", json!({"path": "/p"})).await;
    loop {
        assert_eq!(page.status, 200, "{:?}", page.body);
        let entries = page.body["entries"].as_array().unwrap().clone();
        assert!(entries.len() <= 3);
        seen.extend(
            entries
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string()),
        );
        if page.body["has_more"] == false {
            break;
        }
        page = h
            .rpc(
                "files/list_folder/continue",
                json!({"cursor": page.body["cursor"]}),
            )
            .await;
    }
    assert_eq!(seen.len(), 8, "{seen:?}"); // 7 files + the sub folder, not deep.txt
    assert!(seen.contains(&"sub".to_string()));

    let limited = h
        .rpc(
            "files/list_folder",
            json!({"path": "/P", "recursive": true, "limit": 2}),
        )
        .await;
    assert_eq!(limited.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(
        limited.body["entries"][0]["path_lower"], "/p",
        "recursive starts with the folder"
    );
    assert_eq!(
        h.rpc("files/list_folder", json!({"path": "", "limit": 0}))
            .await
            .status,
        400
    );

    let reset = h
        .rpc("files/list_folder/continue", json!({"cursor": "garbage"}))
        .await;
    assert_eq!(reset.status, 409);
    assert_eq!(reset.body["error"], json!({".tag": "reset"}));
}

#[tokio::test]
async fn route_errors_have_the_spec_nesting() {
    let h = start().await;
    let missing = h.rpc("files/get_metadata", json!({"path": "/nope"})).await;
    assert_eq!(missing.status, 409);
    assert_eq!(
        missing.body["error"],
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );
    assert_eq!(missing.summary(), "path/not_found/..");

    h.upload("/f.txt", b"one").await;
    let conflict = h.upload("/f.txt", b"two").await;
    assert_eq!(conflict.status, 409);
    let error = &conflict.body["error"];
    assert_eq!(error[".tag"], "path");
    assert_eq!(
        error["reason"],
        json!({".tag": "conflict", "conflict": {".tag": "file"}})
    );
    assert!(error["upload_session_id"]
        .as_str()
        .unwrap()
        .starts_with("pid_upload_session:"));
    let same = h.upload("/f.txt", b"one").await;
    assert_eq!(same.status, 200, "identical content is no conflict");

    let folder = h
        .rpc("files/create_folder_v2", json!({"path": "/Dir"}))
        .await;
    assert_eq!(folder.status, 200);
    assert!(folder.body["metadata"].get(".tag").is_none());
    let again = h
        .rpc("files/create_folder_v2", json!({"path": "/dir"}))
        .await;
    assert_eq!(
        again.body["error"],
        json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "folder"}}})
    );
    let renamed = h
        .rpc(
            "files/create_folder_v2",
            json!({"path": "/dir", "autorename": true}),
        )
        .await;
    assert_eq!(renamed.body["metadata"]["name"], "dir (1)");

    let (not_file, _) = h.download("/Dir", None).await;
    assert_eq!(not_file.summary(), "path/not_file/..");
    let not_folder = h.rpc("files/list_folder", json!({"path": "/f.txt"})).await;
    assert_eq!(not_folder.summary(), "path/not_folder/..");
    let under_file = h.upload("/f.txt/x.txt", b"z").await;
    assert_eq!(under_file.summary(), "path/conflict/file_ancestor/..");
    let disallowed = h.upload("/Dir/Thumbs.db", b"z").await;
    assert_eq!(disallowed.summary(), "path/disallowed_name/..");

    let bad_hash = h
        .upload_raw(
            "files/upload",
            &json!({"path": "/h.txt", "content_hash": "0".repeat(64)}).to_string(),
            b"data".to_vec(),
        )
        .await;
    assert_eq!(
        bad_hash.body["error"],
        json!({".tag": "content_hash_mismatch"})
    );
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/h.txt"}))
            .await
            .status,
        409,
        "nothing stored"
    );
}

#[tokio::test]
async fn write_modes_follow_the_spec() {
    let h = start().await;
    let first = h.upload("/m.txt", b"v1").await;
    let rev = first.body["rev"].as_str().unwrap().to_string();
    let overwrite = h
        .upload_raw(
            "files/upload",
            r#"{"path":"/m.txt","mode":"overwrite"}"#,
            b"v2".to_vec(),
        )
        .await;
    assert_eq!(overwrite.body["id"], first.body["id"]);
    assert_ne!(overwrite.body["rev"], first.body["rev"]);
    let stale = json!({"path": "/m.txt", "mode": {".tag": "update", "update": rev}}).to_string();
    let stale_update = h.upload_raw("files/upload", &stale, b"v3".to_vec()).await;
    assert_eq!(stale_update.summary(), "path/conflict/file/..");
    let stale_rename =
        json!({"path": "/m.txt", "mode": {".tag": "update", "update": rev}, "autorename": true});
    let copy = h
        .upload_raw("files/upload", &stale_rename.to_string(), b"v3".to_vec())
        .await;
    assert_eq!(copy.body["name"], "m (conflicted copy).txt");
    let added = h
        .upload_raw(
            "files/upload",
            r#"{"path":"/m.txt","autorename":true,"client_modified":"2020-01-02T03:04:05Z"}"#,
            b"v4".to_vec(),
        )
        .await;
    assert_eq!(added.body["name"], "m (1).txt");
    assert_eq!(added.body["client_modified"], "2020-01-02T03:04:05Z");
}

#[tokio::test]
async fn delete_is_recursive_and_moves_check_conflicts() {
    let h = start().await;
    h.upload("/A/one.txt", b"first").await;
    h.upload("/A/B/two.txt", b"2").await;
    h.upload("/C/three.txt", b"3").await;

    let into_itself = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/A", "to_path": "/A/B/A"}),
        )
        .await;
    assert_eq!(
        into_itself.body["error"],
        json!({".tag": "cant_move_folder_into_itself"})
    );
    let conflict = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/A/one.txt", "to_path": "/C/three.txt"}),
        )
        .await;
    assert_eq!(
        conflict.body["error"],
        json!({".tag": "to", "to": {".tag": "conflict", "conflict": {".tag": "file"}}})
    );
    let missing = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/zz", "to_path": "/yy"}),
        )
        .await;
    assert_eq!(missing.summary(), "from_lookup/not_found/..");

    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/A", "to_path": "/New/Place"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["metadata"][".tag"], "folder");
    assert_eq!(moved.body["metadata"]["path_display"], "/New/Place");
    let deep = h
        .rpc(
            "files/get_metadata",
            json!({"path": "/new/place/b/two.txt"}),
        )
        .await;
    assert_eq!(deep.body["path_display"], "/New/Place/B/two.txt");
    let case = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/New/Place", "to_path": "/New/PLACE"}),
        )
        .await;
    assert_eq!(case.status, 200, "{:?}", case.body);
    assert_eq!(
        case.body["metadata"]["name"], "Place",
        "a case-only move changes nothing"
    );

    let copied = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/New/PLACE/one.txt", "to_path": "/copy.txt"}),
        )
        .await;
    assert_eq!(copied.body["metadata"][".tag"], "file");
    let (content, _) = h.download("/copy.txt", None).await;
    assert_eq!(content.body, "first");

    let deleted = h.rpc("files/delete_v2", json!({"path": "/New"})).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["metadata"][".tag"], "folder");
    let gone = h
        .rpc(
            "files/get_metadata",
            json!({"path": "/New/PLACE/B/two.txt"}),
        )
        .await;
    assert_eq!(gone.summary(), "path/not_found/..");
    let again = h.rpc("files/delete_v2", json!({"path": "/New"})).await;
    assert_eq!(
        again.body["error"],
        json!({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
    );
}

#[tokio::test]
async fn files_survive_a_restart() {
    let h = start().await;
    let up = h.upload("/Keep/it.txt", b"persisted").await;
    let Harness { emulator, root, .. } = h;
    emulator.shutdown().await;
    let h = start_with(root, 500).await;
    let meta = h
        .rpc("files/get_metadata", json!({"path": "/keep/IT.txt"}))
        .await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.body["rev"], up.body["rev"]);
    assert_eq!(meta.body["id"], up.body["id"]);
    let (content, _) = h.download("/Keep/it.txt", None).await;
    assert_eq!(content.body, "persisted");
}

#[tokio::test]
async fn oversized_upload_is_refused_and_changes_nothing() {
    let h = start().await;
    h.upload("/big.bin", b"original").await;
    let chunk = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
    // 151 MiB, streamed (no Content-Length), so the limit is enforced while receiving.
    let chunks = (0..151).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let response = h
        .http
        .post(h.url("files/upload"))
        .bearer_auth(&h.token)
        .header(
            "Dropbox-API-Arg",
            r#"{"path":"/big.bin","mode":"overwrite"}"#,
        )
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    // The emulator answers as soon as the limit is passed; the client may or may not get to
    // read that answer before the connection closes under its unsent body.
    if let Ok(response) = response {
        assert_eq!(response.status(), 409);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], json!({".tag": "payload_too_large"}));
    }
    let (content, _) = h.download("/big.bin", None).await;
    assert_eq!(content.body, "original");
}

/// With the lag model on, a fresh entry is not found by path to get_metadata, move, copy and
/// delete (each refusal changes nothing), while listings and lookups by id see it at once;
/// once the lag has passed, everything finds it.
#[tokio::test]
async fn fresh_entries_lag_behind_for_path_lookups_when_the_model_is_on() {
    let h = start().await;
    h.hook(
        reqwest::Method::PUT,
        "realism",
        Some(json!({"lag_ms": 1500})),
    )
    .await;
    let uploaded = h.upload("/fresh.txt", b"new").await;
    assert_eq!(uploaded.status, 200);
    let id = uploaded.body["id"].as_str().unwrap().to_string();

    let by_path = h
        .rpc("files/get_metadata", json!({"path": "/fresh.txt"}))
        .await;
    assert_eq!(by_path.summary(), "path/not_found/..");
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/fresh.txt", "to_path": "/moved.txt"}),
        )
        .await;
    assert_eq!(moved.summary(), "from_lookup/not_found/..");
    let copied = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/fresh.txt", "to_path": "/copy.txt"}),
        )
        .await;
    assert_eq!(copied.summary(), "from_lookup/not_found/..");
    let deleted = h
        .rpc("files/delete_v2", json!({"path": "/fresh.txt"}))
        .await;
    assert_eq!(deleted.summary(), "path_lookup/not_found/..");
    let by_id = h.rpc("files/get_metadata", json!({"path": id})).await;
    assert_eq!(by_id.status, 200, "found by id at once");
    let listing = h.rpc("files/list_folder", json!({"path": ""})).await;
    let names: Vec<&str> = listing.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["fresh.txt"],
        "listed at once, and nothing else appeared"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/fresh.txt", "to_path": "/moved.txt"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
}

/// A download ranged request whose body is left unread.
async fn start_download(h: &Harness, path: &str, range: &str) -> reqwest::Response {
    h.http
        .post(h.url("files/download"))
        .bearer_auth(&h.token)
        .header("Dropbox-API-Arg", json!({ "path": path }).to_string())
        .header("Range", range)
        .send()
        .await
        .unwrap()
}

/// Download bodies count as in flight until they are sent or dropped; the peak says how many
/// overlapped, and a reset starts it again from those in flight.
#[tokio::test]
async fn downloads_in_flight_and_their_peak_are_counted() {
    let h = start().await;
    // Far more than loopback socket buffers hold, so an unread body stays in flight.
    h.upload("/big.bin", &vec![1u8; 48 * 1024 * 1024]).await;
    let stats = |h| Harness::hook(h, reqwest::Method::GET, "stats", None);
    let first = start_download(&h, "/big.bin", "bytes=0-").await;
    let second = start_download(&h, "/big.bin", "bytes=1000-").await;
    let during = stats(&h).await;
    assert_eq!(during["downloads_in_flight"], 2, "{during}");
    assert_eq!(during["peak_downloads_in_flight"], 2, "{during}");

    drop((first, second));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats(&h).await["downloads_in_flight"] != 0 {
        assert!(std::time::Instant::now() < deadline, "bodies never ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stats(&h).await["peak_downloads_in_flight"], 2);
    h.hook(reqwest::Method::DELETE, "stats", None).await;
    assert_eq!(stats(&h).await["peak_downloads_in_flight"], 0);
}

/// `cut_body` lets the head and `after_bytes` of the body through, then breaks the connection:
/// the client sees a transfer fail half way, not a short success.
#[tokio::test]
async fn a_cut_body_fault_breaks_the_transfer_after_the_given_bytes() {
    let h = start().await;
    h.upload("/cut.bin", &vec![2u8; 1024 * 1024]).await;
    let rule =
        json!({"kind": "cut_body", "route": "files/download", "count": 1, "after_bytes": 1000});
    h.hook(
        reqwest::Method::POST,
        "faults",
        Some(json!({ "rules": [rule] })),
    )
    .await;

    let mut response = start_download(&h, "/cut.bin", "bytes=0-").await;
    assert_eq!(response.status(), 206);
    let mut received = 0;
    let failure = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => panic!("the body ended cleanly after {received} bytes"),
            Err(e) => break e,
        }
    };
    assert_eq!(received, 1000, "{failure}");
    // The rule was used up: the next download is whole.
    let (whole, _) = h.download("/cut.bin", Some("bytes=0-")).await;
    assert_eq!(whole.status, 206);
    assert_eq!(whole.headers["content-length"], "1048576");
}
