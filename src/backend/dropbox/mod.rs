//! The Dropbox backend: everything that knows Dropbox, in one folder.
//!
//! `fs` is the [`Vfs`](crate::vfs::Vfs) (one user's jailed view of one account), with its
//! handles: `reader` (downloads pinned to one version), `writer` (uploads and the rules of
//! their commit), `listing`; `lookup` and `replace` serve the writer and posix-rename.
//! [`upload`] spools an upload and commits it (one request or an upload session); [`api`] is
//! the HTTP client, the only code that speaks to Dropbox. Dropbox answers become vfs terms in
//! one place, here: `file_info` and `map_error`.

pub mod api;
#[cfg(test)]
mod contract;
mod fs;
mod listing;
mod lookup;
mod reader;
mod replace;
pub mod token_file;
pub mod upload;
mod writer;

use crate::vfs::{FileInfo, FileKind, VPath, VfsError};
use api::{DropboxError, Metadata};

pub use fs::{DropboxFs, FsSettings, MtimeChange};
pub use listing::DropboxLister;
pub use reader::DropboxReader;
pub use writer::{DropboxWriter, OpenUploads};

/// Listing attributes: a file's mtime is its client_modified (what the uploader said).
pub(crate) fn file_info(meta: &Metadata) -> FileInfo {
    match meta {
        Metadata::File(file) => FileInfo {
            name: file.name.clone(),
            kind: FileKind::File,
            size: file.size,
            mtime: api::parse_timestamp(&file.client_modified)
                .or_else(|| api::parse_timestamp(&file.server_modified)),
        },
        Metadata::Folder(folder) => FileInfo {
            name: folder.name.clone(),
            kind: FileKind::Folder,
            size: 0,
            mtime: None,
        },
        Metadata::Deleted(deleted) => FileInfo {
            name: deleted.name.clone(),
            kind: FileKind::File,
            size: 0,
            mtime: None,
        },
    }
}
fn not_found(path: &VPath) -> VfsError {
    VfsError::NotFound(format!("{path}: no such file or folder"))
}

/// The one place a Dropbox error becomes a filesystem error.
pub(crate) fn map_error(error: DropboxError, path: &VPath) -> VfsError {
    if error.is_not_found() {
        return not_found(path);
    }
    if error.is_conflict() {
        return VfsError::AlreadyExists(format!("{path} already exists"));
    }
    let tags = error.tags();
    if tags
        .iter()
        .any(|t| t == "disallowed_name" || t == "malformed_path")
    {
        return VfsError::InvalidPath(format!("{path}: Dropbox does not accept this name"));
    }
    if error.is_credentials_problem() {
        log_credentials_problem(&error);
        return VfsError::Failure(format!("{path}: {}", error.summary()));
    }
    VfsError::Failure(format!("{path}: {error}"))
}

/// A refused token or refresh: the full text tells the operator what to do (re-run `dropgate
/// auth`, check the app's scopes); the client is only told that it can come back later.
pub(crate) fn log_credentials_problem(error: &DropboxError) {
    tracing::warn!(%error, "Dropbox refused the gateway's credentials");
}
