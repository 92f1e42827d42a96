//! Arbitrary bytes as a client's stream into `dropgate::sftp::serve`, over an in-memory duplex
//! stream, against the in-memory backend.
//!
//! Input: one option byte, then the client's bytes. Option bits: 0 send a valid INIT first (so
//! mutations reach past the handshake), 1 commits fail, 2 commits take 10 ms, 3-4 in-flight
//! limit, 5-6 handle limit.
//!
//! Checked for every input:
//! - nothing panics (libFuzzer aborts on a panic in any task);
//! - `serve` returns once the client has sent everything and closed its side. The clock is
//!   paused and auto-advances only when every task is idle, so the 60 s bound fires exactly
//!   when the session is stuck, whatever the machine's load;
//! - every reply is a well-formed SFTP packet of bounded size;
//! - `serve` returns `Ok` exactly when the stream is a valid session (decodes to the end, one
//!   INIT, first), and then every packet after INIT got exactly one reply with its id.

#![no_main]

use std::time::Duration;

use dropgate::sftp::fuzzing::decode_stream;
use dropgate::vfs::memory::MemFs;
use dropgate::sftp::{serve, SessionLimits};
use libfuzzer_sys::fuzz_target;
use russh_sftp::protocol::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Replies may carry a client's path (up to a packet's worth) twice, as REALPATH's filename and
/// longname; anything beyond that would be amplification.
const MAX_REPLY: usize = 4 * 257 * 1024;

/// INIT, version 3, no extensions.
const INIT: [u8; 9] = [0, 0, 0, 5, 1, 0, 0, 0, 3];

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let mut stream = Vec::with_capacity(rest.len() + INIT.len());
    if options & 1 != 0 {
        stream.extend_from_slice(&INIT);
    }
    stream.extend_from_slice(rest);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(run(options, stream));
});

async fn run(options: u8, stream: Vec<u8>) {
    let fs = MemFs::new();
    fs.add_folder("/d");
    fs.add_folder("/d/e");
    fs.add_file("/d/f.txt", b"hello, world\n", 1_600_000_000);
    fs.add_file("/big", &[7u8; 300_000], 1_700_000_000);
    fs.page_size(2);
    // Uploads may not grow past 1 MiB (the real backend has `upload.max_file_size`).
    fs.max_file_size(1 << 20);
    fs.fail_commits(options & 2 != 0);
    if options & 4 != 0 {
        fs.slow_commits(Duration::from_millis(10));
    }
    let limits = SessionLimits {
        max_in_flight: [1, 2, 8, 128][usize::from(options >> 3 & 3)],
        max_handles: [1, 2, 4, 256][usize::from(options >> 5 & 3)],
        user_handles: None,
        user: "fuzz".to_string(),
    };

    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(serve(server, fs, limits));
    let (mut client_rx, mut client_tx) = tokio::io::split(client);

    let send = async {
        // The server may end the session early and drop its side; then writing fails.
        if client_tx.write_all(&stream).await.is_ok() {
            let _ = client_tx.shutdown().await;
        }
    };
    let receive = async {
        let mut replies = Vec::new();
        loop {
            let len = match client_rx.read_u32().await {
                Ok(len) => len as usize,
                Err(_) => break,
            };
            assert!(len <= MAX_REPLY, "a {len}-byte reply");
            let mut body = vec![0u8; len];
            client_rx
                .read_exact(&mut body)
                .await
                .expect("a reply cut short");
            let packet = Packet::try_from(&mut bytes::Bytes::from(body))
                .unwrap_or_else(|e| panic!("a reply that does not decode: {e}"));
            replies.push(packet);
        }
        replies
    };
    let bounded = tokio::time::timeout(Duration::from_secs(60), async {
        let ((), replies, result) = tokio::join!(send, receive, session);
        (replies, result.expect("serve panicked"))
    });
    let (replies, result) = bounded
        .await
        .expect("serve did not return after the client closed its side");

    let expected = decode_stream(&stream);
    let valid = match &expected {
        Ok(decoded) => {
            decoded.inits == 0 && decoded.ids.is_empty()
                || decoded.inits == 1 && decoded.starts_with_init
        }
        Err(_) => false,
    };
    assert_eq!(
        result.is_ok(),
        valid,
        "serve returned {result:?}; the stream decodes to {expected:?}"
    );
    if let (Ok(()), Ok(decoded)) = (&result, &expected) {
        let mut sent = decoded.ids.clone();
        let mut answered = Vec::new();
        for reply in &replies {
            match reply {
                Packet::Version(_) => {}
                other => answered.push(reply_id(other)),
            }
        }
        sent.sort_unstable();
        answered.sort_unstable();
        assert_eq!(sent, answered, "replies do not match requests one to one");
    }
}

fn reply_id(packet: &Packet) -> u32 {
    match packet {
        Packet::Status(p) => p.id,
        Packet::Handle(p) => p.id,
        Packet::Data(p) => p.id,
        Packet::Name(p) => p.id,
        Packet::Attrs(p) => p.id,
        Packet::ExtendedReply(p) => p.id,
        other => panic!("the server sent a non-reply packet: {other:?}"),
    }
}
