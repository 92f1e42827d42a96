//! Files up and down with OpenSSH `sftp` and `scp` → dropgate → emulator: byte-exact round
//! trips, a Unicode name, scp both ways, and `cp` inside Dropbox.

use crate::common::{content_hash, random_bytes, request_count, stderr, suite_realism, Bench};

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
async fn a_unicode_name_uploads_lists_and_downloads() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    // Beyond U+FFFF (emoji) only where the suite's Dropbox takes such names (names.rs tests the
    // refusal); accents and CJK everywhere.
    let name = match suite_realism().refuse_non_bmp_names {
        None => "résumé 日本 🎉.txt",
        Some(_) => "résumé 日本 ½.txt",
    };
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
