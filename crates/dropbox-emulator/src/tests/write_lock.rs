//! The `write_lock` model over real sockets: overlapping commits in one namespace, each route's
//! refusal in both shapes, and what is left unchanged by a refused commit.

use std::future::Future;

use serde_json::{json, Value};

use super::{start, Answer, Harness};

/// Turns the model on with a hold long enough that a second request surely overlaps.
async fn lock(h: &Harness, shape: &str) {
    let realism = json!({ "write_lock": { "hold_ms": 400, "shape": shape } });
    h.hook(reqwest::Method::PUT, "realism", Some(realism)).await;
}

/// Runs `first`, and `second` once `first` surely holds the lock; both answers.
async fn overlapping<A, B>(first: A, second: B) -> (Answer, Answer)
where
    A: Future<Output = Answer>,
    B: Future<Output = Answer>,
{
    let later = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        second.await
    };
    tokio::join!(first, later)
}

fn upload_arg(path: &str) -> String {
    json!({ "path": path, "mode": "add" }).to_string()
}

#[tokio::test]
async fn overlapping_commits_are_refused_with_each_routes_member() {
    let h = start().await;
    h.upload("/src.txt", b"source").await;
    lock(&h, "route_error").await;

    let cases: [(&str, Value, &str); 4] = [
        (
            "files/create_folder_v2",
            json!({ "path": "/b" }),
            "path/too_many_write_operations/..",
        ),
        (
            "files/delete_v2",
            json!({ "path": "/src.txt" }),
            "too_many_write_operations/..",
        ),
        (
            "files/copy_v2",
            json!({ "from_path": "/src.txt", "to_path": "/copy.txt" }),
            "to/too_many_write_operations/..",
        ),
        (
            "files/move_v2",
            json!({ "from_path": "/src.txt", "to_path": "/moved.txt" }),
            "to/too_many_write_operations/..",
        ),
    ];
    for (i, (route, arg, summary)) in cases.iter().enumerate() {
        let folder = format!("/holder{i}");
        let (first, second) = overlapping(
            h.rpc("files/create_folder_v2", json!({ "path": folder })),
            h.rpc(route, arg.clone()),
        )
        .await;
        assert_eq!(first.status, 200, "{:?}", first.body);
        assert_eq!(
            (second.status, second.summary()),
            (409, *summary),
            "{route}"
        );
    }
    // Nothing was done by the refused commits.
    let source = h
        .rpc("files/get_metadata", json!({ "path": "/src.txt" }))
        .await;
    assert_eq!(source.status, 200);
    for path in ["/b", "/copy.txt", "/moved.txt"] {
        let gone = h.rpc("files/get_metadata", json!({ "path": path })).await;
        assert_eq!(gone.status, 409, "{path}");
    }

    // files/upload: UploadWriteFailed, with the session that holds the bytes.
    let (first, second) = overlapping(
        h.rpc("files/create_folder_v2", json!({ "path": "/holder-u" })),
        h.upload_raw("files/upload", &upload_arg("/u.txt"), b"u".to_vec()),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 409);
    assert_eq!(second.summary(), "path/too_many_write_operations/..");
    assert!(
        second.body["error"]["upload_session_id"].is_string(),
        "{:?}",
        second.body
    );

    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["write_lock_refusals"], 5);
}

#[tokio::test]
async fn a_refused_finish_can_be_sent_again_as_it_was() {
    let h = start().await;
    let started = h
        .upload_raw("files/upload_session/start", "{}", b"0123456789".to_vec())
        .await;
    let session_id = started.body["session_id"].as_str().unwrap().to_string();
    let finish = json!({
        "cursor": { "session_id": session_id, "offset": 10 },
        "commit": { "path": "/s.bin", "mode": "add" },
    })
    .to_string();
    lock(&h, "route_error").await;

    let (first, refused) = overlapping(
        h.rpc("files/create_folder_v2", json!({ "path": "/holder" })),
        h.upload_raw("files/upload_session/finish", &finish, Vec::new()),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        (refused.status, refused.summary()),
        (409, "too_many_write_operations/..")
    );

    let again = h
        .upload_raw("files/upload_session/finish", &finish, Vec::new())
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["size"], 10);
}

#[tokio::test]
async fn the_rate_limit_shape_is_a_429_and_alternate_gives_both() {
    let h = start().await;
    let realism =
        json!({ "write_lock": { "hold_ms": 400, "shape": "rate_limit", "retry_after": 2 } });
    h.hook(reqwest::Method::PUT, "realism", Some(realism)).await;
    let (_, refused) = overlapping(
        h.rpc("files/create_folder_v2", json!({ "path": "/a" })),
        h.rpc("files/create_folder_v2", json!({ "path": "/b" })),
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.summary(), "too_many_write_operations/..");
    assert_eq!(refused.body["error"]["retry_after"], 2);
    assert_eq!(refused.headers["retry-after"], "2");

    lock(&h, "alternate").await;
    let mut statuses = Vec::new();
    for name in ["c", "d"] {
        let (_, refused) = overlapping(
            h.rpc(
                "files/create_folder_v2",
                json!({ "path": format!("/{name}1") }),
            ),
            h.rpc(
                "files/create_folder_v2",
                json!({ "path": format!("/{name}2") }),
            ),
        )
        .await;
        statuses.push(refused.status);
        assert!(refused.body["error"].get("retry_after").is_none());
    }
    statuses.sort();
    assert_eq!(statuses, [409, 429]);
}

#[tokio::test]
async fn a_client_that_waits_for_each_answer_never_meets_the_lock_and_off_means_off() {
    let h = start().await;
    lock(&h, "route_error").await;
    for name in ["a", "b", "c"] {
        let made = h
            .rpc(
                "files/create_folder_v2",
                json!({ "path": format!("/{name}") }),
            )
            .await;
        assert_eq!(made.status, 200, "{:?}", made.body);
    }
    h.hook(reqwest::Method::PUT, "realism", Some(json!({})))
        .await;
    let (first, second) = overlapping(
        h.rpc("files/create_folder_v2", json!({ "path": "/x" })),
        h.rpc("files/create_folder_v2", json!({ "path": "/y" })),
    )
    .await;
    assert_eq!((first.status, second.status), (200, 200));
}
