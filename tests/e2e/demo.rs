//! `dropgate demo` as a user runs it: the lines it prints are the way in. The `sftp` line
//! connects as it is, and the `admin` line's address, user and one-time password sign in to
//! the admin page through its plain form.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::admin::AdminClient;
use crate::common::process::{dropgate_binary, free_port};
use crate::common::{host_key, stderr, GatewayConfig, USERS};

#[tokio::test]
async fn the_printed_sftp_and_admin_lines_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in USERS {
        host_key::write_key_pair(&host_key::generate(), &dir.path().join(name)).unwrap();
    }
    let api_url = format!("http://127.0.0.1:{}", free_port());
    let config = GatewayConfig::bench(dir.path(), &api_url);
    let config_path = dir.path().join("demo.toml");
    config.write(&config_path);

    let mut demo = dropgate_binary("warn")
        .arg("demo")
        .arg("--config")
        .arg(&config_path)
        .arg("--data")
        .arg(dir.path().join("data"))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (mut sftp_line, mut admin_line) = (None, None);
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("sftp ") {
                sftp_line = Some(line);
            } else if line.starts_with("admin ") {
                admin_line = Some(line);
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "demo printed no admin line in 60 s");
    let sftp_line = sftp_line.expect("an sftp line before the admin line");
    let admin_line = admin_line.unwrap();

    // admin http://127.0.0.1:PORT/ user=admin password=...
    let words: Vec<&str> = admin_line.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{admin_line}");
    assert!(words[1].starts_with("http://127.0.0.1:"), "{admin_line}");
    assert_eq!(words[2], "user=admin");
    let password = words[3].strip_prefix("password=").unwrap();
    assert!(
        password.len() >= 16,
        "a one-time password, not a word: {admin_line}"
    );
    let mut client = AdminClient::new(words[1]);
    assert_eq!(client.sign_in("admin", "not it").await.status, 401);
    let signed_in = client.sign_in("admin", password).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let accounts = client.get("/accounts").await;
    assert!(accounts.body.contains("healthy"), "{}", accounts.body);

    // The sftp line, as printed, with a batch of commands added.
    let batch = dir.path().join("batch");
    std::fs::write(&batch, "put demo.toml\nls\n").unwrap();
    let mut args: Vec<&str> = sftp_line.split_whitespace().skip(1).collect();
    let destination = args.pop().unwrap();
    let out = tokio::process::Command::new("sftp")
        .args(&args)
        .args(["-o", "BatchMode=yes", "-b"])
        .arg(&batch)
        .arg(destination)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{sftp_line}: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo.toml"));
    demo.kill().await.unwrap();
}
