//! READDIR: pagination into bounded replies, longnames, EOF.

use std::collections::HashSet;

use russh_sftp::protocol::{OpenDir, Packet, ReadDir, StatusCode};

use super::memfs::MemFs;
use super::wire::{connect, status};

#[tokio::test]
async fn a_thousand_entries_come_in_bounded_replies_then_eof() {
    let fs = MemFs::new();
    fs.add_folder("/big");
    for i in 0..1000 {
        // Long names push the byte bound, not only the entry count.
        let name = format!("{i:04}-{}", "n".repeat(240));
        fs.add_file(&format!("/big/{name}"), b"x", 1_700_000_000);
    }
    fs.page_size(333);
    let (mut raw, _session) = connect(fs).await;
    let opendir = OpenDir {
        id: 1,
        path: "/big".into(),
    };
    let Packet::Handle(handle) = raw.call(opendir.into()).await else {
        panic!("expected HANDLE");
    };

    let mut seen = HashSet::new();
    let mut replies = 0;
    loop {
        let readdir = ReadDir {
            id: 2,
            handle: handle.handle.clone(),
        };
        raw.send(readdir.into()).await;
        let (reply, size) = raw.recv_sized().await;
        match reply {
            Packet::Name(name) => {
                replies += 1;
                assert!(size < 256 * 1024, "reply of {size} bytes");
                assert!(size <= 64 * 1024, "reply of {size} bytes");
                assert!(!name.files.is_empty() && name.files.len() <= 100);
                for file in name.files {
                    assert!(file.longname.starts_with("-rw-r--r--    1 dropgate"));
                    assert!(file.longname.ends_with(&file.filename));
                    assert!(seen.insert(file.filename), "an entry came twice");
                }
            }
            other => {
                assert_eq!(status(other).status_code, StatusCode::Eof);
                break;
            }
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(replies >= 10);
}

#[tokio::test]
async fn empty_folder_is_eof_at_once_and_files_cannot_be_listed() {
    let fs = MemFs::new();
    fs.add_folder("/empty");
    fs.add_file("/file", b"x", 1);
    let (mut raw, _session) = connect(fs).await;
    let Packet::Handle(handle) = raw
        .call(
            OpenDir {
                id: 1,
                path: "/empty".into(),
            }
            .into(),
        )
        .await
    else {
        panic!("expected HANDLE");
    };
    let readdir = ReadDir {
        id: 2,
        handle: handle.handle,
    };
    assert_eq!(
        status(raw.call(readdir.into()).await).status_code,
        StatusCode::Eof
    );

    let reply = raw
        .call(
            OpenDir {
                id: 3,
                path: "/file".into(),
            }
            .into(),
        )
        .await;
    assert_eq!(status(reply).status_code, StatusCode::Failure);
}
