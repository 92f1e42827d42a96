//! Hostile paths from a real client (paramiko sends whatever string it is given): `..` chains,
//! absolute paths, empty paths, NUL, overlong components, Dropbox's disallowed names, trailing
//! spaces and backslashes. Each is refused with a clear message or mapped inside the user's
//! root; afterwards nothing exists in Dropbox outside that root.

mod common;

use common::{paramiko_as_alice, Bench};
use serde_json::Value;

/// What the gateway answered for each hostile path (written with `write`, read with `stat`).
async fn attempts(bench: &Bench) -> Value {
    paramiko_as_alice(
        bench,
        r#"
def write(name):
    with sftp.open(name, "w") as f:
        f.write(b"x")
cases = {
    "dotdot": "../../../outside.txt",
    "absolute_dotdot": "/../bob/planted.txt",
    "nul": "a\x00b.txt",
    "overlong": "x" * 256,
    "longest": "y" * 255,
    "desktop_ini": "desktop.ini",
    "ds_store": "sub/.DS_Store",
    "trailing_space": "name ",
    "backslash": "a\\b.txt",
}
for key, name in cases.items():
    result["write_" + key] = attempt(lambda: write(name))
result["stat_empty"] = attempt(lambda: sftp.stat(""))
result["realpath_escape"] = sftp.normalize("../../..")
result["realpath_missing_leaf"] = sftp.normalize("/docs/../new/file.txt")
result["listing"] = sorted(sftp.listdir("/"))
"#,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_paths_are_refused_or_stay_inside_the_root() {
    let bench = Bench::start().await;
    let result = attempts(&bench).await;
    let answer = |key: &str| result[key].as_str().unwrap_or_default().to_string();

    // `..` cannot climb out: the writes land inside alice's root.
    assert_eq!(answer("write_dotdot"), "ok", "{result}");
    assert_eq!(answer("write_absolute_dotdot"), "ok", "{result}");
    assert_eq!(bench.dropbox_download("/alice/outside.txt").await, b"x");
    assert_eq!(bench.dropbox_download("/alice/bob/planted.txt").await, b"x");
    assert!(bench.dropbox_metadata("/outside.txt").await.is_none());
    assert!(bench.dropbox_metadata("/bob/planted.txt").await.is_none());
    assert_eq!(result["realpath_escape"], "/", "{result}");
    assert_eq!(result["realpath_missing_leaf"], "/new/file.txt", "{result}");
    assert_eq!(
        answer("stat_empty"),
        "ok",
        "the empty path is the home: {result}"
    );

    // Names Dropbox cannot store are refused before any request, with the reason.
    for (key, reason) in [
        ("write_nul", "NUL"),
        ("write_overlong", "longer than 255"),
        (
            "write_desktop_ini",
            "Dropbox does not store files with this name",
        ),
        (
            "write_ds_store",
            "Dropbox does not store files with this name",
        ),
        ("write_trailing_space", "ends with a space"),
        ("write_backslash", "does not allow \\"),
    ] {
        let text = answer(key);
        assert!(
            text.starts_with("OSError") && text.contains(reason),
            "{key}: expected a refusal naming {reason:?}, got {text:?}"
        );
    }
    assert_eq!(
        answer("write_longest"),
        "ok",
        "a 255-byte name is allowed: {result}"
    );
    assert!(bench
        .dropbox_metadata(&format!("/alice/{}", "y".repeat(255)))
        .await
        .is_some());

    // Nothing was created anywhere but alice's root.
    assert_eq!(bench.dropbox_list("").await, vec!["alice".to_string()]);
}
