//! Listings with OpenSSH `sftp`: a folder larger than one page of Dropbox's listing is listed
//! whole.

use crate::common::{suite_realism, Bench, BenchOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn ls_lists_all_1000_files_across_pages() {
    let bench = Bench::start_with(BenchOptions {
        page_size: 100,
        ..BenchOptions::default()
    })
    .await;
    let alice = bench.user("alice");
    // The setup is not under test: 1,000 files at once would wait minutes for the realistic
    // profile's write lock, so the suite's models are off while it runs.
    bench.dropbox().set_realism(json!({})).await;
    let uploads = (0..1000).map(|i| {
        let bench = &bench;
        async move {
            bench
                .dropbox_upload(&format!("/alice/many/f{i:04}.txt"), vec![b'x'; i % 7])
                .await
        }
    });
    futures::future::join_all(uploads).await;
    bench
        .dropbox()
        .set_realism(serde_json::to_value(suite_realism()).unwrap())
        .await;

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
