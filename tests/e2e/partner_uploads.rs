//! Upload-only partners on their clients' defaults. WinSCP uploads a file above 100 KB to
//! `NAME.filepart` and renames it when done, then sets its mtime; lftp (`xfer:use-temp-file`)
//! and FileZilla have the same habit. Such a partner may rename what its own session has just
//! uploaded, to a name that is free, and nothing else: not a file from an earlier session, of
//! another session or user, nor onto a file that exists without "overwrite".
//!
//! WinSCP's packets are replayed with paramiko (OPEN WRITE|CREAT|TRUNC, WRITEs, CLOSE, RENAME,
//! SETSTAT mtime); lftp runs as itself.

use serde_json::Value;

use crate::common::{
    lftp, output_text, paramiko_as, paramiko_json, random_bytes, Bench, Permissions, TestUser,
};

/// WinSCP's upload of `local` as `name` in one SFTP session, step by step; each step's outcome
/// in `result` ("ok" or the exception). The mtime is the local file's, long past.
const WINSCP_UPLOAD: &str = r#"
host, port, user, key, known_hosts, local, name = sys.argv[1:8]
client = connect(host, port, user, known_hosts, key=key)
sftp = client.open_sftp()
result = {}
part = name + ".filepart"
result["stat_target"] = attempt(lambda: sftp.stat(name))
def upload():
    # paramiko's "w" is WinSCP's OPEN flags: WRITE|CREAT|TRUNC.
    with open(local, "rb") as src, sftp.open(part, "w") as dst:
        while True:
            block = src.read(32768)
            if not block:
                break
            dst.write(block)
result["upload"] = attempt(upload)
result["rename"] = attempt(lambda: sftp.rename(part, name))
result["setstat"] = attempt(lambda: sftp.utime(name, (981173106, 981173106)))
print(json.dumps(result))
"#;

/// A bench where alice is upload-only, with `mtime_change` of her own if given and the
/// server's if given.
async fn upload_only_alice(own: Option<&'static str>, server: Option<&'static str>) -> Bench {
    Bench::audited(move |config, _| {
        config.server.mtime_change = server.map(str::to_string);
        let alice = config.user("alice");
        alice.permissions = Some(Permissions::preset("upload-only"));
        alice.mtime_change = own.map(str::to_string);
    })
    .await
}

/// Runs [`WINSCP_UPLOAD`] of `data` as `name` for `user`.
async fn winscp_upload(bench: &Bench, user: &TestUser, name: &str, data: &[u8]) -> Value {
    let local = bench.path(&format!("local-{name}"));
    std::fs::write(&local, data).unwrap();
    let mut command = paramiko_as(bench, user, WINSCP_UPLOAD);
    command.arg(&local).arg(name);
    paramiko_json(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn winscp_filepart_upload_as_upload_only_with_the_users_mtime_change_ignore() {
    // The server rejects mtime changes; alice's own setting ignores them.
    let bench = upload_only_alice(Some("ignore"), None).await;
    let data = random_bytes(300 * 1024);
    let result = winscp_upload(&bench, &bench.user("alice"), "report.csv", &data).await;
    assert!(
        result["stat_target"]
            .as_str()
            .unwrap()
            .starts_with("FileNotFoundError"),
        "{result}"
    );
    for step in ["upload", "rename", "setstat"] {
        assert_eq!(result[step], "ok", "{step}: {result}");
    }
    assert_eq!(bench.dropbox_download("/alice/report.csv").await, data);
    assert_eq!(bench.dropbox_list("/alice").await, vec!["report.csv"]);
    let renamed = bench
        .audit_lines()
        .into_iter()
        .find(|l| l["op"] == "rename")
        .unwrap();
    assert_eq!(renamed["result"], "ok", "{renamed}");
    assert_eq!(renamed["path"], "/report.csv.filepart", "{renamed}");
    assert_eq!(renamed["target"], "/report.csv", "{renamed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_users_mtime_change_reject_the_setstat_is_refused_naming_the_path() {
    // The server ignores mtime changes; alice's own setting rejects them.
    let bench = upload_only_alice(Some("reject"), Some("ignore")).await;
    let data = random_bytes(150 * 1024);
    let result = winscp_upload(&bench, &bench.user("alice"), "report.csv", &data).await;
    assert_eq!(result["upload"], "ok", "{result}");
    assert_eq!(result["rename"], "ok", "{result}");
    let setstat = result["setstat"].as_str().unwrap();
    assert!(
        setstat.starts_with("PermissionError")
            && setstat.contains("/report.csv: Dropbox does not support changing"),
        "{result}"
    );
    // The refusal is the mtime's alone: the upload is in Dropbox, under its final name.
    assert_eq!(bench.dropbox_download("/alice/report.csv").await, data);
    assert_eq!(bench.dropbox_list("/alice").await, vec!["report.csv"]);
    // bob, without a setting of his own, gets the server's.
    let result = winscp_upload(&bench, &bench.user("bob"), "b.csv", b"bob's").await;
    assert_eq!(result["setstat"], "ok", "{result}");
}

/// An upload-only partner renames only what its own session uploaded: not a file put there
/// before (by anyone), not its own upload of an earlier session, not one of another session
/// of its connection, nor one of another user in the same folder.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_only_user_cannot_rename_a_file_it_did_not_upload_in_this_session() {
    let bench = Bench::audited(|config, _| {
        for name in ["alice", "bob"] {
            let user = config.user(name);
            user.permissions = Some(Permissions::preset("upload-only"));
            user.root = "/shared".into();
        }
    })
    .await;
    bench
        .dropbox_upload("/shared/seeded.csv", b"seeded".to_vec())
        .await;
    let earlier = winscp_upload(&bench, &bench.user("alice"), "early.csv", b"early").await;
    assert_eq!(earlier["rename"], "ok", "{earlier}");
    let from_bob = winscp_upload(&bench, &bench.user("bob"), "bob.csv", b"bob's").await;
    assert_eq!(from_bob["rename"], "ok", "{from_bob}");

    let script = r#"
host, port, user, key, known_hosts = sys.argv[1:6]
client = connect(host, port, user, known_hosts, key=key)
first, second = client.open_sftp(), client.open_sftp()
result = {}
with first.open("mine.csv.filepart", "w") as f:
    f.write(b"this session's")
for name in ["seeded.csv", "early.csv", "bob.csv"]:
    result[name] = attempt(lambda: first.rename(name, name + ".moved"))
result["other_session"] = attempt(lambda: second.rename("mine.csv.filepart", "x.csv"))
result["own"] = attempt(lambda: first.rename("mine.csv.filepart", "mine.csv"))
print(json.dumps(result))
"#;
    let result = paramiko_json(paramiko_as(&bench, &bench.user("alice"), script)).await;
    for refused in ["seeded.csv", "early.csv", "bob.csv", "other_session"] {
        let message = result[refused].as_str().unwrap();
        assert!(
            message.starts_with("PermissionError") && message.contains("\"rename\" permission"),
            "{refused}: {result}"
        );
    }
    assert_eq!(result["own"], "ok", "{result}");
    let mut names = bench.dropbox_list("/shared").await;
    names.sort();
    assert_eq!(names, ["bob.csv", "early.csv", "mine.csv", "seeded.csv"]);
}

/// Its own upload onto an existing file: WinSCP's REMOVE of the target needs "delete", a plain
/// RENAME fails on the existing target and a posix-rename needs "overwrite"; the file stays as
/// it was. With "overwrite" the posix-rename replaces it.
#[tokio::test(flavor = "multi_thread")]
async fn renaming_its_own_upload_onto_an_existing_file_needs_overwrite() {
    let bench = Bench::audited(|config, _| {
        config.user("alice").permissions = Some(Permissions::preset("upload-only"));
        config.user("bob").permissions =
            Some(Permissions::List(vec!["upload".into(), "overwrite".into()]));
    })
    .await;
    let old = b"yesterday's report".to_vec();
    for user in ["alice", "bob"] {
        bench
            .dropbox_upload(&format!("/{user}/report.csv"), old.clone())
            .await;
    }
    let before = bench.dropbox_stored("/alice/report.csv").await;
    let script = r#"
host, port, user, key, known_hosts = sys.argv[1:6]
client = connect(host, port, user, known_hosts, key=key)
sftp = client.open_sftp()
result = {}
with sftp.open("report.csv.filepart", "w") as f:
    f.write(b"today's report")
result["remove"] = attempt(lambda: sftp.remove("report.csv"))
result["rename"] = attempt(lambda: sftp.rename("report.csv.filepart", "report.csv"))
result["posix_rename"] = attempt(lambda: sftp.posix_rename("report.csv.filepart", "report.csv"))
print(json.dumps(result))
"#;
    let alice = paramiko_json(paramiko_as(&bench, &bench.user("alice"), script)).await;
    let refused = |step: &str, needle: &str| {
        let message = alice[step].as_str().unwrap();
        assert!(
            message != "ok" && message.contains(needle),
            "{step}: {alice}"
        );
    };
    refused("remove", "\"delete\" permission");
    refused("rename", "already exists");
    refused("posix_rename", "\"overwrite\" permission");
    bench
        .assert_unchanged("/alice/report.csv", &before, &old)
        .await;

    let bob = paramiko_json(paramiko_as(&bench, &bench.user("bob"), script)).await;
    assert_eq!(bob["posix_rename"], "ok", "{bob}");
    assert_eq!(
        bench.dropbox_download("/bob/report.csv").await,
        b"today's report"
    );
    assert_eq!(bench.dropbox_list("/bob").await, vec!["report.csv"]);
}

/// lftp with `xfer:use-temp-file` puts to a temporary name and renames it when done.
#[tokio::test(flavor = "multi_thread")]
async fn lftp_puts_through_a_temporary_name_as_an_upload_only_user() {
    let bench = upload_only_alice(None, None).await;
    let data = random_bytes(200 * 1024);
    std::fs::write(bench.path("data.bin"), &data).unwrap();
    let out = lftp(&bench, "set xfer:use-temp-file yes\nput data.bin\n").await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(bench.dropbox_download("/alice/data.bin").await, data);
    assert_eq!(bench.dropbox_list("/alice").await, vec!["data.bin"]);
    let renamed = bench
        .audit_lines()
        .into_iter()
        .find(|l| l["op"] == "rename")
        .unwrap_or_else(|| panic!("lftp did not rename: {:#?}", bench.audit_lines()));
    assert_eq!(renamed["result"], "ok", "{renamed}");
    assert_eq!(renamed["target"], "/data.bin", "{renamed}");
}
