//! Hostile paths from a real client (paramiko sends whatever string it is given): `..` chains,
//! absolute paths, empty paths, NUL, overlong components, Dropbox's disallowed names, trailing
//! spaces, backslashes and names that are not UTF-8. Each is refused with a clear message or mapped inside the user's
//! root; afterwards nothing exists in Dropbox outside that root.

use crate::common::{paramiko_as_alice, Bench};
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
    "latin1": b"caf\xe9.txt",
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
        ("write_latin1", "not valid UTF-8"),
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

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_session_ends_alone_and_other_sessions_carry_on() {
    let bench = Bench::start().await;
    bench
        .dropbox_upload("/alice/kept.txt", b"kept".to_vec())
        .await;
    let result = paramiko_as_alice(
        &bench,
        r#"
import struct
transport = client.get_transport()
def raw_session(payload, timeout=10):
    channel = transport.open_session()
    channel.invoke_subsystem("sftp")
    channel.sendall(payload)
    channel.settimeout(timeout)
    received = b""
    try:
        while True:
            data = channel.recv(65536)
            if not data:
                break
            received += data
    except Exception as e:
        received += ("<%s>" % type(e).__name__).encode()
    channel.close()
    return received
init = struct.pack(">IBI", 5, 1, 3)
# A length far beyond 256 KiB, then garbage.
result["oversized"] = raw_session(init + struct.pack(">I", 50_000_000) + b"\xff" * 64).hex()
# A known type whose body is cut short (OPEN with only an id).
result["truncated"] = raw_session(init + struct.pack(">IBI", 5, 3, 7)).hex()
# An unknown packet type gets OP_UNSUPPORTED (status 8) for its id, and the session goes on.
unknown = struct.pack(">IBI", 5, 99, 42)
stat = struct.pack(">IBI", 4 + 1 + 4 + 8, 17, 43) + struct.pack(">I", 8) + b"kept.txt"
# The session stays open, so the read ends by timing out.
result["unknown"] = raw_session(init + unknown + stat, timeout=2).hex()
# Meanwhile an ordinary session on the same connection works.
result["stat_after"] = sftp.stat("kept.txt").st_size
"#,
    )
    .await;
    let bytes = |key: &str| hex::decode(result[key].as_str().unwrap()).unwrap();

    // The server closed the hostile sessions (the client did not have to time out), having
    // answered at most the INIT before them.
    for key in ["oversized", "truncated"] {
        let reply = bytes(key);
        let text = String::from_utf8_lossy(&reply);
        assert!(
            !text.contains("Timeout") && !text.contains("<timeout>"),
            "{key}: the server kept a broken session open: {text}"
        );
        assert!(
            reply.is_empty() || reply.get(4) == Some(&2u8),
            "{key}: anything but VERSION came back: {reply:?}"
        );
    }
    // Unknown type: STATUS (101) for id 42 with OP_UNSUPPORTED (8), then ATTRS (105) for 43.
    let reply = bytes("unknown");
    let find = |kind: u8, id: u32| {
        reply
            .windows(5)
            .position(|w| w[0] == kind && w[1..5] == id.to_be_bytes())
    };
    let status_at = find(101, 42).expect("a STATUS reply for the unknown packet");
    assert_eq!(&reply[status_at + 5..status_at + 9], &8u32.to_be_bytes());
    assert!(
        find(105, 43).is_some(),
        "the session went on to answer STAT: {reply:?}"
    );
    assert_eq!(result["stat_after"], 4, "{result}");
}
