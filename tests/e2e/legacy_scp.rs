//! The legacy SCP protocol with the real OpenSSH `scp -O` (what every OpenSSH before 9.0 speaks
//! by default): files and trees both ways, times, overwrites, refusals the client prints, a
//! failed commit that must be an error, and commands that are not scp still refused.
//!
//! What Dropbox holds is read back from the emulator's own API, never through the gateway.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use crate::common::{
    content_hash, insufficient_space_fault, output_text, paramiko_as, paramiko_json, random_bytes,
    set_local_mtime, stdout, Bench, Permission, Permissions, TestUser,
};

const MIB: u64 = 1024 * 1024;
/// 2001-02-03T04:05:06Z
const PAST_MTIME: u64 = 981_173_106;
const PAST_MTIME_TEXT: &str = "2001-02-03T04:05:06Z";

/// Runs `scp -O` (the legacy protocol, not SFTP) with `args`.
async fn scp_legacy(bench: &Bench, user: &TestUser, args: &[&str]) -> std::process::Output {
    let mut all = vec!["-O".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    bench.scp(user, &all).await
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(out.status.success(), "{what}:\n{}", output_text(out));
}

/// The client failed and printed `expected` (scp prints the server's error lines).
fn assert_failed_saying(out: &std::process::Output, expected: &str, what: &str) {
    assert!(
        !out.status.success(),
        "{what} succeeded:\n{}",
        output_text(out)
    );
    assert!(
        output_text(out).contains(expected),
        "{what}: scp should print {expected:?}:\n{}",
        output_text(out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_goes_up_and_comes_back_unchanged() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let data = random_bytes(300_007);
    std::fs::write(bench.path("one.bin"), &data).unwrap();

    let up = scp_legacy(
        &bench,
        &alice,
        &["one.bin", &bench.remote(&alice, "one.bin")],
    )
    .await;
    assert_ok(&up, "scp -O upload");
    let meta = bench.dropbox_stored("/alice/one.bin").await;
    assert_eq!(meta["content_hash"], content_hash(&data), "{meta}");
    assert_eq!(bench.dropbox_download("/alice/one.bin").await, data);

    let down = scp_legacy(
        &bench,
        &alice,
        &[&bench.remote(&alice, "one.bin"), "back.bin"],
    )
    .await;
    assert_ok(&down, "scp -O download");
    assert_eq!(std::fs::read(bench.path("back.bin")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_byte_file_goes_both_ways() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("empty.txt"), b"").unwrap();

    let up = scp_legacy(&bench, &alice, &["empty.txt", &bench.remote(&alice, "")]).await;
    assert_ok(&up, "scp -O upload of an empty file");
    let meta = bench.dropbox_stored("/alice/empty.txt").await;
    assert_eq!(meta["size"], 0, "{meta}");

    let down = scp_legacy(
        &bench,
        &alice,
        &[&bench.remote(&alice, "empty.txt"), "empty-back.txt"],
    )
    .await;
    assert_ok(&down, "scp -O download of an empty file");
    assert_eq!(std::fs::read(bench.path("empty-back.txt")).unwrap(), b"");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_goes_up_as_an_upload_session() {
    let bench = Bench::with_upload_sessions(MIB, 4 * MIB).await;
    let alice = bench.user("alice");
    let data = random_bytes(9 * MIB as usize + 123);
    std::fs::write(bench.path("large.bin"), &data).unwrap();
    bench.reset_emulator_stats().await;

    let up = scp_legacy(
        &bench,
        &alice,
        &["large.bin", &bench.remote(&alice, "large.bin")],
    )
    .await;
    assert_ok(&up, "scp -O upload of a large file");

    let requests = bench.upload_requests().await;
    assert!(
        requests.session_requests() >= 3,
        "an upload session carried it: {requests:?}"
    );
    let meta = bench.dropbox_stored("/alice/large.bin").await;
    assert_eq!(meta["content_hash"], content_hash(&data), "{meta}");

    let down = scp_legacy(
        &bench,
        &alice,
        &[&bench.remote(&alice, "large.bin"), "large-back.bin"],
    )
    .await;
    assert_ok(&down, "scp -O download of a large file");
    assert!(std::fs::read(bench.path("large-back.bin")).unwrap() == data);
}

#[tokio::test(flavor = "multi_thread")]
async fn several_files_go_into_a_folder_and_not_into_a_file() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/in/keep.txt", b"k".to_vec())
        .await;
    bench
        .dropbox_upload("/alice/plain.txt", b"p".to_vec())
        .await;
    std::fs::write(bench.path("one.txt"), b"one").unwrap();
    std::fs::write(bench.path("two.txt"), b"two").unwrap();

    // Several sources: OpenSSH asks for a folder (`scp -d -t in`).
    let into = scp_legacy(
        &bench,
        &alice,
        &["one.txt", "two.txt", &bench.remote(&alice, "in")],
    )
    .await;
    assert_ok(&into, "scp -O of two files into a folder");
    assert_eq!(bench.dropbox_download("/alice/in/one.txt").await, b"one");
    assert_eq!(bench.dropbox_download("/alice/in/two.txt").await, b"two");

    let onto = scp_legacy(
        &bench,
        &alice,
        &["one.txt", "two.txt", &bench.remote(&alice, "plain.txt")],
    )
    .await;
    assert_failed_saying(&onto, "not a folder", "two files onto a file");
    assert_eq!(bench.dropbox_download("/alice/plain.txt").await, b"p");
}

/// tree/a.txt, tree/sub/b.bin, tree/sub/deeper/c.txt, tree/empty/
fn make_tree(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("a.txt", b"alpha".to_vec()),
        ("sub/b.bin", random_bytes(70_000)),
        ("sub/deeper/c.txt", b"gamma".to_vec()),
    ];
    for (name, data) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    std::fs::create_dir_all(root.join("empty")).unwrap();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tree_goes_up_and_comes_back_with_r() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let files = make_tree(&bench.path("tree"));

    // Into the home: the tree keeps its name.
    let up = scp_legacy(&bench, &alice, &["-r", "tree", &bench.remote(&alice, ".")]).await;
    assert_ok(&up, "scp -O -r upload");
    for (name, data) in &files {
        assert_eq!(
            &bench.dropbox_download(&format!("/alice/tree/{name}")).await,
            data,
            "{name}"
        );
    }
    let empty = bench.dropbox_stored("/alice/tree/empty").await;
    assert_eq!(empty[".tag"], "folder", "{empty}");

    // To a name that does not exist: the tree is stored under that name.
    let again = scp_legacy(
        &bench,
        &alice,
        &["-r", "tree", &bench.remote(&alice, "copy")],
    )
    .await;
    assert_ok(&again, "scp -O -r upload to a new name");
    assert_eq!(
        bench.dropbox_download("/alice/copy/sub/deeper/c.txt").await,
        b"gamma"
    );

    let down = scp_legacy(
        &bench,
        &alice,
        &["-r", &bench.remote(&alice, "tree"), "back"],
    )
    .await;
    assert_ok(&down, "scp -O -r download");
    for (name, data) in &files {
        assert_eq!(
            &std::fs::read(bench.path("back").join(name)).unwrap(),
            data,
            "{name}"
        );
    }
    assert!(bench.path("back/empty").is_dir());
}

#[tokio::test(flavor = "multi_thread")]
async fn p_carries_the_modification_time_both_ways() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("dated.txt"), b"dated").unwrap();
    set_local_mtime(&bench.path("dated.txt"), PAST_MTIME);

    let up = scp_legacy(
        &bench,
        &alice,
        &["-p", "dated.txt", &bench.remote(&alice, "dated.txt")],
    )
    .await;
    assert_ok(&up, "scp -O -p upload");
    let meta = bench.dropbox_stored("/alice/dated.txt").await;
    assert_eq!(meta["client_modified"], PAST_MTIME_TEXT, "{meta}");

    let down = scp_legacy(
        &bench,
        &alice,
        &["-p", &bench.remote(&alice, "dated.txt"), "dated-back.txt"],
    )
    .await;
    assert_ok(&down, "scp -O -p download");
    let modified = std::fs::metadata(bench.path("dated-back.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, UNIX_EPOCH + Duration::from_secs(PAST_MTIME));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_replaces_an_existing_file_with_exactly_the_new_bytes() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/over.bin", random_bytes(2 * MIB as usize))
        .await;
    let data = random_bytes(10_001);
    std::fs::write(bench.path("over.bin"), &data).unwrap();

    let out = scp_legacy(
        &bench,
        &alice,
        &["over.bin", &bench.remote(&alice, "over.bin")],
    )
    .await;
    assert_ok(&out, "scp -O overwrite");
    let meta = bench.dropbox_stored("/alice/over.bin").await;
    assert_eq!(meta["size"], data.len() as u64, "{meta}");
    assert_eq!(bench.dropbox_download("/alice/over.bin").await, data);
}

async fn bench_where_alice_has(permissions: Permissions) -> Bench {
    let bench =
        Bench::configured(move |config, _| config.user("alice").permissions = Some(permissions))
            .await;
    bench
        .dropbox_upload("/alice/existing.txt", b"old content".to_vec())
        .await;
    std::fs::write(bench.path("existing.txt"), b"new content").unwrap();
    bench
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_only_partner_uploads_but_cannot_replace_or_download() {
    let bench = bench_where_alice_has(Permissions::preset("upload-only")).await;
    let alice = bench.user("alice");
    let before = bench.dropbox_stored("/alice/existing.txt").await;
    std::fs::write(bench.path("delivery.txt"), b"delivery").unwrap();

    let new = scp_legacy(&bench, &alice, &["delivery.txt", &bench.remote(&alice, "")]).await;
    assert_ok(&new, "an upload-only user's new file");
    assert_eq!(
        bench.dropbox_download("/alice/delivery.txt").await,
        b"delivery"
    );

    let replace = scp_legacy(
        &bench,
        &alice,
        &["existing.txt", &bench.remote(&alice, "existing.txt")],
    )
    .await;
    assert_failed_saying(
        &replace,
        "needs the \"overwrite\" permission",
        "an upload-only user replacing a file",
    );
    bench
        .assert_unchanged("/alice/existing.txt", &before, b"old content")
        .await;

    let fetch = scp_legacy(
        &bench,
        &alice,
        &[&bench.remote(&alice, "existing.txt"), "fetched.txt"],
    )
    .await;
    assert_failed_saying(
        &fetch,
        "needs the \"read\" permission",
        "an upload-only user downloading",
    );
    assert!(!bench.path("fetched.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn r_needs_the_mkdir_permission_for_a_new_folder_but_not_for_an_existing_one() {
    let bench = bench_where_alice_has(Permissions::all_but(Permission::Mkdir)).await;
    let alice = bench.user("alice");
    make_tree(&bench.path("tree"));

    let out = scp_legacy(&bench, &alice, &["-r", "tree", &bench.remote(&alice, "")]).await;
    assert_failed_saying(
        &out,
        "needs the \"mkdir\" permission",
        "scp -r without mkdir",
    );
    assert!(bench.dropbox_metadata("/alice/tree").await.is_none());

    // Into folders that exist already, files need no mkdir.
    bench
        .dropbox_upload("/alice/flat/old.txt", b"x".to_vec())
        .await;
    std::fs::create_dir_all(bench.path("flat")).unwrap();
    std::fs::write(bench.path("flat/new.txt"), b"new").unwrap();
    let flat = scp_legacy(&bench, &alice, &["-r", "flat", &bench.remote(&alice, "")]).await;
    assert_ok(&flat, "scp -r into an existing folder");
    assert_eq!(bench.dropbox_download("/alice/flat/new.txt").await, b"new");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_is_an_error_and_stores_nothing() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    std::fs::write(bench.path("full.bin"), random_bytes(50_000)).unwrap();
    bench.set_emulator_faults(insufficient_space_fault()).await;

    let out = scp_legacy(
        &bench,
        &alice,
        &["full.bin", &bench.remote(&alice, "full.bin")],
    )
    .await;
    bench.clear_emulator_faults().await;

    assert_failed_saying(&out, "insufficient_space", "scp -O with a failing commit");
    assert!(bench.dropbox_metadata("/alice/full.bin").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_source_or_a_folder_without_r_is_an_error() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/folder/inside.txt", b"x".to_vec())
        .await;

    let missing = scp_legacy(
        &bench,
        &alice,
        &[&bench.remote(&alice, "nope.txt"), "nope.txt"],
    )
    .await;
    assert_failed_saying(&missing, "nope.txt", "downloading a missing file");
    assert!(!bench.path("nope.txt").exists());

    let folder = scp_legacy(&bench, &alice, &[&bench.remote(&alice, "folder"), "got"]).await;
    assert_failed_saying(&folder, "not a regular file", "a folder without -r");
    assert!(!bench.path("got").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn other_commands_and_shells_are_still_refused() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    let started = std::time::Instant::now();
    let out = bench.ssh(&alice, "echo hi").await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(!stdout(&out).contains("hi"), "{}", output_text(&out));
    // scp with an option we do not serve, and scp behind a shell construct, are not scp.
    for command in ["scp -t -x .", "scp -t . ; echo hi", "sh -c 'scp -t .'"] {
        let out = bench.ssh(&alice, command).await;
        assert!(!out.status.success(), "{command}: {}", output_text(&out));
        assert!(!stdout(&out).contains("hi"), "{}", output_text(&out));
    }
    // An scp command we cannot serve says why, on stderr.
    let unquoted = bench.ssh(&alice, "scp -t with space.txt").await;
    assert_failed_saying(
        &unquoted,
        "2 upload targets (a path with spaces must be quoted",
        "an unquoted path with a space",
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Speaks SCP by hand on exec channels of one connection: a name that is a path, a malformed
/// record, then SFTP on the same connection.
const HAND_MADE_SCP: &str = r#"
host, port, user, key, known_hosts = sys.argv[1:6]
client = connect(host, port, user, known_hosts, key=key)
transport = client.get_transport()
result = {}

def line(chan):
    data = b""
    while not data.endswith(b"\n"):
        piece = chan.recv(1)
        if not piece:
            break
        data += piece
    return data.decode("utf-8", "replace")

chan = transport.open_session()
chan.exec_command("scp -t .")
result["ready"] = chan.recv(1).hex()
chan.sendall(b"C0644 3 ../evil\n")
result["path_name"] = line(chan)
chan.sendall(b"C0644 3 good.txt\n")
result["good_ready"] = chan.recv(1).hex()
chan.sendall(b"abc\0")
result["good_stored"] = chan.recv(1).hex()
chan.sendall(b"Q what is this\n")
result["malformed"] = line(chan)
result["status"] = chan.recv_exit_status()
chan.close()

chan = transport.open_session()
chan.exec_command("scp -t half.txt")
chan.recv(1)
chan.sendall(b"C0644 100000 half.txt\n")
chan.recv(1)
chan.sendall(b"only part of it")
chan.shutdown_write()
result["half_status"] = chan.recv_exit_status()
chan.close()

sftp = client.open_sftp()
result["sftp_after"] = sorted(sftp.listdir("."))
print(json.dumps(result))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_malformed_records_and_a_vanished_sender_end_only_their_channel() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");

    let result = paramiko_json(paramiko_as(&bench, &alice, HAND_MADE_SCP)).await;

    assert_eq!(result["ready"], "00", "{result}");
    let refused = result["path_name"].as_str().unwrap();
    assert!(
        refused.starts_with('\u{1}') && refused.contains("not a file name"),
        "{result}"
    );
    assert_eq!(result["good_ready"], "00", "{result}");
    assert_eq!(result["good_stored"], "00", "{result}");
    assert!(
        result["malformed"]
            .as_str()
            .unwrap()
            .contains("protocol error"),
        "{result}"
    );
    assert_eq!(result["status"], 1, "{result}");
    assert_eq!(result["half_status"], 1, "{result}");
    assert_eq!(result["sftp_after"], json!(["good.txt"]), "{result}");
    assert_eq!(bench.dropbox_download("/alice/good.txt").await, b"abc");
    assert!(bench.dropbox_metadata("/evil").await.is_none());
    assert!(bench.dropbox_metadata("/alice/half.txt").await.is_none());
    // The half upload's spool file is gone with it.
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
}

/// Holds an SFTP session, tries an scp upload beside it, then again once the SFTP session ended.
const SCP_BESIDE_SFTP: &str = r#"
import time
host, port, user, key, known_hosts = sys.argv[1:6]
client = connect(host, port, user, known_hosts, key=key)
transport = client.get_transport()
result = {}

def scp_upload(name):
    chan = transport.open_session()
    try:
        chan.exec_command("scp -t " + name)
    except Exception as e:
        stderr = chan.recv_stderr(4096).decode()
        chan.close()
        return "refused: " + stderr
    chan.recv(1)
    chan.sendall(b"C0644 2 " + name.encode() + b"\nhi\0")
    chan.recv(1)
    answer = chan.recv(1)
    chan.shutdown_write()
    status = chan.recv_exit_status()
    chan.close()
    return "answer %s status %d" % (answer.hex(), status)

sftp = client.open_sftp()
result["beside"] = scp_upload("beside.txt")
sftp.close()
for _ in range(100):
    result["after"] = scp_upload("after.txt")
    if not result["after"].startswith("refused"):
        break
    time.sleep(0.05)
print(json.dumps(result))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_scp_transfer_takes_a_place_in_the_users_session_quota() {
    let bench =
        Bench::configured(|config, _| config.limits.max_sftp_sessions_per_user = Some(1)).await;
    let alice = bench.user("alice");

    let result = paramiko_json(paramiko_as(&bench, &alice, SCP_BESIDE_SFTP)).await;

    let beside = result["beside"].as_str().unwrap();
    assert!(
        beside.starts_with("refused") && beside.contains("too many SFTP sessions"),
        "{result}"
    );
    assert!(bench.dropbox_metadata("/alice/beside.txt").await.is_none());
    assert_eq!(result["after"], "answer 00 status 0", "{result}");
    assert_eq!(bench.dropbox_download("/alice/after.txt").await, b"hi");
}
