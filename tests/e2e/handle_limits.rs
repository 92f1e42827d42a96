//! Resource bounds seen from a real client: paramiko opening thousands of handles on one SFTP
//! session gets a clean FAILURE ("too many open handles") once the per-session limit is
//! reached, the session keeps working, closing handles makes room again, and write handles
//! (each a spool file) are bounded the same way and leave nothing behind when the client goes.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// The default `[limits] max_handles_per_session`.
const MAX_HANDLES: u64 = 256;
/// How many opens the client tries on one session.
const OPENS: u64 = 3000;

/// Opens `remote` OPENS times for reading, then (after closing them) OPENS times for writing
/// new files, never closing; prints one JSON line with what happened.
const PARAMIKO_HANDLES: &str = r#"
host, port, user, key, known_hosts, remote, opens = sys.argv[1:8]
opens = int(opens)
client = connect(host, port, user, known_hosts, key=key)
sftp = client.open_sftp()

def open_many(mode, name):
    handles, errors = [], {}
    for i in range(opens):
        try:
            handles.append(sftp.open(name(i), mode))
        except IOError as e:
            text = "%s: %s" % (type(e).__name__, e)
            errors[text] = errors.get(text, 0) + 1
    return handles, errors

result = {}
handles, errors = open_many("r", lambda i: remote)
result["read_opened"] = len(handles)
result["read_errors"] = errors
# The session still answers, and a closed handle makes room for a new one.
result["stat_size"] = sftp.stat(remote).st_size
handles.pop().close()
again = sftp.open(remote, "r")
result["reopened"] = again.read(5).decode()
again.close()
for h in handles:
    h.close()

handles, errors = open_many("w", lambda i: "new-%04d.bin" % i)
result["write_opened"] = len(handles)
result["write_errors"] = errors
print(json.dumps(result), flush=True)
# Leave without closing: the open uploads must commit nothing and leave no spool file.
client.close()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_handles_get_a_clean_failure_after_the_limit() {
    let bench = Bench::start().await;
    let alice = bench.user("alice");
    bench
        .dropbox_upload("/alice/data.txt", b"hello handles".to_vec())
        .await;

    let mut command = paramiko_as(&bench, &alice, PARAMIKO_HANDLES);
    command.arg("data.txt").arg(OPENS.to_string());
    let out = run_bounded(command, "python3 (paramiko)").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let result: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}", output_text(&out)));
    println!("{result}");

    assert_eq!(result["read_opened"], MAX_HANDLES, "{result}");
    assert_eq!(result["write_opened"], MAX_HANDLES, "{result}");
    for errors in [&result["read_errors"], &result["write_errors"]] {
        let errors = errors.as_object().unwrap();
        assert_eq!(errors.len(), 1, "one kind of refusal: {errors:?}");
        let (text, count) = errors.iter().next().unwrap();
        assert_eq!(count.as_u64(), Some(OPENS - MAX_HANDLES));
        assert!(text.contains("too many open handles"), "{text}");
    }
    assert_eq!(result["stat_size"], 13);
    assert_eq!(result["reopened"], "hello");

    // The abandoned uploads: no spool file left, nothing committed.
    bench.wait_for_empty_spool(Duration::from_secs(10)).await;
    assert!(bench
        .dropbox_metadata("/alice/new-0000.bin")
        .await
        .is_none());
    assert_eq!(
        bench.upload_requests().await.commits(),
        1,
        "only the setup upload"
    );
}
