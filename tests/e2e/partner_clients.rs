//! The clients partners' automated jobs run: Java JSch (Debian's `libjsch-java`, through
//! `tests/clients/JschTransfer.java`) and PuTTY's `pscp` over SFTP, each verifying the gateway's
//! host key, as a partner's job would.
//!
//! A refusal must reach the job as a failure (a non-zero exit) while nothing changes in
//! Dropbox, so that the job retries or alerts instead of losing a file. What Dropbox holds is
//! read from the emulator's own API. The clients must be installed (`.ci/run` installs them); a
//! missing one fails the test saying what to install, it never skips.

use crate::common::{
    content_hash, give_a_jsch_key, host_key, insufficient_space_fault, jsch, jsch_trusting,
    output_text, pscp, pscp_trusting, random_bytes, set_local_mtime, ssh_keygen_ecdsa, stderr,
    stdout, write_random_file, Bench, GatewayConfig, JschOp, Permission, Permissions, PscpProtocol,
};

const MIB: u64 = 1024 * 1024;

// ---- JSch ----

/// A bench JSch can use: a key alice logs in with (the ECDSA host key it verifies is served by
/// default), the config
/// otherwise changed by `configure`.
async fn jsch_bench(configure: impl FnOnce(&mut GatewayConfig) + Send + 'static) -> Bench {
    Bench::configured(|config, dir| {
        give_a_jsch_key(config, dir, "alice");
        configure(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn jsch_puts_a_file_and_gets_it_back() {
    let bench = jsch_bench(|_| {}).await;
    let data = random_bytes(300_000);
    std::fs::write(bench.path("report.csv"), &data).unwrap();
    bench.reset_emulator_stats().await;

    let out = jsch(
        &bench,
        &bench.user("alice"),
        &[
            JschOp::Put {
                local: "report.csv",
                remote: "report.csv",
            },
            JschOp::Get {
                remote: "report.csv",
                local: "back.csv",
            },
        ],
    )
    .await;

    assert!(out.status.success(), "JSch:\n{}", output_text(&out));
    // JSch verified the key the gateway serves for it (not one it skipped checking).
    assert!(
        stdout(&out).contains("host_key ecdsa-sha2-nistp256"),
        "{}",
        output_text(&out)
    );
    let meta = bench.dropbox_stored("/alice/report.csv").await;
    assert_eq!(meta["content_hash"], content_hash(&data), "{meta}");
    assert_eq!(bench.dropbox_download("/alice/report.csv").await, data);
    assert_eq!(std::fs::read(bench.path("back.csv")).unwrap(), data);
    let requests = bench.upload_requests().await;
    assert_eq!(
        (requests.upload, requests.session_requests()),
        (1, 0),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jsch_puts_a_large_file_as_an_upload_session() {
    let bench = jsch_bench(|config| config.upload.sessions_above(4 * MIB, 4 * MIB)).await;
    let size = 3 * 4 * MIB + 999;
    let hash = write_random_file(&bench.path("big.bin"), size);
    bench.reset_emulator_stats().await;

    let out = jsch(
        &bench,
        &bench.user("alice"),
        &[
            JschOp::Put {
                local: "big.bin",
                remote: "big.bin",
            },
            JschOp::Get {
                remote: "big.bin",
                local: "big-back.bin",
            },
        ],
    )
    .await;

    assert!(out.status.success(), "JSch:\n{}", output_text(&out));
    let meta = bench.dropbox_stored("/alice/big.bin").await;
    assert_eq!(meta["size"], size, "{meta}");
    assert_eq!(meta["content_hash"], hash, "{meta}");
    let requests = bench.upload_requests().await;
    assert_eq!(
        (
            requests.upload,
            requests.session_start,
            requests.session_finish
        ),
        (0, 1, 1),
        "a 12 MiB JSch put should be one upload session: {requests:?}"
    );
    assert_eq!(
        content_hash(&std::fs::read(bench.path("big-back.bin")).unwrap()),
        hash
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jsch_reports_a_refused_upload_with_the_servers_message() {
    let bench = jsch_bench(|config| {
        config.user("alice").permissions = Some(Permissions::all_but(Permission::Upload))
    })
    .await;
    std::fs::write(bench.path("report.csv"), random_bytes(50_000)).unwrap();

    let out = jsch(
        &bench,
        &bench.user("alice"),
        &[JschOp::Put {
            local: "report.csv",
            remote: "report.csv",
        }],
    )
    .await;

    assert_eq!(out.status.code(), Some(1), "JSch:\n{}", output_text(&out));
    // Status 3 is SSH_FX_PERMISSION_DENIED; the text is the gateway's.
    assert!(
        stderr(&out).contains("error put report.csv: 3 /report.csv: permission denied")
            && stderr(&out).contains("needs the \"upload\" permission"),
        "JSch should show the server's message:\n{}",
        output_text(&out)
    );
    assert!(bench.dropbox_metadata("/alice/report.csv").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn jsch_reports_a_commit_dropbox_refused() {
    let bench = jsch_bench(|_| {}).await;
    std::fs::write(bench.path("report.csv"), random_bytes(80_000)).unwrap();
    bench.set_emulator_faults(insufficient_space_fault()).await;

    let out = jsch(
        &bench,
        &bench.user("alice"),
        &[JschOp::Put {
            local: "report.csv",
            remote: "report.csv",
        }],
    )
    .await;

    // JSch reads the status of its CLOSE: the job sees the failure and Dropbox's reason.
    assert_eq!(out.status.code(), Some(1), "JSch:\n{}", output_text(&out));
    let text = stderr(&out);
    assert!(
        text.contains("the upload was not stored in Dropbox")
            && text.contains("insufficient_space"),
        "JSch should show Dropbox's reason:\n{}",
        output_text(&out)
    );
    assert!(bench.dropbox_metadata("/alice/report.csv").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn jsch_refuses_a_host_key_it_was_not_told_to_trust() {
    let bench = jsch_bench(|_| {}).await;
    std::fs::write(bench.path("report.csv"), random_bytes(10_000)).unwrap();
    // A known_hosts that names another ECDSA key for the gateway's address.
    let other = bench.path("other_host_key");
    ssh_keygen_ecdsa(&other, &[]);
    let known_hosts = bench.path("other_known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}",
            bench.port(),
            std::fs::read_to_string(other.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();

    let out = jsch_trusting(
        &bench,
        &bench.user("alice"),
        &known_hosts,
        &[JschOp::Put {
            local: "report.csv",
            remote: "report.csv",
        }],
    )
    .await;

    assert_eq!(out.status.code(), Some(2), "JSch:\n{}", output_text(&out));
    assert!(
        stderr(&out).contains("HostKey has been changed"),
        "{}",
        output_text(&out)
    );
    assert!(bench.dropbox_metadata("/alice/report.csv").await.is_none());
}

// ---- PuTTY pscp ----

fn local(bench: &Bench, name: &str) -> String {
    bench.path(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_uploads_and_downloads_over_sftp() {
    pscp_uploads_and_downloads(PscpProtocol::Sftp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_uploads_and_downloads_over_scp() {
    pscp_uploads_and_downloads(PscpProtocol::Scp).await;
}

async fn pscp_uploads_and_downloads(protocol: PscpProtocol) {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(300_000);
    std::fs::write(bench.path("up.bin"), &data).unwrap();
    let stored = random_bytes(200_000);
    bench
        .dropbox_upload("/alice/stored.bin", stored.clone())
        .await;

    let up = [local(&bench, "up.bin"), bench.remote(&alice, "up.bin")];
    let out = pscp(&bench, &alice, protocol, &up).await;
    assert!(out.status.success(), "pscp upload:\n{}", output_text(&out));
    let meta = bench.dropbox_stored("/alice/up.bin").await;
    assert_eq!(meta["content_hash"], content_hash(&data), "{meta}");

    let down = [
        bench.remote(&alice, "stored.bin"),
        local(&bench, "down.bin"),
    ];
    let out = pscp(&bench, &alice, protocol, &down).await;
    assert!(
        out.status.success(),
        "pscp download:\n{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read(bench.path("down.bin")).unwrap(), stored);
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_overwrites_a_larger_file_with_a_smaller_one_over_sftp() {
    pscp_overwrites_a_larger_file_with_a_smaller_one(PscpProtocol::Sftp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_overwrites_a_larger_file_with_a_smaller_one_over_scp() {
    pscp_overwrites_a_larger_file_with_a_smaller_one(PscpProtocol::Scp).await;
}

async fn pscp_overwrites_a_larger_file_with_a_smaller_one(protocol: PscpProtocol) {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/daily.csv", random_bytes(1_000_000))
        .await;
    let smaller = random_bytes(12_345);
    std::fs::write(bench.path("daily.csv"), &smaller).unwrap();

    let args = [
        local(&bench, "daily.csv"),
        bench.remote(&alice, "daily.csv"),
    ];
    let out = pscp(&bench, &alice, protocol, &args).await;

    assert!(out.status.success(), "pscp:\n{}", output_text(&out));
    let meta = bench.dropbox_stored("/alice/daily.csv").await;
    assert_eq!(meta["size"], smaller.len() as u64, "{meta}");
    assert_eq!(bench.dropbox_download("/alice/daily.csv").await, smaller);
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_fails_when_a_permission_is_missing_and_nothing_changes_over_sftp() {
    pscp_fails_when_a_permission_is_missing_and_nothing_changes(PscpProtocol::Sftp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_fails_when_a_permission_is_missing_and_nothing_changes_over_scp() {
    pscp_fails_when_a_permission_is_missing_and_nothing_changes(PscpProtocol::Scp).await;
}

async fn pscp_fails_when_a_permission_is_missing_and_nothing_changes(protocol: PscpProtocol) {
    let bench = Bench::configured(|config, _| {
        config.user("alice").permissions = Some(Permissions::preset("upload-only"))
    })
    .await;
    let alice = bench.user("alice");
    let old = random_bytes(40_000);
    bench.dropbox_upload("/alice/daily.csv", old.clone()).await;
    let before = bench.dropbox_stored("/alice/daily.csv").await;
    std::fs::write(bench.path("daily.csv"), random_bytes(30_000)).unwrap();

    // upload-only: a new file goes up, but replacing one needs "overwrite", reading "read".
    let replace = [
        local(&bench, "daily.csv"),
        bench.remote(&alice, "daily.csv"),
    ];
    let out = pscp(&bench, &alice, protocol, &replace).await;
    assert!(
        !out.status.success(),
        "pscp overwrite:\n{}",
        output_text(&out)
    );
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        output_text(&out)
    );
    bench
        .assert_unchanged("/alice/daily.csv", &before, &old)
        .await;

    let fetch = [
        bench.remote(&alice, "daily.csv"),
        local(&bench, "fetched.csv"),
    ];
    let out = pscp(&bench, &alice, protocol, &fetch).await;
    assert!(
        !out.status.success(),
        "pscp download:\n{}",
        output_text(&out)
    );
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        output_text(&out)
    );
    let fetched = std::fs::read(bench.path("fetched.csv")).unwrap_or_default();
    assert!(fetched.is_empty(), "pscp wrote {} bytes", fetched.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_refuses_a_host_key_whose_fingerprint_was_not_published() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("up.bin"), random_bytes(10_000)).unwrap();
    let other = host_key::fingerprint(&host_key::generate());

    let args = [local(&bench, "up.bin"), bench.remote(&alice, "up.bin")];
    let out = pscp_trusting(&bench, &alice, PscpProtocol::Sftp, &other, &args).await;

    assert!(!out.status.success(), "pscp:\n{}", output_text(&out));
    assert!(
        stderr(&out).contains("Host key not in manually configured list"),
        "{}",
        output_text(&out)
    );
    assert!(bench.dropbox_metadata("/alice/up.bin").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn pscp_over_scp_sends_a_tree_with_its_times() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let tree = bench.path("batch");
    std::fs::create_dir_all(tree.join("inner")).unwrap();
    let top = random_bytes(5_000);
    let nested = random_bytes(70_000);
    std::fs::write(tree.join("top.csv"), &top).unwrap();
    std::fs::write(tree.join("inner/nested.csv"), &nested).unwrap();
    let when = 1_600_000_000;
    set_local_mtime(&tree.join("inner/nested.csv"), when);

    let args = [
        "-r".to_string(),
        "-p".to_string(),
        local(&bench, "batch"),
        bench.remote(&alice, "/"),
    ];
    let out = pscp(&bench, &alice, PscpProtocol::Scp, &args).await;

    assert!(
        out.status.success(),
        "pscp -scp -r -p:\n{}",
        output_text(&out)
    );
    let meta = bench.dropbox_stored("/alice/batch/top.csv").await;
    assert_eq!(meta["content_hash"], content_hash(&top), "{meta}");
    let meta = bench.dropbox_stored("/alice/batch/inner/nested.csv").await;
    assert_eq!(meta["content_hash"], content_hash(&nested), "{meta}");
    assert_eq!(meta["client_modified"], "2020-09-13T12:26:40Z", "{meta}");
}
