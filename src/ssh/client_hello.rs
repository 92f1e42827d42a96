//! Records the client's version line and its first KEXINIT as they pass from the socket to
//! russh, without changing a byte.
//!
//! Why this exists: russh 0.65 negotiates the algorithms but does not tell a server handler
//! which ones it chose (its `Names` stay inside the session), and the audit log must say which
//! key exchange and cipher each partner's client used, and the gateway must warn when one
//! uses a legacy algorithm. Both are settled by public rules on cleartext: the version line
//! and the first KEXINIT travel before any encryption, and RFC 4253 section 7.1 says what is
//! chosen from them (see [`super::algorithms::Policy::negotiate`]). So this reader looks at
//! the bytes russh reads, keeps at most [`RECORD_LIMIT`] of them until it has both, and then
//! steps aside; a connection that sends something it cannot parse is simply not recorded
//! (russh judges the bytes, not this).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::algorithms::ClientAlgorithms;

/// What a client says before encryption starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientHello {
    /// The version line without its line end (`SSH-2.0-OpenSSH_9.6p1 Ubuntu-3`): client text.
    pub version: String,
    pub algorithms: ClientAlgorithms,
}

/// The most bytes kept while waiting for the version line and KEXINIT: RFC 4253 caps a packet
/// at 35000 bytes, and the version line and the lines a client may send before it are short.
pub const RECORD_LIMIT: usize = 64 * 1024;

/// SSH_MSG_KEXINIT.
const KEXINIT: u8 = 20;

/// A stream that hands the client's [`ClientHello`] to `on_hello` once it has passed.
pub struct HelloRecorder<S> {
    inner: S,
    seen: Vec<u8>,
    on_hello: Option<Box<dyn FnOnce(ClientHello) + Send>>,
}

impl<S> HelloRecorder<S> {
    pub fn new(inner: S, on_hello: impl FnOnce(ClientHello) + Send + 'static) -> Self {
        HelloRecorder {
            inner,
            seen: Vec::new(),
            on_hello: Some(Box::new(on_hello)),
        }
    }

    fn inspect(&mut self, read: &[u8]) {
        if self.on_hello.is_none() || read.is_empty() {
            return;
        }
        if self.seen.len() + read.len() > RECORD_LIMIT {
            self.stop();
            return;
        }
        self.seen.extend_from_slice(read);
        match parse(&self.seen) {
            Parsed::NeedMore => {}
            Parsed::Hello(hello) => {
                if let Some(on_hello) = self.on_hello.take() {
                    on_hello(hello);
                }
                self.stop();
            }
            Parsed::Unknown => self.stop(),
        }
    }

    fn stop(&mut self) {
        self.on_hello = None;
        self.seen = Vec::new();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HelloRecorder<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.inspect(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HelloRecorder<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

enum Parsed {
    NeedMore,
    Hello(ClientHello),
    /// Not what an SSH client sends first; nothing to record.
    Unknown,
}

/// The version line (after any other lines), then one binary packet that must be a KEXINIT.
fn parse(bytes: &[u8]) -> Parsed {
    let mut rest = bytes;
    let version = loop {
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Parsed::NeedMore;
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.starts_with(b"SSH-") {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            break String::from_utf8_lossy(line).into_owned();
        }
    };
    let Some(length) = rest.get(..4) else {
        return Parsed::NeedMore;
    };
    let length = u32::from_be_bytes(length.try_into().expect("four bytes")) as usize;
    if length > RECORD_LIMIT {
        return Parsed::Unknown;
    }
    let Some(packet) = rest.get(4..4 + length) else {
        return Parsed::NeedMore;
    };
    match kexinit_lists(packet) {
        Some(algorithms) => Parsed::Hello(ClientHello {
            version,
            algorithms,
        }),
        None => Parsed::Unknown,
    }
}

/// The client-to-server lists of a cleartext KEXINIT packet (padding length, payload,
/// padding).
fn kexinit_lists(packet: &[u8]) -> Option<ClientAlgorithms> {
    let (&padding, body) = packet.split_first()?;
    let payload = body.get(..body.len().checked_sub(padding as usize)?)?;
    let (&message, rest) = payload.split_first()?;
    if message != KEXINIT {
        return None;
    }
    let mut rest = rest.get(16..)?; // the cookie
    let mut next = || name_list(&mut rest);
    let kex = next()?;
    let host_keys = next()?;
    let ciphers = next()?;
    let _ciphers_server_to_client = next()?;
    let macs = next()?;
    Some(ClientAlgorithms {
        kex,
        host_keys,
        ciphers,
        macs,
    })
}

/// An SSH name-list: a length, then names separated by commas.
fn name_list(bytes: &mut &[u8]) -> Option<Vec<String>> {
    let length = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let text = bytes.get(4..4 + length)?;
    *bytes = &bytes[4 + length..];
    let text = std::str::from_utf8(text).ok()?;
    Some(
        text.split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;

    fn list(names: &str) -> Vec<u8> {
        let mut out = (names.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(names.as_bytes());
        out
    }

    fn kexinit_packet(kex: &str, keys: &str, ciphers: &str, macs: &str) -> Vec<u8> {
        let mut payload = vec![KEXINIT];
        payload.extend_from_slice(&[7; 16]);
        for names in [
            kex, keys, ciphers, ciphers, macs, macs, "none", "none", "", "",
        ] {
            payload.extend(list(names));
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let padding = 8 - (payload.len() + 5) % 8 + 4;
        let mut packet = ((payload.len() + padding + 1) as u32)
            .to_be_bytes()
            .to_vec();
        packet.push(padding as u8);
        packet.extend(payload);
        packet.extend(vec![0; padding]);
        packet
    }

    fn hello_bytes() -> Vec<u8> {
        let mut bytes = b"a banner line\r\nSSH-2.0-OpenSSH_9.6 Ubuntu\r\n".to_vec();
        bytes.extend(kexinit_packet(
            "curve25519-sha256,ext-info-c",
            "ssh-ed25519,rsa-sha2-256",
            "aes128-ctr",
            "hmac-sha2-256",
        ));
        bytes
    }

    async fn record(bytes: Vec<u8>, chunk: usize) -> (Vec<u8>, Option<ClientHello>) {
        let (mut client, server) = tokio::io::duplex(chunk);
        let found = Arc::new(Mutex::new(None));
        let sink = found.clone();
        let mut recorder = HelloRecorder::new(server, move |hello| {
            *sink.lock().unwrap() = Some(hello);
        });
        let sent = bytes.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client.write_all(&sent).await.unwrap();
        });
        let mut passed = Vec::new();
        recorder.read_to_end(&mut passed).await.unwrap();
        writer.await.unwrap();
        let hello = found.lock().unwrap().take();
        (passed, hello)
    }

    #[tokio::test]
    async fn the_hello_is_recorded_and_every_byte_passes_unchanged() {
        for chunk in [1, 7, 4096] {
            let (passed, hello) = record(hello_bytes(), chunk).await;
            assert_eq!(passed, hello_bytes(), "chunk {chunk}");
            let hello = hello.expect("recorded");
            assert_eq!(hello.version, "SSH-2.0-OpenSSH_9.6 Ubuntu");
            assert_eq!(hello.algorithms.kex, ["curve25519-sha256", "ext-info-c"]);
            assert_eq!(hello.algorithms.host_keys, ["ssh-ed25519", "rsa-sha2-256"]);
            assert_eq!(hello.algorithms.ciphers, ["aes128-ctr"]);
            assert_eq!(hello.algorithms.macs, ["hmac-sha2-256"]);
        }
    }

    #[tokio::test]
    async fn garbage_is_passed_on_and_not_recorded() {
        let mut bytes = b"SSH-2.0-x\r\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 12, 4, 21, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0]);
        let (passed, hello) = record(bytes.clone(), 64).await;
        assert_eq!(passed, bytes);
        assert!(hello.is_none());
        // A client that never ends its version line is not buffered without end.
        let endless = vec![b'x'; RECORD_LIMIT + 10];
        let (passed, hello) = record(endless.clone(), 4096).await;
        assert_eq!(passed, endless);
        assert!(hello.is_none());
    }
}
