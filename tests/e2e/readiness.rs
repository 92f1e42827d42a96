//! systemd readiness (`Type=notify`) end to end: `dropgate serve` as a real process with
//! `NOTIFY_SOCKET` naming a datagram socket the test holds, as systemd would. READY=1 must
//! mean partners can connect; a reload and a shutdown are announced with their own states.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::common::{send_signal, ServeDir};

/// The next notification, waiting at most 30 s.
async fn next_message(socket: &UnixDatagram, waiting_for: &str) -> String {
    let mut buffer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buffer))
        .await
        .unwrap_or_else(|_| panic!("no notification while waiting for {waiting_for}"))
        .unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_once_the_port_accepts_then_reloading_and_stopping() {
    let served = ServeDir::new().await;
    let socket_path = served.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let log_path = served.path("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = served
        .serve_command(&served.config(), "dropgate=info")
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();

    // The first word systemd hears is READY, and by then the port takes connections.
    let ready = next_message(&socket, "READY=1").await;
    let accepts = tokio::net::TcpStream::connect(("127.0.0.1", served.port)).await;
    assert!(
        accepts.is_ok(),
        "READY=1 came before the port accepted: {accepts:?}\n{}",
        log_of(&log_path)
    );
    assert_eq!(
        ready,
        format!(
            "READY=1\nSTATUS=serving SFTP on 127.0.0.1:{}\n",
            served.port
        )
    );

    // SIGHUP: RELOADING=1, then READY=1 again once the users are in place.
    send_signal(&server, "HUP");
    let reloading = next_message(&socket, "RELOADING=1").await;
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading}");
    let ready_again = next_message(&socket, "READY=1 after the reload").await;
    assert_eq!(ready_again, ready);
    assert!(
        log_of(&log_path).contains("reloaded users and keys"),
        "{}",
        log_of(&log_path)
    );

    // SIGTERM: STOPPING=1 with what it waits for, then it exits cleanly (nothing was open).
    send_signal(&server, "TERM");
    let stopping = next_message(&socket, "STOPPING=1").await;
    assert_eq!(
        stopping,
        "STOPPING=1\nSTATUS=SIGTERM: draining, 0 open upload(s), at most 120s\n"
    );
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("dropgate did not exit")
        .unwrap();
    assert!(status.success(), "{status}\n{}", log_of(&log_path));
    let last = next_message(&socket, "the last STATUS").await;
    assert_eq!(last, "STATUS=all uploads finished; exiting\n");
}

/// A gateway whose accounts cannot sign in never says READY: systemd then reports the start
/// as failed instead of a service that refuses every partner.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_that_fails_to_start_never_says_ready() {
    let served = ServeDir::new().await;
    let socket_path = served.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut config = served.config();
    // A token file that is not there: the account cannot sign in.
    let account = &mut config.accounts[0];
    account.token_file = Some(served.path("missing.token"));
    (account.app_key, account.app_secret, account.refresh_token) = (None, None, None);
    let out = served
        .serve_command(&config, "dropgate=info")
        .env("NOTIFY_SOCKET", &socket_path)
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("missing.token"), "{stderr}");
    let mut buffer = [0u8; 256];
    let heard = socket.try_recv(&mut buffer);
    assert!(
        heard.is_err(),
        "heard {:?}",
        String::from_utf8_lossy(&buffer[..heard.unwrap_or(0)])
    );
}
