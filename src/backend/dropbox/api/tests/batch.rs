//! Group commit against the emulator: each entry of a batch answered on its own, a refused
//! entry sent again in a later batch, and a lost batch answer looked at before anything is
//! sent again.

use super::*;

/// A batch entry into `path` in `mode` for a session holding `bytes` (closed unless `open`).
async fn session_entry(
    client: &DropboxClient,
    path: &str,
    mode: WriteMode,
    bytes: &'static [u8],
    open: bool,
) -> UploadSessionFinishArg {
    let start = UploadSessionStartArg {
        close: !open,
        ..Default::default()
    };
    let session_id = client
        .upload_session_start(&start, Bytes::from_static(bytes))
        .await
        .unwrap();
    UploadSessionFinishArg {
        cursor: UploadSessionCursor {
            session_id,
            offset: bytes.len() as u64,
        },
        commit: CommitInfo::new(path, mode),
        content_hash: None,
    }
}

async fn batched(
    client: &DropboxClient,
    arg: UploadSessionFinishArg,
    bytes: &[u8],
) -> Result<FileMetadata, DropboxError> {
    client.finish_in_batch(arg, content_hash(bytes)).await
}

#[tokio::test]
async fn each_entry_gets_its_own_answer() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    put(&client, "/taken.txt", b"theirs").await;
    let fine = session_entry(&client, "/fine.txt", WriteMode::Add, b"fine", false).await;
    let refused = session_entry(&client, "/taken.txt", WriteMode::Add, b"mine", false).await;
    let open = session_entry(&client, "/open.txt", WriteMode::Add, b"open", true).await;

    let (fine, refused, open) = tokio::join!(
        batched(&client, fine, b"fine"),
        batched(&client, refused, b"mine"),
        batched(&client, open, b"open"),
    );
    let fine = fine.unwrap();
    assert_eq!(
        fine.content_hash.as_deref(),
        Some(content_hash(b"fine").as_str())
    );
    let refused = refused.unwrap_err();
    assert!(refused.is_conflict(), "{refused:?}");
    assert_eq!(open.unwrap_err().tags(), ["lookup_failed", "not_closed"],);
    let kept = client.get_metadata("/taken.txt").await.unwrap();
    assert!(matches!(kept, Metadata::File(f) if f.content_hash == Some(content_hash(b"theirs"))));
}

#[tokio::test]
async fn an_entry_refused_by_the_namespace_lock_goes_into_a_later_batch() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    let arg = session_entry(&client, "/later.txt", WriteMode::Overwrite, b"later", false).await;
    let refused = json!({ "entries": [
        { ".tag": "failure", "failure": { ".tag": "too_many_write_operations" } }
    ] });
    h.faults(json!([{
        "kind": "error",
        "route": "files/upload_session/finish_batch_v2",
        "status": 200,
        "body": refused,
        "count": 1,
    }]))
    .await;
    let stored = batched(&client, arg, b"later").await.unwrap();
    assert_eq!(stored.size, 5);
    assert_eq!(h.count("files/upload_session/finish_batch_v2").await, 2);
}

#[tokio::test]
async fn a_lost_batch_answer_is_looked_at_before_anything_is_sent_again() {
    let h = Harness::start(500).await;
    let client = h.static_client();
    // Applied, answer lost: found by the look, never sent again.
    let arg = session_entry(&client, "/applied.txt", WriteMode::Add, b"applied", false).await;
    h.faults(json!([{ "kind": "drop_after", "route": "files/upload_session/finish_batch_v2", "count": 1 }]))
        .await;
    let stored = batched(&client, arg, b"applied").await.unwrap();
    assert_eq!(stored.size, 7);
    assert_eq!(h.count("files/upload_session/finish_batch_v2").await, 1);

    // Lost before Dropbox saw it: not there, so sent again.
    let arg = session_entry(&client, "/resent.txt", WriteMode::Add, b"resent", false).await;
    h.faults(json!([{ "kind": "status_503", "route": "files/upload_session/finish_batch_v2", "count": 1 }]))
        .await;
    let stored = batched(&client, arg, b"resent").await.unwrap();
    assert_eq!(stored.size, 6);
    assert_eq!(h.count("files/upload_session/finish_batch_v2").await, 3);

    // Lost, and the look finds other bytes at the path: sent again, refused as a conflict
    // with that file, which a second look shows is not ours: the failure stands.
    put(&client, "/other.txt", b"someone else's").await;
    let arg = session_entry(&client, "/other.txt", WriteMode::Add, b"ours", false).await;
    h.faults(json!([{ "kind": "status_503", "route": "files/upload_session/finish_batch_v2", "count": 1 }]))
        .await;
    let refused = batched(&client, arg, b"ours").await.unwrap_err();
    assert!(refused.is_conflict(), "{refused:?}");
}
