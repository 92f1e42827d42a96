//! SFTP packet framing: a `u32` length, then the packet (type byte, request id, payload).
//!
//! Reading is kept apart from dispatch so the limits live in one place:
//! - A length above [`MAX_PACKET_LEN`] ends the session. Without a limit a client could make the
//!   server allocate 4 GiB per request; with one, memory per session stays near
//!   `max_in_flight × MAX_PACKET_LEN`.
//! - A packet type the server does not handle is answered with OP_UNSUPPORTED for its request
//!   id and the session continues (the length prefix keeps the stream in step).
//! - A packet of a known type whose body does not decode ends the session, as in OpenSSH's
//!   sftp-server. Answering BAD_MESSAGE instead would be possible (the id is readable), but a
//!   WRITE we could not decode may leave a hole in an upload that a later CLOSE would commit;
//!   ending the session drops every open upload uncommitted, which is the safe outcome.
//!   Names that are not valid UTF-8 are not decode errors: the codec replaces bad bytes.
//! - WRITE is decoded here rather than by the codec: its data stays a slice of the packet as
//!   read ([`Bytes`]), so upload bytes are not copied again on their way to the spool.
//! - DATA, the reply to READ, is encoded here too: its payload is copied once, from the buffer
//!   the backend's reader returned straight into the outgoing frame, instead of into the codec's
//!   `Vec` and again into its encoding.

use anyhow::{anyhow, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use russh_sftp::protocol::Packet;
use tokio::io::{AsyncRead, AsyncReadExt};

/// SSH_FXP_WRITE, the one request decoded here.
const WRITE: u8 = 6;

/// SSH_FXP_DATA, the one reply encoded here.
const DATA: u8 = 103;

/// The largest packet body (after the length field) the server accepts.
///
/// OpenSSH accepts 256 KiB and [`super::extensions`] advertises exactly that as
/// `max-packet-length`. One extra KiB lets in a WRITE that carries a full 256 KiB of data plus
/// its header, as sent by clients that size writes by data alone and ignore `limits@openssh.com`.
pub(super) const MAX_PACKET_LEN: u32 = 256 * 1024 + 1024;

/// Packet types a client may send that this server answers (INIT, OPEN..SYMLINK, EXTENDED).
fn is_request_type(packet_type: u8) -> bool {
    matches!(packet_type, 1 | 3..=20 | 200)
}

/// One packet from the client, decoded as far as the session needs.
#[derive(Debug)]
pub(super) enum Incoming {
    Request(Packet),
    /// SSH_FXP_WRITE, with its data not copied out of the packet.
    Write(WriteRequest),
    /// A packet type the server does not handle; answered with OP_UNSUPPORTED.
    Unsupported {
        id: u32,
        packet_type: u8,
    },
}

/// A decoded SSH_FXP_WRITE.
#[derive(Debug)]
pub(super) struct WriteRequest {
    pub id: u32,
    pub handle: String,
    pub offset: u64,
    pub data: Bytes,
}

/// Reads the next packet. `Ok(None)` when the client closed the stream between packets.
#[cfg(any(test, feature = "testing"))]
pub(super) async fn read_packet<R>(reader: &mut R) -> anyhow::Result<Option<Incoming>>
where
    R: AsyncRead + Unpin,
{
    Ok(read_sized_packet(reader)
        .await?
        .map(|(incoming, _)| incoming))
}

/// Like [`read_packet`], with the packet's length on the wire: what holding it costs, whatever
/// its type (a STAT may carry a quarter-MiB path just as a WRITE carries data).
pub(super) async fn read_sized_packet<R>(reader: &mut R) -> anyhow::Result<Option<(Incoming, u32)>>
where
    R: AsyncRead + Unpin,
{
    let Some(len) = read_length(reader).await? else {
        return Ok(None);
    };
    if len > MAX_PACKET_LEN {
        bail!("client sent a {len}-byte packet; the limit is {MAX_PACKET_LEN} bytes");
    }
    if len == 0 {
        bail!("client sent an empty packet");
    }
    // Filled by `read_buf` without zeroing first: WRITE packets carry a quarter MiB each.
    let mut body = BytesMut::with_capacity(len as usize);
    while body.len() < len as usize {
        let missing = len as usize - body.len();
        let mut rest = (&mut body).limit(missing);
        if reader.read_buf(&mut rest).await? == 0 {
            bail!("stream ended in the middle of a packet");
        }
    }
    decode(body.freeze()).map(|incoming| Some((incoming, len)))
}

/// Reads the length field; `None` on a clean end of stream (nothing read at all).
async fn read_length<R>(reader: &mut R) -> anyhow::Result<Option<u32>>
where
    R: AsyncRead + Unpin,
{
    let mut buf = [0u8; 4];
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            bail!("stream ended in the middle of a packet length");
        }
        filled += n;
    }
    Ok(Some(u32::from_be_bytes(buf)))
}

/// Decodes a packet body (type byte first).
fn decode(body: Bytes) -> anyhow::Result<Incoming> {
    let packet_type = body[0];
    if !is_request_type(packet_type) {
        let id = body
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| anyhow!("packet of type {packet_type} is too short for a request id"))?;
        return Ok(Incoming::Unsupported { id, packet_type });
    }
    if packet_type == WRITE {
        return decode_write(body).map(Incoming::Write);
    }
    let mut bytes = body;
    Packet::try_from(&mut bytes)
        .map(Incoming::Request)
        .map_err(|e| anyhow!("malformed packet of type {packet_type}: {e}"))
}

/// WRITE: id, handle (string), offset, data (string); `data` shares `body`'s memory.
fn decode_write(mut body: Bytes) -> anyhow::Result<WriteRequest> {
    body.advance(1);
    let malformed = || anyhow!("malformed packet of type {WRITE}: too short");
    let id = body.try_get_u32().map_err(|_| malformed())?;
    let handle = take_string(&mut body).ok_or_else(malformed)?;
    let offset = body.try_get_u64().map_err(|_| malformed())?;
    let data = take_string(&mut body).ok_or_else(malformed)?;
    Ok(WriteRequest {
        id,
        handle: String::from_utf8_lossy(&handle).into_owned(),
        offset,
        data,
    })
}

/// An SSH string (u32 length, then bytes), without copying.
fn take_string(buf: &mut Bytes) -> Option<Bytes> {
    let len = buf.try_get_u32().ok()? as usize;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

/// One reply on its way out.
#[derive(Debug)]
pub(super) enum Reply {
    /// Anything the codec encodes.
    Packet(Packet),
    /// SSH_FXP_DATA with the reader's own buffer as its payload.
    Data { id: u32, data: Bytes },
}

impl From<Packet> for Reply {
    fn from(packet: Packet) -> Self {
        Reply::Packet(packet)
    }
}

/// Encodes a reply with its length prefix.
pub(super) fn encode(reply: Reply) -> anyhow::Result<Bytes> {
    match reply {
        Reply::Packet(packet) => {
            Bytes::try_from(packet).map_err(|e| anyhow!("cannot encode a reply: {e}"))
        }
        Reply::Data { id, data } => encode_data(id, &data),
    }
}

/// DATA: length, type, id, then the payload as an SSH string, in one buffer with one copy of
/// the payload (what russh's channel writer takes is one slice per SSH packet; a header sent
/// apart from its payload would cost an SSH packet of its own).
fn encode_data(id: u32, data: &[u8]) -> anyhow::Result<Bytes> {
    const HEADER: usize = 1 + 4 + 4;
    let data_len = u32::try_from(data.len())
        .ok()
        .filter(|len| *len <= MAX_PACKET_LEN)
        .ok_or_else(|| anyhow!("cannot encode a reply: {} bytes of DATA", data.len()))?;
    let mut frame = BytesMut::with_capacity(4 + HEADER + data.len());
    frame.put_u32(HEADER as u32 + data_len);
    frame.put_u8(DATA);
    frame.put_u32(id);
    frame.put_u32(data_len);
    frame.put_slice(data);
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: Vec<u8>) -> anyhow::Result<Option<Incoming>> {
        read_packet(&mut bytes.as_slice()).await
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn clean_end_of_stream_is_none() {
        assert!(read(Vec::new()).await.unwrap().is_none());
        assert!(read(vec![0, 0]).await.is_err());
    }

    #[tokio::test]
    async fn refuses_oversized_and_empty_packets() {
        let huge = (MAX_PACKET_LEN + 1).to_be_bytes().to_vec();
        assert!(read(huge).await.is_err());
        assert!(read(frame(&[])).await.is_err());
    }

    #[tokio::test]
    async fn unknown_type_keeps_its_id() {
        let incoming = read(frame(&[99, 0, 0, 0, 42, 1, 2])).await.unwrap();
        assert!(matches!(
            incoming,
            Some(Incoming::Unsupported {
                id: 42,
                packet_type: 99
            })
        ));
        assert!(read(frame(&[99, 0])).await.is_err());
    }

    #[tokio::test]
    async fn truncated_known_packet_is_an_error() {
        // STAT (17) with an id but a string length that runs past the end.
        assert!(read(frame(&[17, 0, 0, 0, 1, 0, 0, 0, 9, b'a']))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn decodes_write_without_the_codec() {
        let mut body = vec![WRITE, 0, 0, 0, 7, 0, 0, 0, 2, b'h', b'1'];
        body.extend_from_slice(&1234u64.to_be_bytes());
        body.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c']);
        let incoming = read(frame(&body)).await.unwrap();
        let Some(Incoming::Write(write)) = incoming else {
            panic!("expected WRITE, got {incoming:?}");
        };
        assert_eq!(
            (
                write.id,
                write.handle.as_str(),
                write.offset,
                &write.data[..]
            ),
            (7, "h1", 1234, &b"abc"[..])
        );
        // Data longer than what is left, and a packet cut inside the offset.
        body[22] = 9;
        assert!(read(frame(&body)).await.is_err());
        assert!(read(frame(&body[..14])).await.is_err());
    }

    #[test]
    fn encodes_data_as_the_codec_does() {
        let payload = Bytes::from_static(b"some file bytes");
        let ours = encode(Reply::Data {
            id: 9,
            data: payload.clone(),
        })
        .unwrap();
        let codec = encode(Reply::Packet(Packet::Data(russh_sftp::protocol::Data {
            id: 9,
            data: payload.to_vec(),
        })))
        .unwrap();
        assert_eq!(ours, codec);
        let empty = encode(Reply::Data {
            id: 1,
            data: Bytes::new(),
        })
        .unwrap();
        assert_eq!(&empty[..], &[0, 0, 0, 9, DATA, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn round_trips_a_request() {
        let bytes = encode(Reply::Packet(Packet::Stat(russh_sftp::protocol::Stat {
            id: 5,
            path: "/a".into(),
        })))
        .unwrap();
        let incoming = read(bytes.to_vec()).await.unwrap();
        let Some(Incoming::Request(Packet::Stat(stat))) = incoming else {
            panic!("expected STAT, got {incoming:?}");
        };
        assert_eq!((stat.id, stat.path.as_str()), (5, "/a"));
    }
}
