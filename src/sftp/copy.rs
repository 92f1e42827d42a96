//! copy-data: copying between two open handles (OpenSSH's `cp`) without the client's bytes.
//!
//! OpenSSH's `cp` opens the source for reading, the target with WRITE|CREAT|TRUNC, sends one
//! copy-data for the whole file and only then closes both; it judges the copy by copy-data's
//! status alone. So the copy is done, or its bytes are in the upload, before the reply:
//!
//! * A whole file into an upload that has received nothing is the backend's job when it can
//!   copy by itself (Dropbox's copy_v2: no bytes through the gateway, done at once). The target
//!   then exists already; the handle's CLOSE has nothing left to commit.
//! * Anything else (part of a file, an offset, a target that already exists, which a backend
//!   copy never replaces, or a backend that cannot copy) reads the source and writes it into the
//!   upload, which commits at CLOSE like any other upload.

use crate::vfs::{FileInfo, FileReader, VPath, Vfs, VfsError, VfsResult, WriteOptions};

use super::extensions::CopyRange;
use super::write_handle::WriteHandle;

/// Bytes read from the source per step of a copy through the gateway.
const COPY_PIECE: u32 = 1024 * 1024;

/// Copies `source` to `target` inside the backend when that is possible and enough: the whole
/// file, into an upload that has received nothing. `None`: copy the bytes with [`copy_bytes`].
pub(super) async fn copy_on_server<F: Vfs>(
    fs: &F,
    source: &VPath,
    range: CopyRange,
    target: &VPath,
    upload: &mut WriteHandle<F::Writer>,
) -> VfsResult<Option<FileInfo>> {
    let whole_file = range == CopyRange::WHOLE_FILE;
    let untouched = upload
        .stat()
        .is_ok_and(|info| info.size == 0 && info.mtime.is_none());
    if !(fs.capabilities().server_side_copy && whole_file && untouched) {
        return Ok(None);
    }
    match fs.copy_file(source, target).await {
        Ok(info) => Ok(Some(info)),
        // The target exists: the upload replaces it at CLOSE, with the bytes copied here.
        Err(VfsError::AlreadyExists(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Reads `range` of `source` and writes it into `upload` at `range.write_offset`. A failure
/// part way poisons the upload: what it holds is not what the client asked for.
pub(super) async fn copy_bytes<F: Vfs>(
    fs: &F,
    source: &VPath,
    range: CopyRange,
    upload: &mut WriteHandle<F::Writer>,
) -> VfsResult<()> {
    let result = stream(fs, source, range, upload).await;
    if let Err(error) = &result {
        upload.poison(error.clone());
    }
    result
}

async fn stream<F: Vfs>(
    fs: &F,
    source: &VPath,
    range: CopyRange,
    upload: &mut WriteHandle<F::Writer>,
) -> VfsResult<()> {
    let mut reader = fs.open_read(source).await?;
    let size = reader.stat().size;
    let end = match range.length {
        0 => size,
        length => range.read_offset.saturating_add(length).min(size),
    };
    let (mut from, mut to) = (range.read_offset, range.write_offset);
    while from < end {
        let want = (end - from).min(u64::from(COPY_PIECE)) as u32;
        let data = reader.read(from, want).await?;
        if data.is_empty() {
            return Err(VfsError::Failure(format!(
                "{source} ended after {from} of {size} bytes while copying it"
            )));
        }
        let len = data.len() as u64;
        upload.write(to, data).await?;
        from += len;
        to += len;
    }
    Ok(())
}

/// A fresh upload of `path` holding what is stored there now: a handle whose file was copied on
/// the server becomes an ordinary upload again when the client goes on changing it.
pub(super) async fn reopen_copied<F: Vfs>(
    fs: &F,
    path: &VPath,
) -> VfsResult<WriteHandle<F::Writer>> {
    let options = WriteOptions {
        truncate: true,
        ..Default::default()
    };
    let mut upload = WriteHandle::new(fs.open_write(path, options).await?);
    copy_bytes(fs, path, CopyRange::WHOLE_FILE, &mut upload).await?;
    Ok(upload)
}
