//! Noticing that a client has closed its TCP connection, even while russh cannot.
//!
//! russh hands each channel's data to that channel's reader and waits while the reader's queue
//! is full; while it waits it reads nothing from the socket, so it cannot see the client leave.
//! An SFTP session whose client stopped reading replies (window 0) and kept sending requests
//! until its budget was spent is exactly such a reader: left alone, the session, its open
//! uploads (spool files, entries that block the name) and the connection would stay forever.
//!
//! So the socket is also watched from the side: a duplicate of its descriptor is polled once a
//! second, without reading, for the peer's FIN or RST. A client that has closed its sending side
//! can no longer open the window for replies, so whatever still waits on it never ends by itself.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How often the socket is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A second descriptor of a client's socket, only ever polled.
///
/// It keeps the socket open while it lives: drop it as soon as the connection is over.
pub struct HangupWatch {
    fd: OwnedFd,
}

impl HangupWatch {
    pub fn new(socket: &impl AsFd) -> io::Result<HangupWatch> {
        Ok(HangupWatch {
            fd: socket.as_fd().try_clone_to_owned()?,
        })
    }

    /// Whether the client has closed (FIN) or reset (RST) the connection.
    pub fn hung_up(&self) -> bool {
        let gone = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
        let mut fds = [PollFd::new(&self.fd, PollFlags::RDHUP)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(_) => fds[0].revents().intersects(gone),
            // A descriptor that cannot be polled any more belongs to a connection that is over.
            Err(_) => true,
        }
    }

    /// Returns once the client has hung up.
    pub async fn hung_up_at_last(&self) {
        while !self.hung_up() {
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn sees_the_peer_close_without_reading() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let watch = HangupWatch::new(&server).unwrap();
        client.write_all(b"unread bytes").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.hung_up(), "data waiting to be read is not a hang-up");
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), watch.hung_up_at_last())
            .await
            .expect("the close is seen");
    }
}
