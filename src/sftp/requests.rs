//! Requests that name paths rather than handles: each runs as its own task, concurrently with
//! everything else, and turns into one backend call (or none).

use russh_sftp::protocol::{Attrs, File, FileAttributes, Name, Packet};

use super::attrs;
use super::context::Context;
use super::extensions;
use super::status::{self, Outcome};
use crate::vfs::{VPath, Vfs, VfsError, VfsResult};

#[derive(Debug)]
pub(super) enum PathRequest {
    RealPath(String),
    /// STAT and LSTAT.
    Stat(String),
    MkDir(String),
    RmDir(String),
    Remove(String),
    /// RENAME (`replace` false) and posix-rename@openssh.com (`replace` true).
    Rename {
        from: String,
        to: String,
        replace: bool,
    },
    SetStat {
        path: String,
        attrs: FileAttributes,
    },
    Statvfs,
    Limits,
    /// Answered OP_UNSUPPORTED with this message.
    Unsupported(String),
}

impl PathRequest {
    /// The paths a request reads or changes, for waiting on uploads still committing there.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            PathRequest::Stat(p)
            | PathRequest::MkDir(p)
            | PathRequest::RmDir(p)
            | PathRequest::Remove(p)
            | PathRequest::SetStat { path: p, .. } => vec![p],
            PathRequest::Rename { from, to, .. } => vec![from, to],
            PathRequest::RealPath(_)
            | PathRequest::Statvfs
            | PathRequest::Limits
            | PathRequest::Unsupported(_) => Vec::new(),
        }
    }
}

pub(super) async fn execute<F: Vfs>(ctx: &Context<F>, id: u32, request: PathRequest) -> Outcome {
    let fs = &ctx.fs;
    match request {
        PathRequest::RealPath(path) => realpath(id, &path),
        PathRequest::Stat(path) => {
            let info = fs.stat(&parse(&path)?).await?;
            Ok(Packet::Attrs(Attrs {
                id,
                attrs: attrs::file_attributes(&info),
            }))
        }
        PathRequest::MkDir(path) => done(id, fs.mkdir(&parse(&path)?).await),
        PathRequest::RmDir(path) => done(id, fs.rmdir(&parse(&path)?).await),
        PathRequest::Remove(path) => done(id, fs.remove(&parse(&path)?).await),
        PathRequest::Rename { from, to, replace } => done(
            id,
            fs.rename(&parse(&from)?, &parse(&to)?, replace)
                .await
                .map(drop),
        ),
        PathRequest::SetStat { path, attrs } => done(id, setstat(fs, &parse(&path)?, attrs).await),
        PathRequest::Statvfs => Ok(extensions::statvfs_reply(id, fs.space_usage().await?)),
        PathRequest::Limits => Ok(extensions::limits_reply(id, ctx.max_handles)),
        PathRequest::Unsupported(message) => Err(VfsError::Unsupported(message)),
    }
}

pub(super) fn parse(path: &str) -> VfsResult<VPath> {
    VPath::parse(path)
}

fn done(id: u32, result: VfsResult<()>) -> Outcome {
    result.map(|()| status::ok(id))
}

/// Lexical, like the rest of the jail: it never asks the backend, so it canonicalises a path
/// whose last component does not exist yet (PuTTY asks before uploading to it).
fn realpath(id: u32, path: &str) -> Outcome {
    let absolute = parse(path)?.to_string();
    Ok(Packet::Name(Name {
        id,
        files: vec![File {
            filename: absolute.clone(),
            longname: absolute,
            attrs: FileAttributes::empty(),
        }],
    }))
}

/// SETSTAT by path. Modes and owners mean nothing in Dropbox and are accepted silently (clients
/// send them with every upload); the mtime goes to the backend, which applies its policy. A
/// SETSTAT on a file this session is still uploading never gets here: it goes to the upload.
async fn setstat<F: Vfs>(fs: &F, path: &VPath, attrs: FileAttributes) -> VfsResult<()> {
    if let Some(size) = attrs.size {
        // Truncating a stored file would mean uploading it again; a no-op size is fine.
        if fs.stat(path).await?.size != size {
            return Err(VfsError::Unsupported(
                "changing the size of a stored file is not supported".to_string(),
            ));
        }
    }
    if let Some(mtime) = attrs.mtime {
        fs.set_mtime(path, i64::from(mtime)).await?;
    }
    Ok(())
}
