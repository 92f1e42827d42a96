//! Dropbox's lag: right after a commit, Dropbox may not find the new entry by path. With the
//! emulator's lag model on, the partner clients' habits still work: upload to a temporary name
//! then rename it (WinSCP, FileZilla, lftp), look at the file just sent, remove it, copy it.
//! What is on Dropbox afterwards is read from the emulator's own API.

use serde_json::json;

use crate::common::Bench;

/// A bench whose emulator hides fresh entries from path lookups for a second.
async fn lagging_bench() -> Bench {
    let bench = Bench::start().await;
    bench.dropbox().set_realism(json!({ "lag_ms": 1000 })).await;
    bench
}

#[tokio::test]
async fn upload_to_a_temporary_name_then_rename_survives_the_lag() {
    let bench = lagging_bench().await;
    std::fs::write(bench.path("report.csv"), "a,b\n1,2\n").unwrap();
    bench
        .sftp_ok(
            &bench.user("alice"),
            "put report.csv report.csv.filepart\nrename report.csv.filepart report.csv\nls -l report.csv\n",
        )
        .await;
    assert_eq!(bench.dropbox_list("/alice").await, ["report.csv"]);
    assert_eq!(
        bench.dropbox_download("/alice/report.csv").await,
        b"a,b\n1,2\n"
    );
}

#[tokio::test]
async fn a_file_just_sent_can_be_removed_and_a_folder_just_made_renamed() {
    let bench = lagging_bench().await;
    std::fs::write(bench.path("once.txt"), "once").unwrap();
    bench
        .sftp_ok(
            &bench.user("alice"),
            "put once.txt\nrm once.txt\nmkdir fresh\nrename fresh settled\n",
        )
        .await;
    assert_eq!(bench.dropbox_list("/alice").await, ["settled"]);
}
