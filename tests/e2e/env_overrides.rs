//! Settings from the environment and secrets from files, as a container or a secrets manager
//! hands them over: `dropgate serve` takes its listen address from `DROPGATE_SERVER__LISTEN`
//! and the account's refresh token from a file named by an environment variable, and works; a
//! bad value is refused naming the variable, a secret file others can read naming the file, and
//! no secret is ever printed.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{dropgate_binary, random_bytes, wait_until_listening, ServeDir};
use dropbox_emulator::demo_credentials as demo;

/// The bench config with no refresh token and a listen address no test uses, written out; the
/// refresh token written to `refresh.token` with `mode`. Returns that file.
fn config_without_secret(served: &ServeDir, mode: u32) -> std::path::PathBuf {
    let mut config = served.config();
    config.server.listen = "127.0.0.1:1".into();
    config.accounts[0].refresh_token = None;
    config.write(&served.config_path());
    let token = served.path("refresh.token");
    std::fs::write(&token, format!("{}\n", demo::REFRESH_TOKEN)).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
    token
}

fn dropgate(command: &str, served: &ServeDir, env: &[(&str, String)]) -> tokio::process::Command {
    let mut process = dropgate_binary("dropgate=info");
    process
        .args([command, "--config"])
        .arg(served.config_path())
        .current_dir(served.dir.path());
    for (name, value) in env {
        process.env(name, value);
    }
    process
}

/// Runs `dropgate check-config` (or `serve` that must stop) to its end: (success, output).
async fn run_to_end(mut command: tokio::process::Command) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("dropgate did not finish")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_its_address_from_the_environment_and_its_token_from_a_file() {
    let served = ServeDir::new().await;
    let token = config_without_secret(&served, 0o600);
    let env = [
        (
            "DROPGATE_SERVER__LISTEN",
            format!("127.0.0.1:{}", served.port),
        ),
        (
            "DROPGATE_ACCOUNTS__MAIN__REFRESH_TOKEN_FILE",
            token.display().to_string(),
        ),
    ];
    let mut server = dropgate("serve", &served, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until_listening(served.port).await,
        "dropgate serve did not listen on the address from DROPGATE_SERVER__LISTEN"
    );
    served.trust_host_key();

    let data = random_bytes(200_000);
    std::fs::write(served.path("from-env.bin"), &data).unwrap();
    let out = served
        .sftp_as_alice(&served.path("alice"), "put from-env.bin\n", &[])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = served.dropbox().download("/alice/from-env.bin").await;
    assert_eq!(stored, data);

    server.start_kill().unwrap();
    let log = server.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&log.stderr);
    assert!(!log.contains(demo::REFRESH_TOKEN), "the token was logged");
}

#[tokio::test]
async fn a_bad_value_in_the_environment_is_refused_naming_the_variable() {
    let served = ServeDir::new().await;
    let token = config_without_secret(&served, 0o600);
    let token_env = (
        "DROPGATE_ACCOUNTS__MAIN__REFRESH_TOKEN_FILE",
        token.display().to_string(),
    );

    let env = [
        token_env.clone(),
        ("DROPGATE_UPLOAD__CONNECTIONS", "lots".to_string()),
    ];
    let (ok, out) = run_to_end(dropgate("check-config", &served, &env)).await;
    assert!(!ok, "check-config accepted connections = lots:\n{out}");
    assert!(
        out.contains("DROPGATE_UPLOAD__CONNECTIONS (sets upload.connections)"),
        "{out}"
    );

    let env = [
        token_env.clone(),
        ("DROPGATE_UPLOAD__CONNECTIONS", "64".to_string()),
    ];
    let (ok, out) = run_to_end(dropgate("serve", &served, &env)).await;
    assert!(!ok, "serve started with 64 connections:\n{out}");
    assert!(out.contains("set by DROPGATE_UPLOAD__CONNECTIONS"), "{out}");
    assert!(out.contains("upload.connections must be 1 to 16"), "{out}");

    let env = [
        token_env,
        ("DROPGATE_ACCOUNTS__MIAN__APP_KEY", "x".to_string()),
    ];
    let (ok, out) = run_to_end(dropgate("check-config", &served, &env)).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("DROPGATE_ACCOUNTS__MIAN__APP_KEY: accounts: no entry named MIAN"),
        "{out}"
    );
    assert!(!out.contains(demo::REFRESH_TOKEN), "{out}");
}

#[tokio::test]
async fn a_secret_file_others_can_read_is_refused_naming_it_and_never_printed() {
    let served = ServeDir::new().await;
    let token = config_without_secret(&served, 0o644);
    let env = [(
        "DROPGATE_ACCOUNTS__MAIN__REFRESH_TOKEN_FILE",
        token.display().to_string(),
    )];
    let (ok, out) = run_to_end(dropgate("serve", &served, &env)).await;
    assert!(
        !ok,
        "serve started with a token file others can read:\n{out}"
    );
    assert!(
        out.contains("accounts.main.refresh_token_file")
            && out.contains(&token.display().to_string())
            && out.contains("readable by others"),
        "{out}"
    );
    assert!(!out.contains(demo::REFRESH_TOKEN), "{out}");
}
