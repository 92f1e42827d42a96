//! The legacy SCP protocol (`scp -O`, every OpenSSH scp before 9.0, PuTTY's `pscp -scp`),
//! served over the exec request.
//!
//! Partners' automated jobs often run an scp that does not speak SFTP, so the gateway answers
//! the two commands such a client runs on the server: `scp -t PATH` (it uploads) and
//! `scp -f PATH` (it downloads). Nothing else is executed; any other command is refused by the
//! SSH layer. Like the SFTP layer, this module talks only to the [`Vfs`] trait: the user's
//! permissions, the audit log, the spool and the verified commit all apply unchanged, and an
//! uploaded file is acknowledged to the client only once Dropbox holds it.
//!
//! - `command`: the exec command, split the way a POSIX shell would;
//! - `wire`: records (C, D, E, T) and acknowledgements, and nothing about files;
//! - `sink`: the client uploads; `source`: the client downloads.
//!
//! The exit status is 0 only if every file went through; any refusal or failure is an error
//! line the client prints, and exit status 1. A malformed record or a vanished client ends the
//! one channel, and an upload it interrupted is dropped uncommitted.

mod command;
mod sink;
mod source;
mod wire;

use russh::server::Msg;
use russh::Channel;
use tokio::io::{AsyncBufRead, AsyncWrite, BufReader};

pub use command::{parse, Direction, Refused, ScpCommand};

use crate::log_safe::Untrusted;
use crate::vfs::{VPath, Vfs, VfsError, VfsResult};
use wire::{Broken, Link, WireResult};

/// Runs `command` on `channel` until the transfer ends, then sends the exit status, EOF and
/// close: scp reports a failure unless it sees exit status 0.
pub async fn serve<F: Vfs>(channel: Channel<Msg>, fs: F, command: ScpCommand) {
    let (mut read_half, write_half) = channel.split();
    let succeeded = run(
        &fs,
        &command,
        BufReader::new(read_half.make_reader()),
        write_half.make_writer(),
    )
    .await;
    let status = if succeeded { 0 } else { 1 };
    tracing::info!(status, "scp ended");
    // The client may be gone already; there is no one left to tell then.
    let _ = write_half.exit_status(status).await;
    let _ = write_half.eof().await;
    let _ = write_half.close().await;
}

/// One transfer over `reader`/`writer`; true if everything went through.
pub async fn run<F, R, W>(fs: &F, command: &ScpCommand, reader: R, writer: W) -> bool
where
    F: Vfs,
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut transfer = Transfer {
        fs,
        command,
        link: Link::new(reader, writer),
        failed: false,
    };
    let result = match command.direction {
        Direction::Upload => transfer.upload(&command.paths[0]).await,
        Direction::Download => transfer.send(&command.paths).await,
    };
    match result {
        Ok(()) => !transfer.failed,
        Err(broken) => {
            tracing::info!(reason = %Untrusted(&broken), "scp transfer broken off");
            if let Broken::Protocol(_) = broken {
                // Tell the client why, if it still listens.
                let _ = transfer.link.send_error(&broken.to_string()).await;
            }
            false
        }
    }
}

/// One transfer: what sink and source share.
struct Transfer<'a, F, R, W> {
    fs: &'a F,
    command: &'a ScpCommand,
    link: Link<R, W>,
    /// Something was refused or failed: the exit status will be 1.
    failed: bool,
}

impl<F, R, W> Transfer<'_, F, R, W>
where
    F: Vfs,
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn upload(&mut self, target: &str) -> WireResult<()> {
        match resolve(target) {
            Ok(target) => self.receive(target).await,
            Err(error) => self.refuse_text(&format!("{target}: {error}")).await,
        }
    }

    /// Answers with the error (the client prints it) and counts the failure.
    async fn refuse(&mut self, path: &VPath, error: &VfsError) -> WireResult<()> {
        self.refuse_text(&described(path, error)).await
    }

    async fn refuse_text(&mut self, message: &str) -> WireResult<()> {
        self.failed = true;
        tracing::info!(error = %Untrusted(message), "scp refused");
        self.link.send_error(message).await
    }
}

/// A client's path inside the user's home.
fn resolve(path: &str) -> VfsResult<VPath> {
    VPath::parse(command::home_relative(path))
}

/// `<path>: <message>`, unless the message names the path already (permission refusals do).
fn described(path: &VPath, error: &VfsError) -> String {
    let message = error.to_string();
    let shown = path.to_string();
    if message.starts_with(&format!("{shown}:")) {
        message
    } else {
        format!("{shown}: {message}")
    }
}

#[cfg(test)]
mod tests;
