//! Sorting decoded requests by how they run: path requests as independent tasks, OPEN and
//! OPENDIR as the start of a handle's task, everything naming a handle onto that handle's queue.
//!
//! This is pure translation from what [`super::framing`] decoded; no I/O and no state, so the
//! session loop stays short and the routing table sits in one place. WRITE comes here too, as
//! framing's own zero-copy [`WriteRequest`] rather than the codec's packet: its data moves on to
//! the handle as the slice of the packet it arrived in.

use anyhow::bail;
use russh_sftp::protocol::Packet;

use super::actor::OpenTarget;
use super::extensions::{self, CopyRange, ExtendedRequest};
use super::framing::{Incoming, WriteRequest};
use super::handles::HandleOp;
use super::requests::PathRequest;

#[derive(Debug)]
pub(super) enum Route {
    Init,
    Path {
        id: u32,
        request: PathRequest,
    },
    Open {
        id: u32,
        target: OpenTarget,
    },
    Handle {
        id: u32,
        handle: String,
        op: HandleOp,
    },
    /// copy-data: served by the write handle, reading the file the read handle has open.
    Copy {
        id: u32,
        read_handle: String,
        range: CopyRange,
        write_handle: String,
    },
    /// A packet type the server does not handle: answered with OP_UNSUPPORTED at once.
    Unsupported {
        id: u32,
        packet_type: u8,
    },
}

/// Where a request goes. Errors only for a packet no client may send (a reply) and for an
/// extension payload that does not decode.
pub(super) fn route(incoming: Incoming) -> anyhow::Result<Route> {
    match incoming {
        Incoming::Request(packet) => route_packet(packet),
        Incoming::Write(write) => Ok(route_write(write)),
        Incoming::Unsupported { id, packet_type } => Ok(Route::Unsupported { id, packet_type }),
    }
}

/// WRITE onto its handle's queue, its data not copied.
fn route_write(write: WriteRequest) -> Route {
    let WriteRequest {
        id,
        handle,
        offset,
        data,
    } = write;
    on_handle(id, handle, HandleOp::Write { offset, data })
}

fn route_packet(packet: Packet) -> anyhow::Result<Route> {
    let route = match packet {
        Packet::Init(_) => Route::Init,
        Packet::Open(open) => Route::Open {
            id: open.id,
            target: OpenTarget::File {
                path: open.filename,
                flags: open.pflags,
                attrs: open.attrs,
            },
        },
        Packet::OpenDir(open) => Route::Open {
            id: open.id,
            target: OpenTarget::Dir { path: open.path },
        },
        Packet::Close(p) => on_handle(p.id, p.handle, HandleOp::Close),
        Packet::Read(p) => on_handle(
            p.id,
            p.handle,
            HandleOp::Read {
                offset: p.offset,
                len: p.len,
            },
        ),
        Packet::Fstat(p) => on_handle(p.id, p.handle, HandleOp::Fstat),
        Packet::FSetStat(p) => on_handle(p.id, p.handle, HandleOp::SetStat(Box::new(p.attrs))),
        Packet::ReadDir(p) => on_handle(p.id, p.handle, HandleOp::ReadDir),
        // No symbolic links in Dropbox: LSTAT is STAT.
        Packet::Stat(p) => on_path(p.id, PathRequest::Stat(p.path)),
        Packet::Lstat(p) => on_path(p.id, PathRequest::Stat(p.path)),
        Packet::RealPath(p) => on_path(p.id, PathRequest::RealPath(p.path)),
        Packet::MkDir(p) => on_path(p.id, PathRequest::MkDir(p.path)),
        Packet::RmDir(p) => on_path(p.id, PathRequest::RmDir(p.path)),
        Packet::Remove(p) => on_path(p.id, PathRequest::Remove(p.filename)),
        Packet::Rename(p) => on_path(
            p.id,
            PathRequest::Rename {
                from: p.oldpath,
                to: p.newpath,
                replace: false,
            },
        ),
        Packet::SetStat(p) => on_path(
            p.id,
            PathRequest::SetStat {
                path: p.path,
                attrs: p.attrs,
            },
        ),
        Packet::ReadLink(p) => on_path(p.id, no_links()),
        Packet::Symlink(p) => on_path(p.id, no_links()),
        Packet::Extended(p) => match extensions::parse(&p)? {
            ExtendedRequest::PosixRename { from, to } => on_path(
                p.id,
                PathRequest::Rename {
                    from,
                    to,
                    replace: true,
                },
            ),
            ExtendedRequest::Statvfs => on_path(p.id, PathRequest::Statvfs),
            ExtendedRequest::Limits => on_path(p.id, PathRequest::Limits),
            ExtendedRequest::Fsync { handle } => on_handle(p.id, handle, HandleOp::Fsync),
            ExtendedRequest::CopyData {
                read_handle,
                range,
                write_handle,
            } => Route::Copy {
                id: p.id,
                read_handle,
                range,
                write_handle,
            },
            ExtendedRequest::Other(name) => on_path(
                p.id,
                PathRequest::Unsupported(format!("extension {name} is not supported")),
            ),
        },
        // Framing decodes every WRITE itself (see `route_write`), so the codec's WRITE packet
        // never reaches here; nor do replies (VERSION, STATUS, DATA, ...), which framing answers
        // as unsupported request types.
        other => bail!("client sent a reply packet: {other:?}"),
    };
    Ok(route)
}

fn on_handle(id: u32, handle: String, op: HandleOp) -> Route {
    Route::Handle { id, handle, op }
}

fn on_path(id: u32, request: PathRequest) -> Route {
    Route::Path { id, request }
}

fn no_links() -> PathRequest {
    PathRequest::Unsupported("symbolic links are not supported".to_string())
}
