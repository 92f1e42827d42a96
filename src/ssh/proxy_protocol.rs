//! The PROXY protocol header a TCP load balancer puts in front of a connection (versions 1
//! and 2, as HAProxy specifies them), read before the socket is handed to SSH.
//!
//! Behind a load balancer every connection comes from the balancer's address; the header
//! carries the real client's, which is what bans, connection caps and the audit log must see.
//! Hand-written because it is small: v1 is one text line of at most 107 bytes, v2 a 16-byte
//! preamble and an address block. The header is read byte-exactly (nothing after it is
//! consumed), so the SSH banner that follows is left for russh. A header that says LOCAL
//! (the balancer's own health check) or carries no usable address means "use the connection's
//! own address". Anything malformed is an error and the connection is closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature: chosen so that it can never start a v1 line or an SSH banner.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the specification's limit).
const V1_MAX_LEN: usize = 107;

/// What was wrong with a header, in plain words.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one header from `stream`; the client's address, or None when the header gives none
/// (LOCAL, UNKNOWN, or an address family other than IPv4 and IPv6).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, HeaderError> {
    let mut start = [0u8; 6];
    stream.read_exact(&mut start).await?;
    if &start == b"PROXY " {
        return read_v1(stream).await;
    }
    if start == V2_SIGNATURE[..6] {
        return read_v2(stream).await;
    }
    Err(HeaderError::Missing)
}

/// The rest of `PROXY TCP4 192.0.2.1 198.51.100.1 56324 22\r\n`, after "PROXY ".
async fn read_v1<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<SocketAddr>, HeaderError> {
    let mut line = Vec::with_capacity(V1_MAX_LEN);
    // Byte by byte: whatever follows the line belongs to SSH.
    while !line.ends_with(b"\r\n") {
        if line.len() + 6 >= V1_MAX_LEN {
            return Err(HeaderError::Malformed("the v1 line is too long"));
        }
        line.push(stream.read_u8().await?);
    }
    let text = std::str::from_utf8(&line[..line.len() - 2])
        .map_err(|_| HeaderError::Malformed("the v1 line is not text"))?;
    parse_v1(text)
}

fn parse_v1(text: &str) -> Result<Option<SocketAddr>, HeaderError> {
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["UNKNOWN", ..] => Ok(None),
        [family @ ("TCP4" | "TCP6"), source, _destination, source_port, _destination_port] => {
            let ip: IpAddr = source
                .parse()
                .map_err(|_| HeaderError::Malformed("the v1 source address does not parse"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(HeaderError::Malformed(
                    "the v1 source address does not match its family",
                ));
            }
            let port: u16 = source_port
                .parse()
                .map_err(|_| HeaderError::Malformed("the v1 source port does not parse"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(HeaderError::Malformed(
            "the v1 line does not have its five fields",
        )),
    }
}

/// The rest of a v2 header, after the first 6 bytes of its signature.
async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<SocketAddr>, HeaderError> {
    let mut preamble = [0u8; 10];
    stream.read_exact(&mut preamble).await?;
    if preamble[..6] != V2_SIGNATURE[6..] {
        return Err(HeaderError::Malformed("the v2 signature is wrong"));
    }
    let (version_command, family, len) = (
        preamble[6],
        preamble[7],
        u16::from_be_bytes([preamble[8], preamble[9]]),
    );
    let mut block = vec![0u8; usize::from(len)];
    stream.read_exact(&mut block).await?;
    if version_command >> 4 != 2 {
        return Err(HeaderError::Malformed("the v2 version is not 2"));
    }
    match version_command & 0x0f {
        0x0 => Ok(None), // LOCAL: the balancer speaking for itself.
        0x1 => parse_v2_addresses(family >> 4, &block),
        _ => Err(HeaderError::Malformed(
            "the v2 command is neither LOCAL nor PROXY",
        )),
    }
}

/// The source address of a v2 PROXY header's address block (TLVs after it are ignored).
fn parse_v2_addresses(family: u8, block: &[u8]) -> Result<Option<SocketAddr>, HeaderError> {
    let short = HeaderError::Malformed("the v2 address block is too short");
    match family {
        0x1 => {
            let Some(bytes) = block.get(..12) else {
                return Err(short);
            };
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            let port = u16::from_be_bytes([bytes[8], bytes[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        0x2 => {
            let Some(bytes) = block.get(..36) else {
                return Err(short);
            };
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            let port = u16::from_be_bytes([bytes[32], bytes[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // UNSPEC or a UNIX socket: no address worth using.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a header from `bytes`; also returns what is left after it.
    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, HeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let result = read_header(&mut stream).await;
        (result, stream.to_vec())
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend([0x20 | command, family]);
        bytes.extend((block.len() as u16).to_be_bytes());
        bytes.extend(block);
        bytes.extend(b"SSH-2.0-client\r\n");
        bytes
    }

    #[tokio::test]
    async fn v1_lines_give_the_source_and_leave_the_rest() {
        let (addr, rest) = read(b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 22\r\nSSH-2.0-x\r\n").await;
        assert_eq!(addr.unwrap(), Some("203.0.113.9:40000".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-x\r\n");
        let (addr, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 5 22\r\n").await;
        assert_eq!(addr.unwrap(), Some("[2001:db8::7]:5".parse().unwrap()));
        let (addr, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(addr.unwrap(), None);
    }

    #[tokio::test]
    async fn v2_headers_give_the_source_or_none_for_local() {
        let mut block = vec![198, 51, 100, 4, 10, 0, 0, 1];
        block.extend(1234u16.to_be_bytes());
        block.extend(22u16.to_be_bytes());
        block.extend([0x04, 0x00, 0x01, 0xff]); // a TLV, ignored
        let (addr, rest) = read(&v2(1, 0x11, &block)).await;
        assert_eq!(addr.unwrap(), Some("198.51.100.4:1234".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-client\r\n");

        let mut block = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        block.extend([0u8; 16]);
        block.extend(7u16.to_be_bytes());
        block.extend(22u16.to_be_bytes());
        let (addr, _) = read(&v2(1, 0x21, &block)).await;
        assert_eq!(addr.unwrap(), Some("[2001:db8::9]:7".parse().unwrap()));

        let (addr, rest) = read(&v2(0, 0x00, &[])).await;
        assert_eq!(addr.unwrap(), None);
        assert_eq!(rest, b"SSH-2.0-client\r\n");
    }

    #[tokio::test]
    async fn malformed_headers_are_errors() {
        let bad: [&[u8]; 7] = [
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 40000\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 22\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 99999 22\r\n",
            b"PROXY A", // the connection ends mid-line
            b"PROXY TCP4 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\0",
        ];
        for bytes in bad {
            let (result, _) = read(bytes).await;
            assert!(result.is_err(), "{:?}", String::from_utf8_lossy(bytes));
        }
        let (result, _) = read(&v2(1, 0x11, &[1, 2, 3])).await;
        assert!(result.is_err(), "short v2 address block");
    }
}
