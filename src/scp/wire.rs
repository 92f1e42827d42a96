//! The SCP wire protocol: its records and its one-byte acknowledgements.
//!
//! SCP has no specification beyond what rcp and OpenSSH's scp do. Each side sends text records
//! ended by a newline, and the other answers each one with a single byte: `\0` (go on), or
//! `\x01` (an error the other side prints, the transfer goes on) or `\x02` (fatal) followed by a
//! message line. Records:
//!
//! - `C<mode> <size> <name>`: a file; `size` bytes of content follow once it is acknowledged,
//!   then one status byte from the sender (`\0`, or an error line) and an acknowledgement.
//! - `D<mode> 0 <name>`: enter a folder (with `-r`); `E`: leave it.
//! - `T<mtime> <usec> <atime> <usec>`: the times of the next C or D (with `-p`).
//!
//! Everything here is framing; what a record means for the files is `sink`'s and `source`'s.
//! A record is at most [`MAX_RECORD`] bytes: a longer line is a broken or hostile client.

use std::fmt;
use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest record line accepted (OpenSSH's own buffer is 2 KiB; names are up to 255 bytes).
pub const MAX_RECORD: u64 = 4096;

/// One record from the sending side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `C`: a file of `size` bytes follows. The name is bytes as sent; whether it is an
    /// acceptable name is for the receiver to judge (a refusal is per file, not a broken link).
    File { size: u64, name: Vec<u8> },
    /// `D`: a folder begins.
    Folder { name: Vec<u8> },
    /// `E`: the current folder ends.
    EndFolder,
    /// `T`: the next file's or folder's modification time (seconds since the epoch).
    Times { mtime: i64 },
    /// `\x01`: the sender could not send something; it carries on.
    Warning(String),
    /// `\x02`: the sender gives up.
    Fatal(String),
}

/// The answer to a record or to a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Ok,
    /// `\x01`: refused; the transfer goes on.
    Error(String),
    /// `\x02`: the other side gives up.
    Fatal(String),
}

/// Why a transfer cannot go on: the channel ends.
#[derive(Debug)]
pub enum Broken {
    /// The client sent something that is not SCP.
    Protocol(String),
    /// The client gave up (`\x02`).
    ClientGaveUp(String),
    /// The channel closed or failed.
    Io(io::Error),
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Protocol(why) => write!(f, "protocol error: {why}"),
            Broken::ClientGaveUp(why) => write!(f, "the client gave up: {why}"),
            Broken::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "the client went away mid-transfer")
            }
            Broken::Io(e) => write!(f, "the channel failed: {e}"),
        }
    }
}

impl From<io::Error> for Broken {
    fn from(e: io::Error) -> Self {
        Broken::Io(e)
    }
}

pub type WireResult<T> = Result<T, Broken>;

/// Both directions of one SCP channel.
pub struct Link<R, W> {
    reader: R,
    writer: W,
}

impl<R, W> Link<R, W>
where
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub fn new(reader: R, writer: W) -> Self {
        Link { reader, writer }
    }

    /// The next record; `None` if the client ended the channel between records.
    pub async fn read_record(&mut self) -> WireResult<Option<Record>> {
        let Some(line) = self.read_line().await? else {
            return Ok(None);
        };
        parse_record(&line).map(Some)
    }

    /// The client's answer to what we sent.
    pub async fn read_ack(&mut self) -> WireResult<Ack> {
        let mut byte = [0u8; 1];
        self.reader.read_exact(&mut byte).await?;
        match byte[0] {
            0 => Ok(Ack::Ok),
            code @ (1 | 2) => {
                let line = self.read_line().await?.unwrap_or_default();
                let message = String::from_utf8_lossy(&line).into_owned();
                Ok(if code == 1 {
                    Ack::Error(message)
                } else {
                    Ack::Fatal(message)
                })
            }
            other => Err(Broken::Protocol(format!(
                "expected an acknowledgement, got byte {other}"
            ))),
        }
    }

    /// Exactly `buf.len()` bytes of a file's content.
    pub async fn read_content(&mut self, buf: &mut [u8]) -> WireResult<()> {
        self.reader.read_exact(buf).await?;
        Ok(())
    }

    pub async fn send_ok(&mut self) -> WireResult<()> {
        self.send(&[0]).await
    }

    /// `\x01scp: <message>`: the client prints it and counts a failure, and the transfer goes on.
    pub async fn send_error(&mut self, message: &str) -> WireResult<()> {
        self.send(&message_line(1, message)).await
    }

    /// A record line (the newline is added here).
    pub async fn send_record(&mut self, record: &str) -> WireResult<()> {
        self.send(format!("{record}\n").as_bytes()).await
    }

    /// A file's content.
    pub async fn send_content(&mut self, data: &[u8]) -> WireResult<()> {
        self.send(data).await
    }

    async fn send(&mut self, bytes: &[u8]) -> WireResult<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.writer.write_all(bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// A line up to its newline (not included); `None` at the end of the stream before any byte.
    async fn read_line(&mut self) -> WireResult<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_RECORD + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        if line.pop() != Some(b'\n') {
            return Err(if read as u64 > MAX_RECORD {
                Broken::Protocol(format!("a record longer than {MAX_RECORD} bytes"))
            } else {
                Broken::Io(io::ErrorKind::UnexpectedEof.into())
            });
        }
        Ok(Some(line))
    }
}

/// An error line as scp prints it: `scp: ` and the message on one line.
fn message_line(code: u8, message: &str) -> Vec<u8> {
    let one_line: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let mut line = vec![code];
    line.extend_from_slice(format!("scp: {one_line}\n").as_bytes());
    line
}

fn parse_record(line: &[u8]) -> WireResult<Record> {
    let Some((&kind, rest)) = line.split_first() else {
        return Err(Broken::Protocol("an empty record".to_string()));
    };
    match kind {
        b'C' => {
            let (size, name) = parse_entry(rest, "C")?;
            Ok(Record::File { size, name })
        }
        b'D' => {
            let (_, name) = parse_entry(rest, "D")?;
            Ok(Record::Folder { name })
        }
        b'E' if rest.is_empty() => Ok(Record::EndFolder),
        b'T' => parse_times(rest),
        1 => Ok(Record::Warning(String::from_utf8_lossy(rest).into_owned())),
        2 => Ok(Record::Fatal(String::from_utf8_lossy(rest).into_owned())),
        _ => Err(Broken::Protocol(format!(
            "unknown record {:?}",
            String::from_utf8_lossy(&line[..line.len().min(16)])
        ))),
    }
}

/// `<4 octal digits> <size> <name>` after C or D. The mode is checked and ignored: Dropbox
/// keeps none.
fn parse_entry(rest: &[u8], kind: &str) -> WireResult<(u64, Vec<u8>)> {
    let bad = |why: &str| Broken::Protocol(format!("bad {kind} record: {why}"));
    let mut fields = rest.splitn(3, |&b| b == b' ');
    let mode = fields.next().unwrap_or_default();
    if mode.len() != 4 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(bad("mode"));
    }
    let size = fields
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("size"))?;
    let name = fields.next().ok_or_else(|| bad("no name"))?;
    Ok((size, name.to_vec()))
}

/// `<mtime> <usec> <atime> <usec>`; only the mtime is kept (Dropbox has no atime).
fn parse_times(rest: &[u8]) -> WireResult<Record> {
    let bad = || Broken::Protocol("bad T record".to_string());
    let text = std::str::from_utf8(rest).map_err(|_| bad())?;
    let numbers: Vec<&str> = text.split(' ').collect();
    let [mtime, mtime_usec, atime, atime_usec] = numbers[..] else {
        return Err(bad());
    };
    let mtime = mtime.parse::<i64>().map_err(|_| bad())?;
    for usec in [mtime_usec, atime_usec] {
        if !usec.parse::<u32>().is_ok_and(|u| u < 1_000_000) {
            return Err(bad());
        }
    }
    atime.parse::<i64>().map_err(|_| bad())?;
    Ok(Record::Times { mtime })
}

/// `C0644 <size> <name>`. Dropbox keeps no modes, so every file is sent as 0644.
pub fn file_record(size: u64, name: &str) -> String {
    format!("C0644 {size} {name}")
}

/// `D0755 0 <name>`.
pub fn folder_record(name: &str) -> String {
    format!("D0755 0 {name}")
}

pub const END_FOLDER: &str = "E";

/// `T<mtime> 0 <mtime> 0`: the access time is the modification time (Dropbox keeps no other).
pub fn times_record(mtime: i64) -> String {
    format!("T{mtime} 0 {mtime} 0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> WireResult<Record> {
        parse_record(line.as_bytes())
    }

    #[test]
    fn records_parse() {
        assert_eq!(
            record("C0644 12 a b.txt").unwrap(),
            Record::File {
                size: 12,
                name: b"a b.txt".to_vec()
            }
        );
        assert_eq!(
            record("D0755 0 dir").unwrap(),
            Record::Folder {
                name: b"dir".to_vec()
            }
        );
        assert_eq!(record("E").unwrap(), Record::EndFolder);
        assert_eq!(
            record("T981173106 0 981173106 0").unwrap(),
            Record::Times { mtime: 981173106 }
        );
        assert_eq!(
            record("\u{1}scp: x: denied").unwrap(),
            Record::Warning("scp: x: denied".into())
        );
    }

    #[test]
    fn malformed_records_are_protocol_errors() {
        for line in [
            "",
            "C644 1 x",
            "C0648 1 x",
            "C0644 -1 x",
            "C0644 1",
            "C0644  x",
            "C0644 99999999999999999999999 x",
            "Ex",
            "T1 2 3",
            "T1 1000000 3 0",
            "Tx 0 1 0",
            "X",
        ] {
            assert!(
                matches!(record(line), Err(Broken::Protocol(_))),
                "{line:?} parsed"
            );
        }
    }

    #[tokio::test]
    async fn a_record_without_its_newline_or_too_long_ends_the_link() {
        let mut link = Link::new(&b"C0644 1 x"[..], tokio::io::sink());
        assert!(matches!(link.read_record().await, Err(Broken::Io(_))));
        let long = vec![b'C'; MAX_RECORD as usize + 10];
        let mut link = Link::new(&long[..], tokio::io::sink());
        assert!(matches!(link.read_record().await, Err(Broken::Protocol(_))));
        let mut link = Link::new(&b""[..], tokio::io::sink());
        assert!(matches!(link.read_record().await, Ok(None)));
    }

    #[tokio::test]
    async fn acknowledgements_carry_their_message() {
        let mut link = Link::new(&b"\0\x01scp: no\n\x02bye\n\x07"[..], tokio::io::sink());
        assert_eq!(link.read_ack().await.unwrap(), Ack::Ok);
        assert_eq!(link.read_ack().await.unwrap(), Ack::Error("scp: no".into()));
        assert_eq!(link.read_ack().await.unwrap(), Ack::Fatal("bye".into()));
        assert!(matches!(link.read_ack().await, Err(Broken::Protocol(_))));
    }

    #[test]
    fn an_error_message_stays_on_one_line() {
        assert_eq!(message_line(1, "a\nb"), b"\x01scp: a b\n");
    }
}
