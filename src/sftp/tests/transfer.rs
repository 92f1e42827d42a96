//! Uploads and downloads through handles: pipelining, ordering, EOF, commit and its failures.

use std::time::Duration;

use russh_sftp::protocol::{
    FSetStat, FileAttributes, Fstat, MkDir, OpenFlags, Packet, Read, SetStat, Stat, StatusCode,
    Write,
};

use super::memfs::MemFs;
use super::wire::{connect, status, write_flags, Raw};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn write_at(raw: &mut Raw, id: u32, handle: &str, offset: u64, data: &[u8]) -> StatusCode {
    let write = Write {
        id,
        handle: handle.into(),
        offset,
        data: data.to_vec(),
    };
    status(raw.call(write.into()).await).status_code
}

#[tokio::test]
async fn one_mib_round_trip_with_64_requests_in_flight() {
    let fs = MemFs::new();
    let (mut raw, _session) = connect(fs.clone()).await;
    let mkdir = MkDir {
        id: 1,
        path: "/d".into(),
        attrs: FileAttributes::empty(),
    };
    assert_eq!(
        status(raw.call(mkdir.into()).await).status_code,
        StatusCode::Ok
    );

    let data = pattern(1 << 20);
    let handle = raw.open(2, "/d/f", write_flags()).await.unwrap();
    raw.pipelined_writes(&handle, &data, 16 * 1024).await;
    assert_eq!(raw.close(3, &handle).await.status_code, StatusCode::Ok);
    assert_eq!(fs.file("/d/f").unwrap().0, data);

    let handle = raw.open(4, "/d/f", OpenFlags::READ).await.unwrap();
    // 64 reads of 16 KiB, all sent before any reply is read.
    let read = raw
        .pipelined_reads(&handle, data.len() as u64, 16 * 1024)
        .await;
    assert_eq!(read, data);
    let at_end = Read {
        id: 9,
        handle: handle.clone(),
        offset: data.len() as u64,
        len: 1024,
    };
    assert_eq!(
        status(raw.call(at_end.into()).await).status_code,
        StatusCode::Eof
    );
    assert_eq!(raw.close(10, &handle).await.status_code, StatusCode::Ok);
}

#[tokio::test]
async fn large_reads_are_capped_below_the_packet_limit() {
    let fs = MemFs::new();
    fs.add_file("/big", &pattern(600 * 1024), 1);
    let (mut raw, _session) = connect(fs).await;
    let handle = raw.open(1, "/big", OpenFlags::READ).await.unwrap();
    let read = Read {
        id: 2,
        handle,
        offset: 0,
        len: 512 * 1024,
    };
    raw.send(read.into()).await;
    let (reply, size) = raw.recv_sized().await;
    let Packet::Data(data) = reply else {
        panic!("expected DATA");
    };
    assert_eq!(data.data.len(), 261120);
    assert!(size <= 262144);
}

#[tokio::test]
async fn empty_file_reads_as_eof_status() {
    let fs = MemFs::new();
    fs.add_file("/empty", b"", 1);
    let (mut raw, _session) = connect(fs).await;
    let handle = raw.open(1, "/empty", OpenFlags::READ).await.unwrap();
    let read = Read {
        id: 2,
        handle,
        offset: 0,
        len: 32768,
    };
    let reply = status(raw.call(read.into()).await);
    assert_eq!((reply.id, reply.status_code), (2, StatusCode::Eof));
}

#[tokio::test]
async fn close_reports_a_failed_commit() {
    let fs = MemFs::new();
    fs.fail_commits(true);
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    assert_eq!(
        write_at(&mut raw, 2, &handle, 0, b"data").await,
        StatusCode::Ok
    );
    let reply = raw.close(3, &handle).await;
    assert_eq!(reply.status_code, StatusCode::Failure);
    assert!(reply.error_message.contains("content hash"), "{reply:?}");
    assert!(!fs.exists("/f"));
}

#[tokio::test]
async fn disconnect_without_close_commits_nothing() {
    let fs = MemFs::new();
    let (mut raw, session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    raw.pipelined_writes(&handle, &pattern(100_000), 32 * 1024)
        .await;
    drop(raw);
    assert!(session.await.unwrap().is_ok());
    assert_eq!(fs.commits(), 0);
    assert!(!fs.exists("/f"));
}

#[tokio::test]
async fn a_gap_poisons_the_upload() {
    let fs = MemFs::new();
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    assert_eq!(
        write_at(&mut raw, 2, &handle, 0, b"abc").await,
        StatusCode::Ok
    );
    assert_eq!(
        write_at(&mut raw, 3, &handle, 100, b"def").await,
        StatusCode::OpUnsupported
    );
    // Even a write that would fit is refused now, and CLOSE commits nothing.
    assert_eq!(
        write_at(&mut raw, 4, &handle, 3, b"def").await,
        StatusCode::OpUnsupported
    );
    let reply = raw.close(5, &handle).await;
    assert_eq!(reply.status_code, StatusCode::OpUnsupported);
    assert!(reply.error_message.contains("resuming"), "{reply:?}");
    assert!(!fs.exists("/f"));
}

#[tokio::test]
async fn fsetstat_before_close_applies_in_order() {
    // scp: OPEN without TRUNC, writes, FSETSTAT SIZE, FSETSTAT times, CLOSE — all pipelined.
    let fs = MemFs::new();
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw
        .open(1, "/f", OpenFlags::WRITE | OpenFlags::CREATE)
        .await
        .unwrap();
    let packets: Vec<Packet> = vec![
        Write {
            id: 2,
            handle: handle.clone(),
            offset: 0,
            data: pattern(100),
        }
        .into(),
        FSetStat {
            id: 3,
            handle: handle.clone(),
            attrs: FileAttributes {
                size: Some(60),
                ..FileAttributes::empty()
            },
        }
        .into(),
        FSetStat {
            id: 4,
            handle: handle.clone(),
            attrs: FileAttributes {
                atime: Some(1_600_000_000),
                mtime: Some(1_600_000_000),
                permissions: Some(0o644),
                ..FileAttributes::empty()
            },
        }
        .into(),
        Fstat {
            id: 5,
            handle: handle.clone(),
        }
        .into(),
        russh_sftp::protocol::Close {
            id: 6,
            handle: handle.clone(),
        }
        .into(),
    ];
    for packet in packets {
        raw.send(packet).await;
    }
    for id in 2..=6 {
        match raw.recv().await {
            Packet::Attrs(attrs) => {
                assert_eq!(attrs.id, id);
                assert_eq!(attrs.attrs.size, Some(60));
            }
            other => {
                let reply = status(other);
                assert_eq!((reply.id, reply.status_code), (id, StatusCode::Ok));
            }
        }
    }
    assert_eq!(fs.file("/f").unwrap(), (pattern(60), 1_600_000_000));
}

#[tokio::test]
async fn setstat_by_path_during_upload_sets_its_mtime() {
    let fs = MemFs::new();
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    let setstat = SetStat {
        id: 2,
        path: "/f".into(),
        attrs: FileAttributes {
            atime: Some(1_500_000_000),
            mtime: Some(1_500_000_000),
            ..FileAttributes::empty()
        },
    };
    assert_eq!(
        status(raw.call(setstat.into()).await).status_code,
        StatusCode::Ok
    );
    assert_eq!(raw.close(3, &handle).await.status_code, StatusCode::Ok);
    assert_eq!(fs.file("/f").unwrap().1, 1_500_000_000);
}

#[tokio::test]
async fn requests_sent_right_behind_close_see_the_committed_file() {
    // WinSCP sends SETSTAT right after CLOSE without waiting for the CLOSE reply.
    let fs = MemFs::new();
    fs.slow_commits(Duration::from_millis(200));
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    assert_eq!(
        write_at(&mut raw, 2, &handle, 0, b"hello").await,
        StatusCode::Ok
    );
    raw.send(
        russh_sftp::protocol::Close {
            id: 3,
            handle: handle.clone(),
        }
        .into(),
    )
    .await;
    raw.send(
        SetStat {
            id: 4,
            path: "/f".into(),
            attrs: FileAttributes {
                atime: Some(1_400_000_000),
                mtime: Some(1_400_000_000),
                ..FileAttributes::empty()
            },
        }
        .into(),
    )
    .await;
    raw.send(
        Stat {
            id: 5,
            path: "/f".into(),
        }
        .into(),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        match raw.recv().await {
            Packet::Attrs(attrs) => {
                assert_eq!(attrs.attrs.size, Some(5));
                seen.push(attrs.id);
            }
            other => {
                let reply = status(other);
                assert_eq!(reply.status_code, StatusCode::Ok, "{reply:?}");
                seen.push(reply.id);
            }
        }
    }
    seen.sort();
    assert_eq!(seen, vec![3, 4, 5]);
    assert_eq!(fs.file("/f").unwrap(), (b"hello".to_vec(), 1_400_000_000));
}

#[tokio::test]
async fn exclusive_open_of_an_existing_file_fails() {
    let fs = MemFs::new();
    fs.add_file("/f", b"x", 1);
    let (mut raw, _session) = connect(fs).await;
    let err = raw
        .open(1, "/f", write_flags() | OpenFlags::EXCLUDE)
        .await
        .unwrap_err();
    assert_eq!(err.status_code, StatusCode::Failure);
}

#[tokio::test]
async fn few_permits_push_back_without_deadlock() {
    let fs = MemFs::new();
    let data = pattern(1 << 20);
    fs.add_file("/f", &data, 1);
    let limits = crate::sftp::SessionLimits {
        max_in_flight: 2,
        ..Default::default()
    };
    let (mut raw, _session) = super::wire::start(fs, limits);
    raw.call(russh_sftp::protocol::Init::new().into()).await;
    let handle = raw.open(1, "/f", OpenFlags::READ).await.unwrap();
    let read = raw
        .pipelined_reads(&handle, data.len() as u64, 16 * 1024)
        .await;
    assert_eq!(read, data);
}

#[tokio::test]
async fn a_slow_commit_does_not_hold_up_other_requests() {
    let fs = MemFs::new();
    fs.slow_commits(Duration::from_millis(300));
    fs.add_file("/other", b"x", 1);
    let (mut raw, _session) = connect(fs).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    raw.send(russh_sftp::protocol::Close { id: 2, handle }.into())
        .await;
    raw.send(
        Stat {
            id: 3,
            path: "/other".into(),
        }
        .into(),
    )
    .await;
    // Replies go out as they are ready; ids match them up.
    let Packet::Attrs(first) = raw.recv().await else {
        panic!("the STAT should be answered first");
    };
    assert_eq!(first.id, 3);
    assert_eq!(status(raw.recv().await).id, 2);
}

/// Found by the `sftp_session` fuzz target: FSETSTAT SIZE 0x1000_0000_000c on an upload made the
/// in-memory backend try to allocate 16 TiB. A size beyond the backend's limit is a clean
/// FAILURE that poisons the upload (as the Dropbox backend's `max_file_size` does), and the
/// session carries on.
#[tokio::test]
async fn fsetstat_beyond_the_size_limit_fails_cleanly() {
    let fs = MemFs::new();
    fs.max_file_size(1024);
    let (mut raw, _session) = connect(fs.clone()).await;
    let handle = raw.open(1, "/f", write_flags()).await.unwrap();
    assert_eq!(
        write_at(&mut raw, 2, &handle, 0, b"abc").await,
        StatusCode::Ok
    );
    let huge = FSetStat {
        id: 3,
        handle: handle.clone(),
        attrs: FileAttributes {
            size: Some(0x1000_0000_000c),
            ..FileAttributes::empty()
        },
    };
    let reply = status(raw.call(huge.into()).await);
    assert_eq!((reply.id, reply.status_code), (3, StatusCode::Failure));
    assert!(
        reply.error_message.contains("maximum upload size"),
        "{reply:?}"
    );
    // A write past the limit is refused the same way on a fresh upload.
    let other = raw.open(4, "/g", write_flags()).await.unwrap();
    assert_eq!(
        write_at(&mut raw, 5, &other, 0, &[0u8; 2000]).await,
        StatusCode::Failure
    );
    assert_eq!(raw.close(6, &handle).await.status_code, StatusCode::Failure);
    assert_eq!(raw.close(7, &other).await.status_code, StatusCode::Failure);
    assert!(!fs.exists("/f") && !fs.exists("/g"));
    let stat = Stat {
        id: 8,
        path: "/".into(),
    };
    assert!(matches!(raw.call(stat.into()).await, Packet::Attrs(_)));
}
