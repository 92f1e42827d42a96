//! copy-data: by the backend when it can and the copy is a whole file into a new one, otherwise
//! through the upload, which commits at CLOSE.

use russh_sftp::protocol::{FSetStat, FileAttributes, OpenFlags, StatusCode, Write};

use super::memfs::MemFs;
use super::wire::{connect, ssh_string, status, write_flags, Raw};

fn copy_data(read: &str, read_offset: u64, length: u64, write: &str, write_offset: u64) -> Vec<u8> {
    [
        ssh_string(read),
        read_offset.to_be_bytes().to_vec(),
        length.to_be_bytes().to_vec(),
        ssh_string(write),
        write_offset.to_be_bytes().to_vec(),
    ]
    .concat()
}

/// OpenSSH's `cp`: OPEN source READ, OPEN target WRITE|CREAT|TRUNC, copy-data of everything,
/// then CLOSE both. Returns the copy-data status and the target's CLOSE status.
async fn openssh_cp(raw: &mut Raw, from: &str, to: &str) -> (StatusCode, StatusCode) {
    let source = raw.open(1, from, OpenFlags::READ).await.unwrap();
    let target = raw.open(2, to, write_flags()).await.unwrap();
    let copied = status(
        raw.extended(3, "copy-data", copy_data(&source, 0, 0, &target, 0))
            .await,
    );
    assert_eq!(raw.close(4, &source).await.status_code, StatusCode::Ok);
    (copied.status_code, raw.close(5, &target).await.status_code)
}

#[tokio::test]
async fn a_whole_file_into_a_new_one_is_copied_by_the_backend() {
    let fs = MemFs::new();
    fs.server_side_copy(true);
    fs.add_file("/a", b"contents", 1_600_000_000);
    let (mut raw, _session) = connect(fs.clone()).await;
    assert_eq!(
        openssh_cp(&mut raw, "/a", "/b").await,
        (StatusCode::Ok, StatusCode::Ok)
    );
    assert_eq!(fs.file("/b").unwrap().0, b"contents");
    assert_eq!((fs.server_copies(), fs.commits()), (1, 0));
}

#[tokio::test]
async fn onto_an_existing_file_the_bytes_go_through_an_upload() {
    let fs = MemFs::new();
    fs.server_side_copy(true);
    fs.add_file("/a", b"new contents", 1);
    fs.add_file("/b", b"old", 1);
    let (mut raw, _session) = connect(fs.clone()).await;
    assert_eq!(
        openssh_cp(&mut raw, "/a", "/b").await,
        (StatusCode::Ok, StatusCode::Ok)
    );
    assert_eq!(fs.file("/b").unwrap().0, b"new contents");
    assert_eq!((fs.server_copies(), fs.commits()), (0, 1));
}

#[tokio::test]
async fn without_backend_copy_a_large_file_is_streamed() {
    let fs = MemFs::new();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs.add_file("/big", &data, 1);
    let (mut raw, _session) = connect(fs.clone()).await;
    assert_eq!(
        openssh_cp(&mut raw, "/big", "/copy").await,
        (StatusCode::Ok, StatusCode::Ok)
    );
    assert_eq!(fs.file("/copy").unwrap().0, data);
    assert_eq!(fs.commits(), 1);
}

#[tokio::test]
async fn a_range_lands_at_the_write_offset() {
    let fs = MemFs::new();
    fs.server_side_copy(true);
    fs.add_file("/a", b"0123456789", 1);
    let (mut raw, _session) = connect(fs.clone()).await;
    let source = raw.open(1, "/a", OpenFlags::READ).await.unwrap();
    let target = raw.open(2, "/b", write_flags()).await.unwrap();
    let write = Write {
        id: 3,
        handle: target.clone(),
        offset: 0,
        data: b"xy".to_vec(),
    };
    assert_eq!(
        status(raw.call(write.into()).await).status_code,
        StatusCode::Ok
    );
    let reply = raw
        .extended(4, "copy-data", copy_data(&source, 3, 4, &target, 2))
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Ok);
    assert_eq!(raw.close(5, &target).await.status_code, StatusCode::Ok);
    assert_eq!(fs.file("/b").unwrap().0, b"xy3456");
    assert_eq!(fs.server_copies(), 0);
}

#[tokio::test]
async fn writing_after_a_backend_copy_uploads_the_changed_file() {
    let fs = MemFs::new();
    fs.server_side_copy(true);
    fs.add_file("/a", b"abcdef", 1);
    let (mut raw, _session) = connect(fs.clone()).await;
    let source = raw.open(1, "/a", OpenFlags::READ).await.unwrap();
    let target = raw.open(2, "/b", write_flags()).await.unwrap();
    let reply = raw
        .extended(3, "copy-data", copy_data(&source, 0, 0, &target, 0))
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Ok);
    let write = Write {
        id: 4,
        handle: target.clone(),
        offset: 6,
        data: b"gh".to_vec(),
    };
    assert_eq!(
        status(raw.call(write.into()).await).status_code,
        StatusCode::Ok
    );
    let mtime = FSetStat {
        id: 5,
        handle: target.clone(),
        attrs: FileAttributes {
            mtime: Some(1_700_000_000),
            ..FileAttributes::empty()
        },
    };
    assert_eq!(
        status(raw.call(mtime.into()).await).status_code,
        StatusCode::Ok
    );
    assert_eq!(raw.close(6, &target).await.status_code, StatusCode::Ok);
    assert_eq!(
        fs.file("/b").unwrap(),
        (b"abcdefgh".to_vec(), 1_700_000_000)
    );
    assert_eq!((fs.server_copies(), fs.commits()), (1, 1));
}

#[tokio::test]
async fn handles_must_be_a_reader_and_a_writer() {
    let fs = MemFs::new();
    fs.add_file("/a", b"abc", 1);
    let (mut raw, _session) = connect(fs.clone()).await;
    let source = raw.open(1, "/a", OpenFlags::READ).await.unwrap();
    let target = raw.open(2, "/b", write_flags()).await.unwrap();
    // Swapped: the "source" is a write handle, the "target" a read handle.
    let reply = raw
        .extended(3, "copy-data", copy_data(&target, 0, 0, &source, 0))
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Failure);
    let reply = raw
        .extended(4, "copy-data", copy_data(&source, 0, 0, &source, 0))
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Failure);
    let reply = raw
        .extended(5, "copy-data", copy_data("99", 0, 0, &target, 0))
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Failure);
    // The upload is untouched by the refused copies: it commits empty.
    assert_eq!(raw.close(6, &target).await.status_code, StatusCode::Ok);
    assert_eq!(fs.file("/b").unwrap().0, b"");
}
