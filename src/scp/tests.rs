//! The SCP layer against the in-memory backend, driven with the exact bytes a client sends.
//! The client's side is written out in full up front (a real client waits for each answer,
//! which changes nothing for the server), and everything the server answered is compared.

use super::command::parse;
use super::run;
use crate::vfs::memory::MemFs;

/// Runs `command` with `client` as everything the client sends; what the server sent, and
/// whether it reported success.
async fn exchange(fs: &MemFs, command: &str, client: &[u8]) -> (Vec<u8>, bool) {
    let command = parse(command.as_bytes()).unwrap();
    let mut server = Vec::new();
    let ok = run(fs, &command, client, &mut server).await;
    (server, ok)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn an_upload_is_acknowledged_after_its_commit() {
    let fs = MemFs::new();
    let (server, ok) = exchange(
        &fs,
        "scp -p -t .",
        b"T981173106 0 981173106 0\nC0644 3 a.txt\nabc\0",
    )
    .await;
    // ready, T, C (send the content), stored.
    assert_eq!(server, b"\0\0\0\0");
    assert!(ok);
    assert_eq!(fs.file("/a.txt"), Some((b"abc".to_vec(), 981_173_106)));
}

#[tokio::test]
async fn a_failed_commit_is_an_error_line_and_stores_nothing() {
    let fs = MemFs::new();
    fs.fail_commits(true);
    let (server, ok) = exchange(&fs, "scp -t a.txt", b"C0644 3 a.txt\nabc\0").await;
    assert!(
        server.starts_with(b"\0\0\x01scp: /a.txt: "),
        "{}",
        text(&server)
    );
    assert!(server.ends_with(b"\n"));
    assert!(!ok);
    assert!(!fs.exists("/a.txt"));
}

#[tokio::test]
async fn a_file_the_client_could_not_read_is_not_stored() {
    let fs = MemFs::new();
    let (server, ok) = exchange(
        &fs,
        "scp -t .",
        b"C0644 3 a.txt\n\0\0\0\x01scp: a.txt: Input/output error\n",
    )
    .await;
    assert!(
        server.starts_with(b"\0\0\x01scp: /a.txt: the client could not send"),
        "{}",
        text(&server)
    );
    assert!(!ok);
    assert!(!fs.exists("/a.txt"));
}

#[tokio::test]
async fn a_client_that_vanishes_mid_file_stores_nothing() {
    let fs = MemFs::new();
    let (server, ok) = exchange(&fs, "scp -t .", b"C0644 1000 a.txt\nonly a little").await;
    assert_eq!(server, b"\0\0");
    assert!(!ok);
    assert!(!fs.exists("/a.txt"));
}

#[tokio::test]
async fn names_that_are_not_one_component_are_refused_and_the_transfer_goes_on() {
    let fs = MemFs::new();
    fs.add_folder("/in");
    let client = b"C0644 1 ..\nC0644 1 a/b\nD0755 0 .\nC0644 1 ok.txt\nx\0";
    let (server, ok) = exchange(&fs, "scp -r -t in", client).await;
    let answers = text(&server);
    assert_eq!(answers.matches("not a file name").count(), 3, "{answers}");
    assert!(answers.ends_with("\0\0"), "{answers}");
    assert!(!ok);
    assert_eq!(fs.file("/in/ok.txt").map(|f| f.0), Some(b"x".to_vec()));
    assert!(!fs.exists("/a"));
}

#[tokio::test]
async fn folders_need_r_and_d_needs_a_folder() {
    let fs = MemFs::new();
    let (server, ok) = exchange(&fs, "scp -t .", b"D0755 0 sub\n").await;
    assert!(
        text(&server).contains("received a folder without -r"),
        "{}",
        text(&server)
    );
    assert!(!ok && !fs.exists("/sub"));

    let (server, ok) = exchange(&fs, "scp -d -t missing", b"C0644 1 a\nx\0").await;
    assert!(
        server.starts_with(b"\x01scp: /missing: not a folder"),
        "{}",
        text(&server)
    );
    assert!(!ok && !fs.exists("/missing"));
}

#[tokio::test]
async fn a_tree_is_received_into_a_new_folder_name() {
    let fs = MemFs::new();
    let client = b"D0755 0 tree\nC0644 1 a\nA\0D0755 0 sub\nC0644 1 b\nB\0E\nE\n";
    let (server, ok) = exchange(&fs, "scp -r -t copy", client).await;
    assert_eq!(server, vec![0u8; 9]);
    assert!(ok);
    assert_eq!(fs.file("/copy/a").unwrap().0, b"A");
    assert_eq!(fs.file("/copy/sub/b").unwrap().0, b"B");
}

#[tokio::test]
async fn a_malformed_record_ends_the_transfer_with_a_protocol_error() {
    let fs = MemFs::new();
    let (server, ok) = exchange(&fs, "scp -t .", b"C0644 x a\n").await;
    assert!(
        text(&server).contains("protocol error"),
        "{}",
        text(&server)
    );
    assert!(!ok);
}

#[tokio::test]
async fn a_download_sends_times_record_content_and_status() {
    let fs = MemFs::new();
    fs.add_file("/a.txt", b"abc", 981_173_106);
    // ready, T, C, content.
    let (server, ok) = exchange(&fs, "scp -p -f a.txt", b"\0\0\0\0").await;
    assert_eq!(
        text(&server),
        "T981173106 0 981173106 0\nC0644 3 a.txt\nabc\0"
    );
    assert!(ok);
}

#[tokio::test]
async fn a_tree_is_sent_depth_first() {
    let fs = MemFs::new();
    fs.add_folder("/tree");
    fs.add_file("/tree/a", b"A", 1);
    fs.add_folder("/tree/sub");
    fs.add_file("/tree/sub/b", b"B", 1);
    let (server, ok) = exchange(&fs, "scp -r -f tree", &[0u8; 9]).await;
    let sent = text(&server);
    assert!(ok, "{sent}");
    assert!(
        sent.starts_with("D0755 0 tree\n") && sent.ends_with("E\n"),
        "{sent}"
    );
    assert!(
        sent.contains("C0644 1 a\nA\0") && sent.contains("D0755 0 sub\nC0644 1 b\nB\0E\n"),
        "{sent}"
    );
}

#[tokio::test]
async fn missing_paths_and_folders_without_r_are_error_lines() {
    let fs = MemFs::new();
    fs.add_folder("/dir");
    let (server, ok) = exchange(&fs, "scp -f nope dir", b"\0").await;
    let sent = text(&server);
    assert!(
        sent.starts_with("\u{1}scp: /nope: /nope does not exist\n"),
        "{sent}"
    );
    assert!(
        sent.contains("\u{1}scp: /dir: not a regular file\n"),
        "{sent}"
    );
    assert!(!ok);
}

#[tokio::test]
async fn a_download_the_client_refuses_counts_as_a_failure() {
    let fs = MemFs::new();
    fs.add_file("/a.txt", b"abc", 1);
    let (server, ok) = exchange(
        &fs,
        "scp -f a.txt",
        b"\0\x01scp: a.txt: Permission denied\n",
    )
    .await;
    assert_eq!(text(&server), "C0644 3 a.txt\n");
    assert!(!ok);
}

#[tokio::test]
async fn after_a_failed_write_the_rest_is_read_and_the_next_file_still_lands() {
    let fs = MemFs::new();
    fs.max_file_size(4);
    let client = b"C0644 6 big\nabcdef\0C0644 2 small\nok\0";
    let (server, ok) = exchange(&fs, "scp -t .", client).await;
    let answers = text(&server);
    assert!(answers.starts_with("\0\0\u{1}scp: /big: "), "{answers}");
    assert!(answers.ends_with("\n\0\0"), "{answers}");
    assert!(!ok);
    assert!(!fs.exists("/big"));
    assert_eq!(fs.file("/small").unwrap().0, b"ok");
}
