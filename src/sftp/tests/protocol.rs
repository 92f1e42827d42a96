//! Session-level protocol: INIT, REALPATH, extensions, unknown and oversized packets, handles.

use russh_sftp::protocol::{
    FileAttributes, Init, MkDir, OpenFlags, Packet, RealPath, Rename, StatusCode,
};

use super::memfs::MemFs;
use super::wire::{self, connect, names, ssh_string, start, status, write_flags};
use crate::sftp::SessionLimits;

#[tokio::test]
async fn answers_version_3_with_extensions_even_to_version_6() {
    let (mut raw, _session) = start(MemFs::new(), SessionLimits::default());
    let init = Init {
        version: 6,
        extensions: Default::default(),
    };
    let Packet::Version(version) = raw.call(init.into()).await else {
        panic!("expected VERSION");
    };
    assert_eq!(version.version, 3);
    let ext = |name: &str| version.extensions.get(name).map(String::as_str);
    assert_eq!(ext("posix-rename@openssh.com"), Some("1"));
    assert_eq!(ext("statvfs@openssh.com"), Some("2"));
    assert_eq!(ext("limits@openssh.com"), Some("1"));
    assert_eq!(ext("fsync@openssh.com"), Some("1"));
}

#[tokio::test]
async fn a_request_before_init_ends_the_session() {
    let (mut raw, session) = start(MemFs::new(), SessionLimits::default());
    let realpath = RealPath {
        id: 1,
        path: ".".into(),
    };
    raw.send(realpath.into()).await;
    assert!(session.await.unwrap().is_err());
}

#[tokio::test]
async fn a_second_init_ends_the_session() {
    let (mut raw, session) = connect(MemFs::new()).await;
    raw.send(Init::new().into()).await;
    assert!(session.await.unwrap().is_err());
}

#[tokio::test]
async fn realpath_is_lexical() {
    let (mut raw, _session) = connect(MemFs::new()).await;
    for (input, expected) in [
        (".", "/"),
        ("/no/such/file", "/no/such/file"),
        ("a/../b", "/b"),
        ("/../..", "/"),
    ] {
        let realpath = RealPath {
            id: 1,
            path: input.into(),
        };
        assert_eq!(names(raw.call(realpath.into()).await), vec![expected]);
    }
}

#[tokio::test]
async fn unknown_extended_request_is_unsupported_and_session_continues() {
    let (mut raw, _session) = connect(MemFs::new()).await;
    let reply = status(raw.extended(7, "hardlink@openssh.com", vec![1, 2, 3]).await);
    assert_eq!(
        (reply.id, reply.status_code),
        (7, StatusCode::OpUnsupported)
    );
    let realpath = RealPath {
        id: 8,
        path: ".".into(),
    };
    assert_eq!(names(raw.call(realpath.into()).await), vec!["/"]);
}

#[tokio::test]
async fn unknown_packet_type_is_unsupported() {
    let (mut raw, _session) = connect(MemFs::new()).await;
    // type 77, id 9, some payload
    raw.send_bytes(&[0, 0, 0, 8, 77, 0, 0, 0, 9, 1, 2, 3]).await;
    let reply = status(raw.recv().await);
    assert_eq!(
        (reply.id, reply.status_code),
        (9, StatusCode::OpUnsupported)
    );
    let realpath = RealPath {
        id: 10,
        path: "x".into(),
    };
    assert_eq!(names(raw.call(realpath.into()).await), vec!["/x"]);
}

#[tokio::test]
async fn oversized_packet_ends_the_session_with_an_error() {
    let (mut raw, session) = connect(MemFs::new()).await;
    raw.send_bytes(&(10u32 << 20).to_be_bytes()).await;
    let result = session.await.expect("the session must not panic");
    let error = result.expect_err("an oversized packet is a protocol violation");
    assert!(error.to_string().contains("limit"), "{error:#}");
}

#[tokio::test]
async fn malformed_packet_ends_the_session() {
    let (mut raw, session) = connect(MemFs::new()).await;
    // STAT whose path length runs past the end of the packet.
    raw.send_bytes(&[0, 0, 0, 10, 17, 0, 0, 0, 1, 0, 0, 0, 99, b'a'])
        .await;
    assert!(session.await.unwrap().is_err());
}

#[tokio::test]
async fn clean_close_ends_the_session_ok() {
    let (raw, session) = connect(MemFs::new()).await;
    drop(raw);
    assert!(session.await.unwrap().is_ok());
}

#[tokio::test]
async fn limits_and_statvfs() {
    let fs = MemFs::new();
    fs.add_file("/a", &[0; 8192], 0);
    let (mut raw, _session) = connect(fs).await;

    let Packet::ExtendedReply(limits) = raw.extended(1, "limits@openssh.com", vec![]).await else {
        panic!("expected EXTENDED_REPLY");
    };
    let values: Vec<u64> = limits
        .data
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, vec![262144, 261120, 261120, 256]);

    let reply = raw
        .extended(2, "statvfs@openssh.com", ssh_string("/"))
        .await;
    let Packet::ExtendedReply(statvfs) = reply else {
        panic!("expected EXTENDED_REPLY");
    };
    assert_eq!(statvfs.data.len(), 11 * 8);
    let blocks = u64::from_be_bytes(statvfs.data[16..24].try_into().unwrap());
    let free = u64::from_be_bytes(statvfs.data[24..32].try_into().unwrap());
    assert_eq!((blocks, free), ((1 << 30) / 4096, (1 << 30) / 4096 - 2));
}

#[tokio::test]
async fn rename_onto_existing_fails_posix_rename_replaces() {
    let fs = MemFs::new();
    fs.add_file("/a", b"new", 1);
    fs.add_file("/b", b"old", 1);
    let (mut raw, _session) = connect(fs.clone()).await;

    let rename = Rename {
        id: 1,
        oldpath: "/a".into(),
        newpath: "/b".into(),
    };
    let reply = status(raw.call(rename.into()).await);
    assert_eq!(reply.status_code, StatusCode::Failure);
    assert_eq!(fs.file("/b").unwrap().0, b"old");

    let data = [ssh_string("/a"), ssh_string("/b")].concat();
    let reply = status(raw.extended(2, "posix-rename@openssh.com", data).await);
    assert_eq!(reply.status_code, StatusCode::Ok);
    assert_eq!(fs.file("/b").unwrap().0, b"new");
    assert!(!fs.exists("/a"));
}

#[tokio::test]
async fn errors_map_to_status_codes_with_the_backend_message() {
    let (mut raw, _session) = connect(MemFs::new()).await;
    let err = raw.open(1, "/missing", OpenFlags::READ).await.unwrap_err();
    assert_eq!(err.status_code, StatusCode::NoSuchFile);
    assert_eq!(err.error_message, "/missing does not exist");

    let mkdir = MkDir {
        id: 2,
        path: "/d".into(),
        attrs: FileAttributes::empty(),
    };
    assert_eq!(
        status(raw.call(mkdir.into()).await).status_code,
        StatusCode::Ok
    );
    let mkdir = MkDir {
        id: 3,
        path: "/d".into(),
        attrs: FileAttributes::empty(),
    };
    let reply = status(raw.call(mkdir.into()).await);
    assert_eq!((reply.id, reply.status_code), (3, StatusCode::Failure));
}

#[tokio::test]
async fn unknown_or_closed_handle_is_a_failure() {
    let fs = MemFs::new();
    fs.add_file("/f", b"x", 1);
    let (mut raw, _session) = connect(fs).await;
    let reply = raw.close(1, "nope").await;
    assert_eq!(reply.status_code, StatusCode::Failure);
    assert_eq!(reply.error_message, "invalid handle");

    let handle = raw.open(2, "/f", OpenFlags::READ).await.unwrap();
    assert_eq!(raw.close(3, &handle).await.status_code, StatusCode::Ok);
    assert_eq!(raw.close(4, &handle).await.error_message, "invalid handle");
}

#[tokio::test]
async fn too_many_handles_is_a_clear_failure() {
    let fs = MemFs::new();
    fs.add_file("/f", b"x", 1);
    let limits = SessionLimits {
        max_handles: 2,
        ..SessionLimits::default()
    };
    let (mut raw, _session) = start(fs, limits);
    raw.call(Init::new().into()).await;
    raw.open(1, "/f", OpenFlags::READ).await.unwrap();
    let second = raw.open(2, "/f", OpenFlags::READ).await.unwrap();
    let err = raw.open(3, "/f", OpenFlags::READ).await.unwrap_err();
    assert_eq!(err.status_code, StatusCode::Failure);
    assert!(
        err.error_message.contains("too many open handles"),
        "{err:?}"
    );
    // Closing one makes room again.
    raw.close(4, &second).await;
    raw.open(5, "/f", write_flags()).await.unwrap();
}

#[tokio::test]
async fn symlinks_are_unsupported() {
    let (mut raw, _session) = connect(MemFs::new()).await;
    let readlink = russh_sftp::protocol::ReadLink {
        id: 1,
        path: "/x".into(),
    };
    let reply = wire::status(raw.call(readlink.into()).await);
    assert_eq!(reply.status_code, StatusCode::OpUnsupported);
}
