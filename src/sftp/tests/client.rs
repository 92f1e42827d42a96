//! russh-sftp's own client against `serve`: a real client's view of the whole session.

use russh_sftp::client::SftpSession;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::memfs::MemFs;
use crate::sftp::{serve, SessionLimits};

#[tokio::test]
async fn a_real_client_round_trip() {
    let fs = MemFs::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(serve(server, fs.clone(), SessionLimits::default()));
    let sftp = SftpSession::new(client).await.unwrap();

    assert_eq!(sftp.canonicalize(".").await.unwrap(), "/");
    sftp.create_dir("/docs").await.unwrap();

    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut file = sftp.create("/docs/a.bin").await.unwrap();
    file.write_all(&data).await.unwrap();
    file.shutdown().await.unwrap();
    drop(file);
    assert_eq!(fs.file("/docs/a.bin").unwrap().0, data);

    let mut back = Vec::new();
    let mut file = sftp.open("/docs/a.bin").await.unwrap();
    file.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, data);

    let meta = sftp.metadata("/docs/a.bin").await.unwrap();
    assert_eq!(meta.len(), data.len() as u64);
    assert!(meta.is_regular());

    let names: Vec<String> = sftp
        .read_dir("/docs")
        .await
        .unwrap()
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(names, vec!["a.bin"]);

    sftp.rename("/docs/a.bin", "/docs/b.bin").await.unwrap();
    sftp.remove_file("/docs/b.bin").await.unwrap();
    sftp.remove_dir("/docs").await.unwrap();
    assert!(sftp.metadata("/docs").await.is_err());

    sftp.close().await.unwrap();
    drop(sftp);
    assert!(session.await.unwrap().is_ok());
}
