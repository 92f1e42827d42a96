//! Who gets in and where they can go: each user is jailed in their own Dropbox root, a wrong
//! key is refused, and exec requests are refused at once (SFTP only).

use crate::common::{stderr, stdout, Bench};

#[tokio::test(flavor = "multi_thread")]
async fn users_are_jailed_in_their_own_roots() {
    let bench = Bench::start().await;
    let bob = bench.user("bob");
    bench
        .dropbox_upload("/alice/secret.txt", b"alice's".to_vec())
        .await;
    std::fs::write(bench.path("bob.txt"), b"bob's").unwrap();

    // Bob's home is /bob: alice's file is not there, and `..` cannot climb out of it.
    let out = bench
        .sftp(&bob, "get ../alice/secret.txt stolen.txt\n")
        .await;
    assert!(!out.status.success(), "bob read alice's file");
    assert!(!bench.path("stolen.txt").exists());
    let out = bench.sftp(&bob, "get /alice/secret.txt stolen.txt\n").await;
    assert!(
        !out.status.success(),
        "bob read alice's file by absolute path"
    );

    bench
        .sftp_ok(&bob, "put bob.txt ../../alice/secret.txt\n")
        .await;
    assert_eq!(
        bench.dropbox_download("/alice/secret.txt").await,
        b"alice's",
        "bob overwrote alice's file"
    );
    // The `..` put landed inside bob's own root instead.
    assert_eq!(
        bench.dropbox_download("/bob/alice/secret.txt").await,
        b"bob's"
    );

    let listing = bench.sftp_ok(&bob, "ls /\n").await;
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert!(bench
        .dropbox_list("/bob")
        .await
        .contains(&"alice".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused() {
    let bench = Bench::start().await;
    let mut mallory = bench.user("alice");
    // Bob's key presented as alice.
    mallory.key = bench.user("bob").key;
    std::fs::write(bench.path("x.txt"), b"x").unwrap();
    let out = bench.sftp(&mallory, "put x.txt\n").await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "stderr: {}",
        stderr(&out)
    );
    assert!(bench.dropbox_metadata("/alice/x.txt").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_requests_are_refused_at_once() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let started = std::time::Instant::now();
    let out = bench.ssh(&alice, "echo hello").await;
    assert!(!out.status.success());
    assert!(!stdout(&out).contains("hello"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
