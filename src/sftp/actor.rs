//! One task per open handle: it opens the file or folder, answers OPEN with the handle, then
//! serves the handle's queue one request at a time until CLOSE.
//!
//! Owning the backend object in a single task is what puts a handle's requests in the client's
//! order without a lock: a pipelined run of WRITEs lands in the spool in order, the FSETSTAT that
//! lftp and OpenSSH send before CLOSE is applied before the commit, and CLOSE answers only after
//! the commit has finished. Handles do not wait for one another.

use std::sync::Arc;

use russh_sftp::protocol::{Attrs, FileAttributes, Handle, OpenFlags, Packet};
use tracing::Instrument;

use super::attrs;
use super::context::Context;
use super::copy;
use super::extensions::CopyRange;
use super::extensions::MAX_READ_LENGTH;
use super::framing::Reply;
use super::handles::{HandleKind, HandleOp, Job, Registration};
use super::listing::Listing;
use super::replies::{Permit, Replies};
use super::requests::parse;
use super::status::{self, Outcome};
use super::write_handle::WriteHandle;
use crate::vfs::{FileInfo, FileReader, VPath, Vfs, VfsError, VfsResult, WriteOptions};

/// What an OPEN or OPENDIR asks for.
#[derive(Debug)]
pub(super) enum OpenTarget {
    File {
        path: String,
        flags: OpenFlags,
        attrs: FileAttributes,
    },
    Dir {
        path: String,
    },
}

impl OpenTarget {
    pub fn path(&self) -> &str {
        match self {
            OpenTarget::File { path, .. } | OpenTarget::Dir { path } => path,
        }
    }
}

/// The backend object behind a handle.
enum OpenFile<F: Vfs> {
    Read {
        path: VPath,
        reader: F::Reader,
    },
    Write {
        path: VPath,
        upload: WriteHandle<F::Writer>,
    },
    /// A write handle whose file the backend has copied into place (copy-data): nothing is left
    /// to commit, unless the client changes it further (then it is an upload again).
    Copied {
        path: VPath,
        info: FileInfo,
    },
    Dir {
        path: VPath,
        listing: Listing<F::Lister>,
    },
}

impl<F: Vfs> OpenFile<F> {
    /// READ alone opens for reading; any WRITE opens an upload (READ|WRITE too: the backend
    /// cannot read a file being uploaded, and clients that ask for both only write).
    async fn open(fs: &F, target: OpenTarget) -> VfsResult<Self> {
        match target {
            OpenTarget::Dir { path } => {
                let path = parse(&path)?;
                let lister = fs.open_dir(&path).await?;
                Ok(OpenFile::Dir {
                    path,
                    listing: Listing::new(lister),
                })
            }
            OpenTarget::File { path, flags, attrs } => {
                let path = parse(&path)?;
                if flags.contains(OpenFlags::WRITE) {
                    let writer = fs.open_write(&path, write_options(flags, &attrs)).await?;
                    Ok(OpenFile::Write {
                        path,
                        upload: WriteHandle::new(writer),
                    })
                } else {
                    let reader = fs.open_read(&path).await?;
                    Ok(OpenFile::Read { path, reader })
                }
            }
        }
    }

    fn path(&self) -> &VPath {
        match self {
            OpenFile::Read { path, .. }
            | OpenFile::Write { path, .. }
            | OpenFile::Copied { path, .. }
            | OpenFile::Dir { path, .. } => path,
        }
    }

    fn kind(&self) -> HandleKind {
        match self {
            OpenFile::Read { .. } => HandleKind::Read,
            OpenFile::Write { .. } | OpenFile::Copied { .. } => HandleKind::Write,
            OpenFile::Dir { .. } => HandleKind::Dir,
        }
    }
}

fn write_options(flags: OpenFlags, attrs: &FileAttributes) -> WriteOptions {
    WriteOptions {
        truncate: flags.contains(OpenFlags::TRUNCATE),
        append: flags.contains(OpenFlags::APPEND),
        exclusive: flags.contains(OpenFlags::EXCLUDE),
        mtime: attrs.mtime.map(i64::from),
        ..WriteOptions::default()
    }
}

/// OPEN/OPENDIR: opens, registers the handle, replies, then serves the handle until CLOSE or the
/// end of the session.
pub(super) async fn open_and_serve<F: Vfs>(
    ctx: Arc<Context<F>>,
    replies: Replies,
    id: u32,
    target: OpenTarget,
    permit: Permit,
) {
    let file = match OpenFile::open(&ctx.fs, target).await {
        Ok(file) => file,
        Err(error) => return replies.send(id, Err(error), permit),
    };
    // If the table is full (or the session ending) the file is dropped here: an upload opened
    // in vain commits nothing.
    let registration = match ctx.handles.register(file.path().clone(), file.kind()) {
        Ok(registration) => registration,
        Err(error) => return replies.send(id, Err(error), permit),
    };
    let handle = registration.handle.clone();
    replies.send(id, Ok(Packet::Handle(Handle { id, handle })), permit);
    serve(&ctx, &replies, registration, file).await;
}

/// Serves queued requests in order. Ends after CLOSE, or when the session closes the queue, in
/// which case an open upload is dropped without committing.
async fn serve<F: Vfs>(
    ctx: &Context<F>,
    replies: &Replies,
    registration: Registration,
    mut file: OpenFile<F>,
) {
    let Registration {
        handle,
        mut jobs,
        done,
    } = registration;
    while let Some(Job { id, op, permit }) = jobs.recv().await {
        if let HandleOp::Close = op {
            replies.send(id, close(file, id).await, permit);
            break;
        }
        let outcome = apply(ctx, &mut file, id, op).await;
        replies.send_reply(id, outcome, permit);
    }
    ctx.handles.remove(&handle);
    // Only now may requests that waited for this commit go ahead.
    drop(done);
}

/// One request on an open handle. READ answers with DATA (see [`read`]); everything else with
/// an ordinary packet.
async fn apply<F: Vfs>(
    ctx: &Context<F>,
    file: &mut OpenFile<F>,
    id: u32,
    op: HandleOp,
) -> VfsResult<Reply> {
    match (file, op) {
        (OpenFile::Read { reader, .. }, HandleOp::Read { offset, len }) => {
            read(reader, id, offset, len).await
        }
        (file, op) => apply_other(ctx, file, id, op).await.map(Reply::from),
    }
}

async fn apply_other<F: Vfs>(
    ctx: &Context<F>,
    file: &mut OpenFile<F>,
    id: u32,
    op: HandleOp,
) -> Outcome {
    if let OpenFile::Copied { path, info } = file {
        if changes_copy(&op, info) {
            let upload = copy::reopen_copied(&ctx.fs, path).await?;
            let path = path.clone();
            *file = OpenFile::Write { path, upload };
        }
    }
    match (file, op) {
        (OpenFile::Write { upload, .. }, HandleOp::Write { offset, data }) => {
            upload.write(offset, data).await?;
            Ok(status::ok(id))
        }
        (file @ OpenFile::Write { .. }, HandleOp::CopyFrom { source, range }) => {
            copy_into(&ctx.fs, file, &source, range).await?;
            Ok(status::ok(id))
        }
        (OpenFile::Dir { listing, .. }, HandleOp::ReadDir) => {
            listing.next_reply(id, &ctx.user, now()).await
        }
        (file, HandleOp::Fstat) => {
            let info = fstat(&ctx.fs, file).await?;
            Ok(Packet::Attrs(Attrs {
                id,
                attrs: attrs::file_attributes(&info),
            }))
        }
        (file, HandleOp::SetStat(attrs)) => {
            setstat(&ctx.fs, file, *attrs).await?;
            Ok(status::ok(id))
        }
        // Uploads reach the backend on CLOSE; there is nothing to flush earlier.
        (_, HandleOp::Fsync) => Ok(status::ok(id)),
        (_, HandleOp::Read { .. }) => Err(failure("the handle is not open for reading")),
        (_, HandleOp::Write { .. } | HandleOp::CopyFrom { .. }) => {
            Err(failure("the handle is not open for writing"))
        }
        (_, HandleOp::ReadDir) => Err(failure("the handle is not a directory")),
        // `serve` handles CLOSE itself; a CLOSE here would be a second one.
        (_, HandleOp::Close) => Err(status::invalid_handle()),
    }
}

/// Whether `op` would make a file the backend copied differ from the copy (a size or time it
/// does not have, or more data); the file must then be uploaded after all.
fn changes_copy(op: &HandleOp, copied: &FileInfo) -> bool {
    match op {
        HandleOp::Write { .. } | HandleOp::CopyFrom { .. } => true,
        HandleOp::SetStat(attrs) => {
            attrs.size.is_some_and(|size| size != copied.size)
                || attrs
                    .mtime
                    .is_some_and(|mtime| copied.mtime != Some(i64::from(mtime)))
        }
        _ => false,
    }
}

/// copy-data into an upload: by the backend if it can (the handle becomes `Copied`), else
/// through the upload.
async fn copy_into<F: Vfs>(
    fs: &F,
    file: &mut OpenFile<F>,
    source: &VPath,
    range: CopyRange,
) -> VfsResult<()> {
    let OpenFile::Write { path, upload } = file else {
        return Err(failure("the handle is not open for writing"));
    };
    match copy::copy_on_server(fs, source, range, path, upload).await? {
        Some(info) => {
            let path = path.clone();
            // The pristine upload is dropped uncommitted: the backend holds the file already.
            *file = OpenFile::Copied { path, info };
            Ok(())
        }
        None => copy::copy_bytes(fs, source, range, upload).await,
    }
}

/// DATA with what the backend returns (short only at the end of the file); EOF as a status.
/// The reader's buffer goes to the reply as it is: framing copies it once, into the frame.
async fn read<R: FileReader>(reader: &mut R, id: u32, offset: u64, len: u32) -> VfsResult<Reply> {
    let len = len.min(MAX_READ_LENGTH);
    let mut data = reader.read(offset, len).await?;
    if data.is_empty() {
        return Ok(status::eof(id).into());
    }
    data.truncate(len as usize);
    Ok(Reply::Data { id, data })
}

async fn fstat<F: Vfs>(fs: &F, file: &mut OpenFile<F>) -> VfsResult<FileInfo> {
    match file {
        OpenFile::Read { reader, .. } => Ok(reader.stat()),
        OpenFile::Write { upload, .. } => upload.stat(),
        OpenFile::Copied { info, .. } => Ok(info.clone()),
        OpenFile::Dir { path, .. } => fs.stat(path).await,
    }
}

/// FSETSTAT (or SETSTAT on a path being uploaded). On an upload, SIZE truncates or extends what
/// has been received (scp sends it) and the mtime becomes the file's modification time; on a
/// stored file the mtime goes to the backend. Modes and owners are accepted and ignored.
async fn setstat<F: Vfs>(fs: &F, file: &mut OpenFile<F>, attrs: FileAttributes) -> VfsResult<()> {
    match file {
        OpenFile::Write { upload, .. } => {
            if let Some(size) = attrs.size {
                upload.set_size(size).await?;
            }
            if let Some(mtime) = attrs.mtime {
                upload.set_mtime(i64::from(mtime))?;
            }
        }
        // Only attributes the copy already has (see `changes_copy`), or modes: nothing to do.
        OpenFile::Copied { .. } => {}
        OpenFile::Read { path, reader } => {
            if attrs.size.is_some_and(|size| size != reader.stat().size) {
                return Err(VfsError::Unsupported(
                    "changing the size of a stored file is not supported".to_string(),
                ));
            }
            if let Some(mtime) = attrs.mtime {
                fs.set_mtime(path, i64::from(mtime)).await?;
            }
        }
        OpenFile::Dir { path, .. } => {
            if let Some(mtime) = attrs.mtime {
                fs.set_mtime(path, i64::from(mtime)).await?;
            }
        }
    }
    Ok(())
}

/// CLOSE: an upload answers OK only once the backend holds the file.
///
/// The commit runs on a task of its own, which the end of the session does not abort: a client
/// that sent CLOSE has handed over the whole file, so a disconnect while the commit runs (the
/// session's tasks are then aborted) must neither cut a commit off halfway nor lose the file.
/// The client just never hears the answer; a graceful shutdown still waits for the commit.
async fn close<F: Vfs>(file: OpenFile<F>, id: u32) -> Outcome {
    if let OpenFile::Write { upload, .. } = file {
        tokio::spawn(upload.commit().in_current_span())
            .await
            .map_err(|e| failure(&format!("the commit stopped unexpectedly: {e}")))??;
    }
    Ok(status::ok(id))
}

fn failure(message: &str) -> VfsError {
    VfsError::Failure(message.to_string())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
