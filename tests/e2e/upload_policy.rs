//! Upload policies that ordinary `put`s do not reach: STAT of a file still being uploaded,
//! mtime changes on stored files, O_EXCL, the size limit and the spool's free-space floor.
//! paramiko is the client where OpenSSH cannot express the request (utime, open mode 'x') and
//! because it shows the server's message.

use std::time::Duration;

use crate::common::{paramiko_as_alice, write_random_file, Bench};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn stat_of_a_file_being_uploaded_shows_the_bytes_received_so_far() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    write_random_file(&bench.path("slow.bin"), 4 * MIB);
    // 4 MiB at 8000 kbit/s takes about 4 s: time enough to look while it is open.
    let mut uploader = bench
        .sftp_command(&alice, "put slow.bin\n", &["-l", "8000"])
        .spawn()
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while seen.is_none() && tokio::time::Instant::now() < deadline {
        let result =
            paramiko_as_alice(&bench, r#"result["size"] = sftp.stat("slow.bin").st_size"#).await;
        seen = result["size"]
            .as_u64()
            .filter(|size| *size > 0 && *size < 4 * MIB);
    }
    let found = seen.is_some();
    assert!(
        found,
        "STAT never showed a partial size while the upload was open"
    );
    assert!(
        bench.dropbox_metadata("/alice/slow.bin").await.is_none(),
        "STAT showed {seen:?} bytes, but nothing may be in Dropbox before CLOSE"
    );
    let status = uploader.wait().await.unwrap();
    assert!(status.success());
    assert_eq!(
        bench.dropbox_metadata("/alice/slow.bin").await.unwrap()["size"],
        4 * MIB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_a_stored_files_mtime_is_refused_unless_it_is_the_same() {
    let bench = Bench::start().await;
    bench
        .dropbox_upload("/alice/stored.txt", b"x".to_vec())
        .await;
    let stored = bench.dropbox_metadata("/alice/stored.txt").await.unwrap();
    let result = paramiko_as_alice(
        &bench,
        r#"
st = sftp.stat("stored.txt")
result["same"] = attempt(lambda: sftp.utime("stored.txt", (st.st_atime, st.st_mtime)))
result["within_1s"] = attempt(lambda: sftp.utime("stored.txt", (st.st_atime, st.st_mtime + 1)))
result["other"] = attempt(lambda: sftp.utime("stored.txt", (0, 981173106)))
result["chmod"] = attempt(lambda: sftp.chmod("stored.txt", 0o600))
"#,
    )
    .await;
    assert_eq!(result["same"], "ok", "{result}");
    assert_eq!(result["within_1s"], "ok", "{result}");
    assert_eq!(result["chmod"], "ok", "{result}");
    let other = result["other"].as_str().unwrap();
    assert!(
        other.starts_with("PermissionError")
            && other.contains("Dropbox does not support changing a file's modification time"),
        "{result}"
    );
    assert_eq!(
        bench.dropbox_metadata("/alice/stored.txt").await.unwrap()["client_modified"],
        stored["client_modified"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_mtime_change_ignore_the_request_succeeds_and_changes_nothing() {
    let bench =
        Bench::configured(|config, _| config.server.mtime_change = Some("ignore".into())).await;
    bench
        .dropbox_upload("/alice/stored.txt", b"x".to_vec())
        .await;
    let stored = bench.dropbox_metadata("/alice/stored.txt").await.unwrap();
    let result = paramiko_as_alice(
        &bench,
        r#"result["other"] = attempt(lambda: sftp.utime("stored.txt", (0, 981173106)))"#,
    )
    .await;
    assert_eq!(result["other"], "ok", "{result}");
    assert_eq!(
        bench.dropbox_metadata("/alice/stored.txt").await.unwrap()["client_modified"],
        stored["client_modified"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_with_excl_fails_on_an_existing_file_and_creates_a_new_one() {
    let bench = Bench::start().await;
    bench
        .dropbox_upload("/alice/taken.txt", b"old".to_vec())
        .await;
    let result = paramiko_as_alice(
        &bench,
        r#"
def write(name):
    with sftp.open(name, "wx") as f:
        f.write(b"new")
result["taken"] = attempt(lambda: write("taken.txt"))
result["fresh"] = attempt(lambda: write("fresh.txt"))
"#,
    )
    .await;
    assert_ne!(result["taken"], "ok", "{result}");
    assert_eq!(result["fresh"], "ok", "{result}");
    assert_eq!(bench.dropbox_download("/alice/taken.txt").await, b"old");
    assert_eq!(bench.dropbox_download("/alice/fresh.txt").await, b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_over_the_size_limit_is_refused_and_nothing_is_committed() {
    let bench = Bench::configured(|config, _| config.upload.max_file_size = Some(MIB)).await;
    write_random_file(&bench.path("big.bin"), 2 * MIB);
    write_random_file(&bench.path("fits.bin"), MIB);
    let result = paramiko_as_alice(
        &bench,
        r#"
result["big"] = attempt(lambda: send("big.bin", "big.bin"))
result["fits"] = attempt(lambda: send("fits.bin", "fits.bin"))
"#,
    )
    .await;
    let big = result["big"].as_str().unwrap();
    assert!(
        big.contains("maximum upload size of 1048576 bytes"),
        "{result}"
    );
    assert_eq!(result["fits"], "ok", "{result}");
    assert!(bench.dropbox_metadata("/alice/big.bin").await.is_none());
    assert_eq!(
        bench.dropbox_metadata("/alice/fits.bin").await.unwrap()["size"],
        MIB
    );
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_would_cross_the_free_space_floor_is_refused_at_once() {
    // A floor no disk can meet: the very first write is refused.
    let bench = Bench::configured(|config, _| config.upload.min_free_space = Some(1 << 50)).await;
    bench
        .dropbox_upload("/alice/keep.bin", b"old".to_vec())
        .await;
    write_random_file(&bench.path("keep.bin"), MIB);
    let result = paramiko_as_alice(
        &bench,
        r#"result["put"] = attempt(lambda: send("keep.bin", "keep.bin"))"#,
    )
    .await;
    let put = result["put"].as_str().unwrap();
    assert!(put.contains("low on spool space"), "{result}");
    assert_eq!(bench.dropbox_download("/alice/keep.bin").await, b"old");
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}
