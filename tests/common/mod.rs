//! What the end-to-end tests share: a bench of a real emulator and a real gateway, the real
//! clients that drive it, the emulator's own API as the source of truth, the gateway's config
//! typed, and the `dropgate` binary as a process of its own.
//!
//! What a test checks is read back from the emulator's own API (files/get_metadata,
//! files/download), never through the gateway under test.
//!
//! - `admin`: the admin web page from a plain HTTP client (its forms, its cookies);
//! - `bench`: the in-process emulator + gateway a test starts, and its files (spool, audit log);
//! - `clients`: OpenSSH and paramiko runs against it;
//! - `partner`: the clients partners run (Java JSch, PuTTY's pscp), as they run them;
//! - `dropbox`: the emulator's API and hooks, Dropbox's content_hash;
//! - `config`: the typed config file;
//! - `browser`: headless Chromium through chromedriver, for the web pages;
//! - `process`: `dropgate` run as a process of its own, /proc readings, and the lock on the
//!   process-wide counters. It stands apart from `bench` because the tests that need a real
//!   process (signals, its own memory and log) share nothing with the in-process bench but the
//!   config.

// Each test binary (tests/e2e and the ones that measure their own process) uses a part.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod bench;
pub mod browser;
pub mod clients;
pub mod config;
pub mod dropbox;
pub mod partner;
pub mod process;

pub use bench::{Bench, BenchOptions, TestUser, USERS};
pub use browser::Browser;
pub use clients::{
    lftp, output_text, paramiko_as, paramiko_as_alice, paramiko_json, paramiko_script,
    paramiko_with_password, python_with_paramiko, run_bounded, ssh_keygen, stderr, stdout,
    wait_for_client, PARAMIKO_PRELUDE,
};
pub use config::{
    write_key_options, Account, Download, GatewayConfig, Hook, HookQueue, Limits, Metrics,
    Permissions, User,
};
pub use dropbox::{
    content_hash, insufficient_space_fault, request_count, start_emulator, suite_realism,
    total_requests, write_random_file, write_token_file, DropboxView, UploadRequests,
};
pub use partner::{
    give_a_jsch_key, jsch, jsch_trusting, pscp, pscp_trusting, ssh_keygen_ecdsa, JschOp,
    PscpProtocol,
};
pub use process::{
    dropgate_binary, finish_command, free_port, open_fds, resident_kib, send_signal,
    wait_until_listening, ServeDir,
};

// The gateway's library paths the tests use, in one place.
pub use dropgate::backend::dropbox::api::{
    retries_made, ClientOptions, Credentials, DropboxClient, Endpoints,
};
pub use dropgate::config::Config;
pub use dropgate::gateway::Gateway;
pub use dropgate::ssh::host_key;
pub use dropgate::users::password::hash_password;
pub use dropgate::users::permissions::Permission;

/// Calls `check` every 20 ms until it answers true (→ true) or `limit` has passed (→ false).
pub async fn poll_until<F, Fut>(limit: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

/// Sets a local file's modification time to `unix_secs`.
pub fn set_local_mtime(path: &std::path::Path, unix_secs: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}
