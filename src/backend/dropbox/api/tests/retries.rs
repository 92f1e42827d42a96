//! The retry policy against the emulator's injected faults: what is sent again, with which
//! body, and what is left to the caller; and that an upload to a silent server does not hang.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;

/// An upload body factory that counts how many bodies it made.
fn counted_body(bytes: &'static [u8]) -> (UploadBody, Arc<AtomicU32>) {
    let made = Arc::new(AtomicU32::new(0));
    let counter = made.clone();
    let body = UploadBody::factory(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        // A stream, like the spool's: it could not be replayed by cloning.
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(bytes))]);
        async move { Ok(Body::wrap_stream(stream)) }
    });
    (body, made)
}

fn overwrite(path: &str, bytes: &[u8]) -> UploadArg {
    let mut arg = UploadArg::new(path, WriteMode::Overwrite);
    arg.content_hash = Some(content_hash(bytes));
    arg
}

#[tokio::test]
async fn overwrite_uploads_are_sent_again_with_a_fresh_body() {
    let h = Harness::start(500).await;
    let client = h.refreshing_client();
    for kind in ["drop_before", "drop_after", "status_503", "expired_token"] {
        h.faults(json!([{ "kind": kind, "route": "files/upload", "count": 1 }]))
            .await;
        let before = retries_made();
        let (body, made) = counted_body(b"payload");
        let file = client
            .upload(&overwrite("/o.txt", b"payload"), body)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(file.content_hash.unwrap(), content_hash(b"payload"));
        assert_eq!(made.load(Ordering::SeqCst), 2, "{kind}");
        assert!(retries_made() > before, "{kind}");
    }
}

#[tokio::test]
async fn uploads_that_add_are_not_repeated_after_an_ambiguous_failure() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    h.faults(json!([{ "kind": "drop_after", "route": "files/upload", "count": 1 }]))
        .await;
    let (body, made) = counted_body(b"once");
    let mut arg = UploadArg::new("/a.txt", WriteMode::Add);
    arg.content_hash = Some(content_hash(b"once"));
    let err = client.upload(&arg, body).await.unwrap_err();
    assert!(matches!(err, DropboxError::Transport(_)), "{err:?}");
    assert_eq!(made.load(Ordering::SeqCst), 1);

    // But a 429 proves nothing happened: sent again.
    h.faults(
        json!([{ "kind": "status_429", "route": "files/upload", "count": 1, "retry_after": 0 }]),
    )
    .await;
    let (body, made) = counted_body(b"twice");
    let mut arg = UploadArg::new("/b.txt", WriteMode::Add);
    arg.content_hash = Some(content_hash(b"twice"));
    client.upload(&arg, body).await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn too_many_write_operations_is_retried_even_for_writes() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let body = json!({"error_summary": "path/too_many_write_operations/..",
        "error": {".tag": "path", "reason": {".tag": "too_many_write_operations"}}});
    h.faults(json!([{ "kind": "error", "status": 409, "body": body,
        "route": "files/create_folder_v2", "count": 2 }]))
        .await;
    client.create_folder("/busy").await.unwrap();
    assert_eq!(h.count("files/create_folder_v2").await, 3);
}

/// The faults after which a change may or may not have landed, and how many times it is sent
/// for each: once if it landed (found by the look), twice if not.
const AMBIGUOUS: [(&str, u64); 3] = [("drop_after", 1), ("drop_before", 2), ("status_503", 2)];

#[tokio::test]
async fn every_change_survives_a_lost_answer_and_is_sent_again_only_if_it_did_not_land() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    for (kind, sends) in AMBIGUOUS {
        let fault = |route: &str| json!([{ "kind": kind, "route": route, "count": 1 }]);
        let dir = format!("/{kind}");
        let count = |route| h.count(route);

        let before = count("files/create_folder_v2").await;
        h.faults(fault("files/create_folder_v2")).await;
        let folder = client
            .create_folder(&dir)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(folder.name, kind);
        assert_eq!(
            count("files/create_folder_v2").await - before,
            sends,
            "{kind}"
        );

        put(&client, &format!("{dir}/a.txt"), b"alpha").await;
        let a = client.get_metadata(&format!("{dir}/a.txt")).await.unwrap();
        let before = count("files/move_v2").await;
        h.faults(fault("files/move_v2")).await;
        let moved = client
            .move_entry(
                &format!("{dir}/a.txt"),
                &format!("{dir}/b.txt"),
                a.id().unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!((moved.name(), moved.id()), ("b.txt", a.id()));
        assert_eq!(count("files/move_v2").await - before, sends, "{kind}");

        let before = count("files/copy_v2").await;
        h.faults(fault("files/copy_v2")).await;
        let copy = client
            .copy_entry(&format!("{dir}/b.txt"), &format!("{dir}/c.txt"))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(copy.name(), "c.txt");
        assert_eq!(count("files/copy_v2").await - before, sends, "{kind}");

        let before = count("files/delete_v2").await;
        h.faults(fault("files/delete_v2")).await;
        client
            .delete(&format!("{dir}/b.txt"))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(count("files/delete_v2").await - before, sends, "{kind}");

        let names = |page: ListFolderResult| {
            page.entries
                .iter()
                .map(|e| e.name().to_owned())
                .collect::<Vec<_>>()
        };
        let listing = client.list_folder(&dir, None).await.unwrap();
        assert_eq!(names(listing), ["c.txt"], "{kind}");
    }
}

#[tokio::test]
async fn a_folder_that_was_there_before_is_still_a_conflict() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    client.create_folder("/old").await.unwrap();
    let err = client.create_folder("/old").await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        h.count("files/get_metadata").await,
        0,
        "a plain refusal needs no look"
    );
    // Moving onto an existing entry is refused as plainly.
    put(&client, "/f.txt", b"f").await;
    let f = client.get_metadata("/f.txt").await.unwrap();
    let err = client
        .move_entry("/f.txt", "/old", f.id().unwrap())
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
}

#[tokio::test]
async fn a_landed_try_then_the_namespace_lock_on_every_repeat_is_still_found_landed() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let locked = json!({"error_summary": "path/too_many_write_operations/..",
        "error": {".tag": "path", "reason": {".tag": "too_many_write_operations"}}});
    // The first try lands but its answer is lost; every repeat meets the lock (more often than
    // the transport's own retries).
    h.faults(json!([
        { "kind": "drop_after", "route": "files/upload", "count": 1 },
        { "kind": "error", "status": 409, "body": locked, "route": "files/upload" },
    ]))
    .await;
    let body: Arc<dyn BodyFactory> =
        Arc::new(|| async { Ok::<_, std::io::Error>(Body::from("landed")) });
    let file = client
        .upload_checked(
            &overwrite("/soak.txt", b"landed"),
            body,
            &content_hash(b"landed"),
        )
        .await
        .unwrap();
    assert_eq!(file.content_hash.unwrap(), content_hash(b"landed"));
    // Not a try more than it took to find it.
    assert_eq!(h.count("files/upload").await, 1);
    h.faults(json!([])).await;
}

#[tokio::test]
async fn a_repeated_append_that_had_landed_reports_where_the_session_stands() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let session_id = client
        .upload_session_start(&UploadSessionStartArg::default(), Vec::new())
        .await
        .unwrap();
    h.faults(
        json!([{ "kind": "drop_after", "route": "files/upload_session/append_v2", "count": 1 }]),
    )
    .await;
    let arg = UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: session_id.clone(),
            offset: 0,
        },
        close: false,
        content_hash: None,
    };
    let (body, made) = counted_body(b"abc");
    let err = client.upload_session_append(&arg, body).await.unwrap_err();
    // The retry found the bytes there; the caller (the upload pipeline) counts this as done.
    assert_eq!(err.correct_offset(), Some(3), "{err:?}");
    assert_eq!(made.load(Ordering::SeqCst), 2);
}

/// A piece of a concurrent session: its first try lands but its answer is lost, so the repeat
/// meets the piece already there (the emulator refuses it, as the spec describes
/// `incorrect_offset`; the closing piece's repeat is `closed`): that is the first try's
/// success. The same refusal without a try that may have landed is a failure.
#[tokio::test]
async fn a_concurrent_piece_whose_answer_was_lost_is_taken_as_landed_only_after_a_lost_try() {
    const MIB4: usize = 4 * 1024 * 1024;
    let h = Harness::start(500).await;
    let client = h.static_client();
    let data: &'static [u8] = Box::leak(
        (0..MIB4 + 3)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let start = UploadSessionStartArg {
        session_type: Some(SessionType::Concurrent),
        ..UploadSessionStartArg::default()
    };
    let session_id = client
        .upload_session_start(&start, Vec::new())
        .await
        .unwrap();
    let arg = |offset: usize, close: bool| UploadSessionAppendArg {
        cursor: UploadSessionCursor {
            session_id: session_id.clone(),
            offset: offset as u64,
        },
        close,
        content_hash: None,
    };
    let piece = |bytes: &'static [u8]| {
        let (body, made) = counted_body(bytes);
        let UploadBody::Factory(factory) = body else {
            unreachable!("counted bodies are factories")
        };
        (factory, made)
    };
    for (offset, end, close) in [(0, MIB4, false), (MIB4, data.len(), true)] {
        h.faults(json!([{ "kind": "drop_after", "route": "files/upload_session/append_v2", "count": 1 }]))
            .await;
        let (body, made) = piece(&data[offset..end]);
        client
            .upload_session_append_piece(&arg(offset, close), body)
            .await
            .unwrap_or_else(|e| panic!("piece at {offset}: {e:?}"));
        assert_eq!(made.load(Ordering::SeqCst), 2, "piece at {offset}");
    }
    let (body, made) = piece(&data[..MIB4]);
    let err = client
        .upload_session_append_piece(&arg(0, false), body)
        .await
        .unwrap_err();
    assert!(err.has_tag("incorrect_offset"), "{err:?}");
    assert_eq!(
        made.load(Ordering::SeqCst),
        1,
        "a plain refusal is not repeated"
    );

    let finish = UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id: session_id.clone(),
            offset: data.len() as u64,
        },
        commit: CommitInfo::new("/pieces.bin", WriteMode::Overwrite),
        content_hash: None,
    };
    let file = client
        .upload_session_finish_checked(&finish, &content_hash(data))
        .await
        .unwrap();
    assert_eq!(file.size, data.len() as u64);
}

#[tokio::test]
async fn a_finish_whose_answer_was_lost_is_found_by_its_hash() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    for (path, kind) in [("/lost.bin", "drop_after"), ("/never.bin", "drop_before")] {
        let session_id = client
            .upload_session_start(&UploadSessionStartArg::default(), "0123456789")
            .await
            .unwrap();
        h.faults(json!([{ "kind": kind, "route": "files/upload_session/finish", "count": 1 }]))
            .await;
        let finishes = h.count("files/upload_session/finish").await;
        let arg = UploadSessionFinishArg {
            cursor: UploadSessionCursor {
                session_id,
                offset: 10,
            },
            commit: CommitInfo::new(path, WriteMode::Overwrite),
            content_hash: None,
        };
        let file = client
            .upload_session_finish_checked(&arg, &content_hash(b"0123456789"))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(file.size, 10);
        let sent = h.count("files/upload_session/finish").await - finishes;
        // Landed: found by get_metadata, not sent again. Not landed: sent again.
        let expected = if kind == "drop_after" { 1 } else { 2 };
        assert_eq!(sent, expected, "{kind}");
    }
    // A finish is never simply repeated on its own.
    h.faults(json!([{ "kind": "status_503", "route": "files/upload_session/finish", "count": 1 }]))
        .await;
    let session_id = client
        .upload_session_start(&UploadSessionStartArg::default(), "x")
        .await
        .unwrap();
    let arg = UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id,
            offset: 1,
        },
        commit: CommitInfo::new("/plain.bin", WriteMode::Overwrite),
        content_hash: None,
    };
    let err = client
        .upload_session_finish(&arg, Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DropboxError::Server { status: 503 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn token_endpoint_faults_are_ridden_out() {
    let h = Harness::start(500).await;
    let client = h.refreshing_client();
    h.faults(json!([{ "kind": "status_503", "route": "oauth2/token", "count": 2 }]))
        .await;
    client.get_current_account().await.unwrap();
}

#[tokio::test]
async fn an_upload_to_a_server_that_never_answers_times_out() {
    // Accepts, reads everything, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut socket, &mut sink).await;
            });
        }
    });
    let endpoints = Endpoints::all(&format!("http://{addr}")).unwrap();
    let mut options = ClientOptions::new(
        endpoints,
        Credentials::AccessToken(demo::ACCESS_TOKEN.into()),
    );
    options.request_timeout = Duration::from_millis(300);
    let retry = RetryPolicy {
        max_attempts: 2,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        rate_limit_wait: Duration::from_secs(1),
        deadline: Duration::from_secs(5),
    };
    let client = DropboxClient::with_retry(options, retry).unwrap();
    let started = std::time::Instant::now();
    let (body, made) = counted_body(b"bytes");
    let err = client
        .upload(&overwrite("/x", b"bytes"), body)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(made.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = client.get_metadata("/x").await.unwrap_err();
    assert!(matches!(err, DropboxError::Transport(_)), "{err:?}");
}
