//! Names as Dropbox stores them: NFC, 255 characters per name, case-only moves, and the
//! realism model that refuses characters beyond the BMP.

use serde_json::json;

use super::start;

const NFC: &str = "/Caf\u{e9} d\u{e9}j\u{e0}.txt";
const NFD: &str = "/Cafe\u{301} de\u{301}ja\u{300}.txt";

#[tokio::test]
async fn an_nfd_name_is_stored_nfc_and_found_by_either_spelling() {
    let h = start().await;
    let stored = h.upload(NFD, b"accents").await;
    assert_eq!(stored.status, 200, "{:?}", stored.body);
    assert_eq!(stored.body["path_display"], NFC);

    let listing = h.rpc("files/list_folder", json!({"path": ""})).await;
    let names: Vec<&str> = listing.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![&NFC[1..]]);
    for spelling in [NFC, NFD] {
        let found = h.rpc("files/get_metadata", json!({"path": spelling})).await;
        assert_eq!(found.body["path_display"], NFC, "{spelling:?}");
    }
    // One file, not two: the other spelling in `add` mode with other content is a conflict.
    let again = h.upload(NFC, b"other").await;
    assert_eq!(again.status, 409, "{:?}", again.body);
}

#[tokio::test]
async fn a_name_is_limited_to_255_characters_not_bytes() {
    let h = start().await;
    let longest = format!("/{}", "日".repeat(255));
    let stored = h.upload(&longest, b"x").await;
    assert_eq!(
        stored.status, 200,
        "765 bytes, 255 characters: {:?}",
        stored.body
    );
    let too_long = format!("/{}", "日".repeat(256));
    let refused = h.upload(&too_long, b"x").await;
    assert_eq!(
        refused.summary(),
        "path/malformed_path/..",
        "{:?}",
        refused.body
    );
}

#[tokio::test]
async fn a_case_only_move_answers_ok_and_changes_nothing() {
    let h = start().await;
    let before = h.upload("/a.txt", b"a").await;
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/a.txt", "to_path": "/A.txt"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let after = h.rpc("files/get_metadata", json!({"path": "/A.TXT"})).await;
    assert_eq!(after.body["path_display"], "/a.txt");
    assert_eq!(after.body["rev"], before.body["rev"], "not even a new rev");
    // Through another name it works, as clients do it.
    for (from, to) in [("/a.txt", "/tmp.txt"), ("/tmp.txt", "/A.txt")] {
        let step = h
            .rpc("files/move_v2", json!({"from_path": from, "to_path": to}))
            .await;
        assert_eq!(step.status, 200, "{:?}", step.body);
    }
    let renamed = h.rpc("files/get_metadata", json!({"path": "/a.txt"})).await;
    assert_eq!(renamed.body["path_display"], "/A.txt");
}

#[tokio::test]
async fn the_non_bmp_model_refuses_emoji_names_as_malformed_path() {
    let h = start().await;
    let emoji = "/party \u{1f389}.txt";
    let stored = h.upload(emoji, b"model off").await;
    assert_eq!(
        stored.status, 200,
        "off, the name is stored: {:?}",
        stored.body
    );

    h.set_realism(json!({"refuse_non_bmp_names": {}})).await;
    let upload = h.upload("/more \u{1f600}.txt", b"x").await;
    assert_eq!(
        upload.summary(),
        "path/malformed_path/..",
        "{:?}",
        upload.body
    );
    let folder = h
        .rpc(
            "files/create_folder_v2",
            json!({"path": "/\u{1f4c1} folder"}),
        )
        .await;
    assert_eq!(
        folder.summary(),
        "path/malformed_path/..",
        "{:?}",
        folder.body
    );
    h.upload("/plain.txt", b"p").await;
    let moved = h
        .rpc(
            "files/move_v2",
            json!({"from_path": "/plain.txt", "to_path": "/sub/\u{1f600}/plain.txt"}),
        )
        .await;
    assert_eq!(moved.summary(), "to/malformed_path/..", "{:?}", moved.body);
    // Characters inside the BMP are fine, and nothing of the refused writes exists.
    assert_eq!(
        h.upload("/r\u{e9}sum\u{e9} \u{2603}.txt", b"s")
            .await
            .status,
        200
    );
    for path in ["/more \u{1f600}.txt", "/\u{1f4c1} folder", "/sub"] {
        let found = h.rpc("files/get_metadata", json!({"path": path})).await;
        assert_eq!(found.summary(), "path/not_found/..", "{path}");
    }

    h.set_realism(json!({})).await;
    assert_eq!(h.upload("/more \u{1f600}.txt", b"x").await.status, 200);
}
