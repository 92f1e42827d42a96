//! The basics with OpenSSH `sftp`/`scp` → dropgate → emulator: byte-exact round trips, paged
//! listings, mkdir/cd/rename/rm/rmdir, cp, users jailed in their roots, exec refused.

use crate::common::{
    content_hash, random_bytes, request_count, stderr, stdout, Bench, BenchOptions,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_20_mib_file_round_trips_byte_exact() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(20 * 1024 * 1024);
    std::fs::write(bench.path("big.bin"), &data).unwrap();

    bench
        .sftp_ok(&alice, "put big.bin\nget big.bin back.bin\n")
        .await;

    let meta = bench.dropbox_metadata("/alice/big.bin").await.unwrap();
    assert_eq!(meta["size"], data.len() as u64);
    assert_eq!(meta["content_hash"], content_hash(&data));
    assert_eq!(bench.dropbox_download("/alice/big.bin").await, data);
    assert_eq!(std::fs::read(bench.path("back.bin")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_lists_all_1000_files_across_pages() {
    let bench = Bench::start_with(BenchOptions {
        page_size: 100,
        ..BenchOptions::default()
    })
    .await;
    let alice = bench.user("alice");
    let uploads = (0..1000).map(|i| {
        let bench = &bench;
        async move {
            bench
                .dropbox_upload(&format!("/alice/many/f{i:04}.txt"), vec![b'x'; i % 7])
                .await
        }
    });
    futures::future::join_all(uploads).await;

    let listing = bench.sftp_ok(&alice, "ls -l many\n").await;
    let names: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names.len(), 1000, "listing:\n{listing}");
    for i in 0..1000 {
        assert!(
            names.contains(&format!("f{i:04}.txt").as_str()),
            "f{i:04}.txt missing"
        );
    }
    // Sizes come through to `ls -l` (the fifth column).
    let f0006 = listing.lines().find(|l| l.ends_with("f0006.txt")).unwrap();
    assert_eq!(f0006.split_whitespace().nth(4), Some("6"), "{f0006}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unicode_name_uploads_lists_and_downloads() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let name = "résumé 日本 🎉.txt";
    let data = b"bonjour\n".to_vec();
    std::fs::write(bench.path(name), &data).unwrap();

    let out = bench
        .sftp_ok(
            &alice,
            &format!("put \"{name}\"\nls -l\nget \"{name}\" copy.txt\n"),
        )
        .await;

    assert!(out.contains(name), "ls output:\n{out}");
    let meta = bench
        .dropbox_metadata(&format!("/alice/{name}"))
        .await
        .expect("stored in Dropbox");
    assert_eq!(meta["name"], name);
    assert_eq!(meta["content_hash"], content_hash(&data));
    assert_eq!(std::fs::read(bench.path("copy.txt")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn mkdir_cd_rename_rm_rmdir_are_stored() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("a.txt"), b"A").unwrap();

    bench
        .sftp_ok(
            &alice,
            "mkdir docs\ncd docs\nput a.txt\nrename a.txt b.txt\nmkdir sub\nmkdir gone\nrmdir gone\n",
        )
        .await;
    assert!(bench.dropbox_metadata("/alice/docs/a.txt").await.is_none());
    assert_eq!(bench.dropbox_download("/alice/docs/b.txt").await, b"A");
    assert_eq!(
        bench.dropbox_metadata("/alice/docs/sub").await.unwrap()[".tag"],
        "folder"
    );
    assert!(bench.dropbox_metadata("/alice/docs/gone").await.is_none());

    // rmdir of a non-empty folder fails and deletes nothing (Dropbox's delete is recursive).
    let out = bench.sftp(&alice, "rmdir docs\n").await;
    assert!(
        !out.status.success(),
        "rmdir of a non-empty folder succeeded"
    );
    assert!(bench.dropbox_metadata("/alice/docs/b.txt").await.is_some());

    bench.sftp_ok(&alice, "rm docs/b.txt\n").await;
    assert!(bench.dropbox_metadata("/alice/docs/b.txt").await.is_none());
    assert!(bench.dropbox_metadata("/alice/docs").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_onto_an_existing_file_fails_but_posix_rename_replaces() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench.dropbox_upload("/alice/one", b"1".to_vec()).await;
    bench.dropbox_upload("/alice/two", b"2".to_vec()).await;

    // OpenSSH's `rename` uses posix-rename@openssh.com when offered: it replaces.
    bench.sftp_ok(&alice, "rename one two\n").await;
    assert!(bench.dropbox_metadata("/alice/one").await.is_none());
    assert_eq!(bench.dropbox_download("/alice/two").await, b"1");
}

#[tokio::test(flavor = "multi_thread")]
async fn scp_uploads_and_downloads() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(3 * 1024 * 1024 + 17);
    std::fs::write(bench.path("scp.bin"), &data).unwrap();

    let up = bench
        .scp(&alice, &["scp.bin".into(), bench.remote(&alice, "scp.bin")])
        .await;
    assert!(up.status.success(), "scp upload: {}", stderr(&up));
    assert_eq!(bench.dropbox_download("/alice/scp.bin").await, data);

    let down = bench
        .scp(
            &alice,
            &[bench.remote(&alice, "scp.bin"), "scp-back.bin".into()],
        )
        .await;
    assert!(down.status.success(), "scp download: {}", stderr(&down));
    assert_eq!(std::fs::read(bench.path("scp-back.bin")).unwrap(), data);
}

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

#[tokio::test(flavor = "multi_thread")]
async fn cp_copies_inside_dropbox_or_replaces_through_an_upload() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(3 * 1024 * 1024 + 17);
    bench.dropbox_upload("/alice/orig.bin", data.clone()).await;
    bench
        .dropbox_upload("/alice/old.bin", b"old".to_vec())
        .await;
    bench.reset_emulator_stats().await;

    // A new target: Dropbox copies it (copy_v2); no byte passes through the gateway.
    bench.sftp_ok(&alice, "cp orig.bin copy.bin\n").await;
    let stats = bench.emulator_stats().await;
    assert_eq!(request_count(&stats, "files/copy_v2"), 1);
    assert_eq!(request_count(&stats, "files/download"), 0);
    assert_eq!(bench.upload_requests().await.commits(), 0);
    assert_eq!(bench.dropbox_download("/alice/copy.bin").await, data);

    // An existing target: copy_v2 never replaces, so the bytes go through an upload.
    bench.sftp_ok(&alice, "cp orig.bin old.bin\n").await;
    assert_eq!(bench.dropbox_download("/alice/old.bin").await, data);
    let meta = bench.dropbox_metadata("/alice/old.bin").await.unwrap();
    assert_eq!(meta["content_hash"], content_hash(&data));

    // A missing source fails and creates nothing.
    let out = bench.sftp(&alice, "cp nothing.bin other.bin\n").await;
    assert!(!out.status.success(), "cp of a missing file succeeded");
    assert!(bench.dropbox_metadata("/alice/other.bin").await.is_none());
}
