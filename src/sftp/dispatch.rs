//! Sorting decoded requests by how they run: path requests as independent tasks, OPEN and
//! OPENDIR as the start of a handle's task, everything naming a handle onto that handle's queue.
//!
//! This is pure translation from the codec's packet types; no I/O and no state, so the session
//! loop stays short and the routing table sits in one match.

use anyhow::bail;
use russh_sftp::protocol::Packet;

use super::actor::OpenTarget;
use super::extensions::{self, CopyRange, ExtendedRequest};
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
}

/// Where a request goes. Errors only for an extension payload that does not decode.
pub(super) fn route(packet: Packet) -> anyhow::Result<Route> {
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
        Packet::Write(p) => on_handle(
            p.id,
            p.handle,
            HandleOp::Write {
                offset: p.offset,
                data: p.data.into(),
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
        // Replies (VERSION, STATUS, DATA, ...) never reach here: framing answers them as
        // unsupported request types.
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
