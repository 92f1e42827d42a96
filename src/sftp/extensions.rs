//! The VERSION reply and the `@openssh.com` extensions this server speaks.
//!
//! Wire formats follow OpenSSH's sftp-server (PROTOCOL file in openssh-portable):
//! - `posix-rename@openssh.com` "1": string oldpath, string newpath → STATUS. Replaces the target.
//! - `statvfs@openssh.com` "2": string path → EXTENDED_REPLY of 11 u64 (`f_bsize`, `f_frsize`,
//!   `f_blocks`, `f_bfree`, `f_bavail`, `f_files`, `f_ffree`, `f_favail`, `f_fsid`, `f_flag`,
//!   `f_namemax`). `df` in OpenSSH's sftp needs it.
//! - `limits@openssh.com` "1": no payload → EXTENDED_REPLY of 4 u64 (max packet, read, write
//!   length and open handles). OpenSSH's sftp asks for it when advertised and sizes its requests
//!   from it; a 0 would mean "unknown" for some clients and 64-byte transfers for others, so every
//!   value here is non-zero.
//! - `fsync@openssh.com` "1": string handle → STATUS. Uploads reach Dropbox only on CLOSE, so
//!   there is nothing to flush; it is answered in order on its handle.
//! - `copy-data` "1": string read-from-handle, u64 read-from-offset, u64 read-data-length (0: to
//!   the end of the file), string write-to-handle, u64 write-to-offset → STATUS. OpenSSH's `cp`
//!   sends it for a whole file into a freshly opened one (see `copy`).
//!
//! Any other extended request gets OP_UNSUPPORTED and the session continues.

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use bytes::{BufMut, BytesMut};
use russh_sftp::protocol::{Extended, ExtendedReply, Packet, Version};

use crate::vfs::SpaceUsage;

/// The largest packet the server asks clients to send (OpenSSH's own value).
pub(super) const MAX_PACKET_LENGTH: u64 = 256 * 1024;
/// Largest READ or WRITE payload: leaves 1 KiB of a 256 KiB packet for the header, so a DATA
/// reply stays under the 256 KiB that OpenSSH accepts.
pub(super) const MAX_READ_LENGTH: u32 = 256 * 1024 - 1024;
pub(super) const MAX_WRITE_LENGTH: u32 = MAX_READ_LENGTH;

pub(super) const POSIX_RENAME: &str = "posix-rename@openssh.com";
pub(super) const STATVFS: &str = "statvfs@openssh.com";
pub(super) const LIMITS: &str = "limits@openssh.com";
pub(super) const FSYNC: &str = "fsync@openssh.com";
pub(super) const COPY_DATA: &str = "copy-data";

/// statvfs block size: what `df` multiplies block counts by.
const BLOCK_SIZE: u64 = 4096;
/// statvfs `f_namemax`: Dropbox's limit on one path component.
const NAME_MAX: u64 = 255;

/// VERSION 3, whatever the client asked for (lftp sends 6): the only version this server speaks.
pub(super) fn version() -> Packet {
    let extensions: HashMap<String, String> = [
        (POSIX_RENAME, "1"),
        (STATVFS, "2"),
        (LIMITS, "1"),
        (FSYNC, "1"),
        (COPY_DATA, "1"),
    ]
    .into_iter()
    .map(|(name, version)| (name.to_string(), version.to_string()))
    .collect();
    Packet::Version(Version {
        version: russh_sftp::protocol::VERSION,
        extensions,
    })
}

/// An EXTENDED request, its payload decoded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ExtendedRequest {
    PosixRename {
        from: String,
        to: String,
    },
    Statvfs,
    Limits,
    Fsync {
        handle: String,
    },
    CopyData {
        read_handle: String,
        range: CopyRange,
        write_handle: String,
    },
    /// Not supported; answered OP_UNSUPPORTED.
    Other(String),
}

/// Where copy-data reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CopyRange {
    pub read_offset: u64,
    /// 0: up to the end of the source.
    pub length: u64,
    pub write_offset: u64,
}

impl CopyRange {
    /// All of the source, to the start of the target (what OpenSSH's `cp` asks for).
    pub const WHOLE_FILE: CopyRange = CopyRange {
        read_offset: 0,
        length: 0,
        write_offset: 0,
    };
}

/// Decodes the payload of a supported extension. A payload that does not decode is a protocol
/// violation, like any other malformed packet (see `framing`).
pub(super) fn parse(extended: &Extended) -> anyhow::Result<ExtendedRequest> {
    let mut data = extended.data.as_slice();
    let request = match extended.request.as_str() {
        POSIX_RENAME => {
            let from = take_string(&mut data)?;
            let to = take_string(&mut data)?;
            ExtendedRequest::PosixRename { from, to }
        }
        STATVFS => {
            // The path only selects a file system; there is one.
            take_string(&mut data)?;
            ExtendedRequest::Statvfs
        }
        LIMITS => ExtendedRequest::Limits,
        FSYNC => ExtendedRequest::Fsync {
            handle: take_string(&mut data)?,
        },
        COPY_DATA => {
            let read_handle = take_string(&mut data)?;
            let read_offset = take_u64(&mut data)?;
            let length = take_u64(&mut data)?;
            let write_handle = take_string(&mut data)?;
            let write_offset = take_u64(&mut data)?;
            ExtendedRequest::CopyData {
                read_handle,
                range: CopyRange {
                    read_offset,
                    length,
                    write_offset,
                },
                write_handle,
            }
        }
        other => return Ok(ExtendedRequest::Other(other.to_string())),
    };
    Ok(request)
}

/// An SSH string (u32 length, bytes); bytes that are not UTF-8 are replaced, as the codec does.
fn take_string(data: &mut &[u8]) -> anyhow::Result<String> {
    let (len, rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| anyhow!("extended request payload is truncated"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        bail!("extended request payload is truncated");
    }
    let (text, rest) = rest.split_at(len);
    *data = rest;
    Ok(String::from_utf8_lossy(text).into_owned())
}

fn take_u64(data: &mut &[u8]) -> anyhow::Result<u64> {
    let (value, rest) = data
        .split_first_chunk::<8>()
        .ok_or_else(|| anyhow!("extended request payload is truncated"))?;
    *data = rest;
    Ok(u64::from_be_bytes(*value))
}

pub(super) fn limits_reply(id: u32, max_handles: usize) -> Packet {
    let max_handles = (max_handles as u64).max(1);
    u64_reply(
        id,
        &[
            MAX_PACKET_LENGTH,
            u64::from(MAX_READ_LENGTH),
            u64::from(MAX_WRITE_LENGTH),
            max_handles,
        ],
    )
}

pub(super) fn statvfs_reply(id: u32, usage: SpaceUsage) -> Packet {
    let blocks = usage.allocated / BLOCK_SIZE;
    let free = usage.available / BLOCK_SIZE;
    u64_reply(
        id,
        &[
            BLOCK_SIZE, // f_bsize
            BLOCK_SIZE, // f_frsize
            blocks,     // f_blocks
            free,       // f_bfree
            free,       // f_bavail
            0,          // f_files: Dropbox counts no inodes
            0,          // f_ffree
            0,          // f_favail
            0,          // f_fsid
            0,          // f_flag: writable (no ST_RDONLY), no ST_NOSUID
            NAME_MAX,   // f_namemax
        ],
    )
}

fn u64_reply(id: u32, values: &[u64]) -> Packet {
    let mut data = BytesMut::with_capacity(values.len() * 8);
    for value in values {
        data.put_u64(*value);
    }
    Packet::ExtendedReply(ExtendedReply {
        id,
        data: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extended(request: &str, data: Vec<u8>) -> Extended {
        Extended {
            id: 1,
            request: request.into(),
            data,
        }
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn parses_posix_rename() {
        let data = [string("/a"), string("/b")].concat();
        assert_eq!(
            parse(&extended(POSIX_RENAME, data)).unwrap(),
            ExtendedRequest::PosixRename {
                from: "/a".into(),
                to: "/b".into()
            }
        );
    }

    #[test]
    fn truncated_payload_is_an_error_unknown_name_is_not() {
        assert!(parse(&extended(POSIX_RENAME, string("/a"))).is_err());
        assert!(parse(&extended(FSYNC, vec![0, 0, 0, 9, 1])).is_err());
        assert!(parse(&extended(COPY_DATA, string("1"))).is_err());
        assert_eq!(
            parse(&extended("hardlink@openssh.com", vec![1, 2])).unwrap(),
            ExtendedRequest::Other("hardlink@openssh.com".into())
        );
    }

    #[test]
    fn parses_copy_data() {
        let data = [
            string("1"),
            7u64.to_be_bytes().to_vec(),
            0u64.to_be_bytes().to_vec(),
            string("2"),
            9u64.to_be_bytes().to_vec(),
        ]
        .concat();
        assert_eq!(
            parse(&extended(COPY_DATA, data)).unwrap(),
            ExtendedRequest::CopyData {
                read_handle: "1".into(),
                range: CopyRange {
                    read_offset: 7,
                    length: 0,
                    write_offset: 9
                },
                write_handle: "2".into(),
            }
        );
    }

    #[test]
    fn statvfs_counts_4k_blocks() {
        let Packet::ExtendedReply(reply) = statvfs_reply(
            3,
            SpaceUsage {
                allocated: 4096 * 100,
                available: 4096 * 90,
            },
        ) else {
            panic!("expected EXTENDED_REPLY");
        };
        let fields: Vec<u64> = reply
            .data
            .chunks(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(fields.len(), 11);
        assert_eq!(&fields[..5], &[4096, 4096, 100, 90, 90]);
        assert_eq!(fields[10], 255);
    }

    #[test]
    fn limits_are_never_zero() {
        let Packet::ExtendedReply(reply) = limits_reply(1, 0) else {
            panic!("expected EXTENDED_REPLY");
        };
        assert!(reply.data.chunks(8).all(|c| c != [0u8; 8]));
    }
}
