//! Folders and renames with OpenSSH `sftp`: mkdir, cd, rename, rm and rmdir land in Dropbox; a
//! plain rename does not replace its target, a POSIX rename does.

use crate::common::Bench;

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
