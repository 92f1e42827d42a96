//! The seam between the SFTP protocol and a storage backend.
//!
//! The SFTP layer talks only to the [`Vfs`] trait and its handle traits; it never sees a Dropbox
//! type. Backends express what they cannot do (resume an upload, change a stored file's mtime) as
//! [`VfsError`]s with a clear message, and the SFTP layer maps those to status codes in one place.
//!
//! Paths crossing the seam are [`VPath`]s: normalised, absolute paths inside the user's jail.
//! The client's root `/` is the user's home; nothing can name a place outside it.

mod path;

pub mod audited;
#[cfg(test)]
pub(crate) mod contract;
/// The in-memory backend: the reference for the vfs contract, and the backend of the SFTP
/// layer's own tests and of the fuzz targets (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod permissions;
pub mod session_uploads;

use std::future::Future;

use bytes::Bytes;

pub use path::{case_key, VPath};

/// What a backend operation can fail with; each variant maps to one SFTP status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VfsError {
    /// The path does not exist. → SSH_FX_NO_SUCH_FILE
    #[error("{0}")]
    NotFound(String),
    /// The user may not do this. → SSH_FX_PERMISSION_DENIED
    #[error("{0}")]
    PermissionDenied(String),
    /// The target exists and the operation would not replace it. → SSH_FX_FAILURE
    #[error("{0}")]
    AlreadyExists(String),
    /// rmdir of a folder that still has entries. → SSH_FX_FAILURE
    #[error("{0}")]
    NotEmpty(String),
    /// The backend cannot do this at all (resume, ...). → SSH_FX_OP_UNSUPPORTED
    #[error("{0}")]
    Unsupported(String),
    /// The path is not acceptable (bad characters, too long, a disallowed name). → SSH_FX_FAILURE
    #[error("{0}")]
    InvalidPath(String),
    /// Anything else: the backend failed (Dropbox error, network, disk). → SSH_FX_FAILURE
    #[error("{0}")]
    Failure(String),
}

pub type VfsResult<T> = Result<T, VfsError>;

/// A folder or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Folder,
}

/// What the SFTP layer needs to know about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The last path component as the backend spells it (case preserved); "/" for the root.
    pub name: String,
    pub kind: FileKind,
    /// Bytes; 0 for folders.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (UTC), when the backend knows one.
    pub mtime: Option<i64>,
}

impl FileInfo {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Folder
    }
}

/// How a write handle is opened (from the SFTP OPEN flags and attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// O_TRUNC: the new content replaces the old from byte 0.
    pub truncate: bool,
    /// O_APPEND: the client wants to continue an existing file.
    pub append: bool,
    /// O_EXCL: fail if the target already exists.
    pub exclusive: bool,
    /// An mtime given with OPEN (seconds since the epoch).
    pub mtime: Option<i64>,
    /// Set by the permission layer for a user who may not replace files: the error an existing
    /// file at the path gets. The backend enforces it at the commit itself (a file that appears
    /// while the upload is open is not replaced either), not only by a look at OPEN.
    pub if_exists: Option<VfsError>,
    /// Set by the permission layer for a user who may not create folders: the error the upload
    /// gets if its parent folder does not exist (instead of the backend creating it).
    pub if_parent_missing: Option<VfsError>,
}

impl WriteOptions {
    /// Whether the commit must leave an existing file alone (O_EXCL, or no right to replace).
    pub fn keeps_existing(&self) -> bool {
        self.exclusive || self.if_exists.is_some()
    }
}

/// What a successful rename did (for the audit log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Renamed {
    /// A file that was at the target was replaced, and is gone.
    pub replaced: bool,
}

/// Space figures for statvfs. What is still free is the backend's to say: on a shared team
/// quota it is not the allocation minus this user's own use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceUsage {
    /// The quota that limits this user, in bytes.
    pub allocated: u64,
    /// Bytes that can still be written under it.
    pub available: u64,
}

/// What a backend can do beyond the basics. The SFTP layer asks instead of knowing backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Vfs::copy_file`] copies inside the backend, without the bytes passing through here.
    pub server_side_copy: bool,
}

/// A backend as the SFTP layer sees it. One value serves one logged-in user (already jailed).
///
/// Methods return `Send` futures so the dispatcher can run requests on other tasks.
pub trait Vfs: Send + Sync + 'static {
    type Reader: FileReader;
    type Writer: FileWriter;
    type Lister: DirLister;

    fn stat(&self, path: &VPath) -> impl Future<Output = VfsResult<FileInfo>> + Send;

    /// Starts listing a folder; NotFound if absent, Failure if it is a file.
    fn open_dir(&self, path: &VPath) -> impl Future<Output = VfsResult<Self::Lister>> + Send;

    fn open_read(&self, path: &VPath) -> impl Future<Output = VfsResult<Self::Reader>> + Send;

    fn open_write(
        &self,
        path: &VPath,
        options: WriteOptions,
    ) -> impl Future<Output = VfsResult<Self::Writer>> + Send;

    fn mkdir(&self, path: &VPath) -> impl Future<Output = VfsResult<()>> + Send;

    /// Removes an empty folder; NotEmpty otherwise (never deletes what was not asked for).
    fn rmdir(&self, path: &VPath) -> impl Future<Output = VfsResult<()>> + Send;

    /// Removes a file; a folder is refused.
    fn remove(&self, path: &VPath) -> impl Future<Output = VfsResult<()>> + Send;

    /// Moves `from` to `to`. With `replace` an existing file at `to` is replaced
    /// (posix-rename); without it an existing target is AlreadyExists (SFTP v3 RENAME).
    /// An error means nothing was lost: a replaced target is gone only once the move worked.
    fn rename(
        &self,
        from: &VPath,
        to: &VPath,
        replace: bool,
    ) -> impl Future<Output = VfsResult<Renamed>> + Send;

    /// SETSTAT by path with a modification time.
    fn set_mtime(&self, path: &VPath, mtime: i64) -> impl Future<Output = VfsResult<()>> + Send;

    fn space_usage(&self) -> impl Future<Output = VfsResult<SpaceUsage>> + Send;

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Copies the stored file `from` to `to`, which must not exist yet (AlreadyExists if it
    /// does: a copy never replaces). Only called when [`Capabilities::server_side_copy`] is set.
    fn copy_file(
        &self,
        from: &VPath,
        to: &VPath,
    ) -> impl Future<Output = VfsResult<FileInfo>> + Send {
        let _ = (from, to);
        async {
            Err(VfsError::Unsupported(
                "this backend cannot copy files".to_string(),
            ))
        }
    }
}

/// Pages of a folder listing, streamed so a large folder never sits in memory at once.
pub trait DirLister: Send + 'static {
    /// The next page of entries; `None` once the listing is complete.
    fn next_page(&mut self) -> impl Future<Output = VfsResult<Option<Vec<FileInfo>>>> + Send;
}

/// An open file being read. Calls for one handle arrive in the client's order.
pub trait FileReader: Send + 'static {
    /// Up to `len` bytes at `offset`. Full length unless the file ends first; empty at EOF.
    fn read(&mut self, offset: u64, len: u32) -> impl Future<Output = VfsResult<Bytes>> + Send;

    fn stat(&self) -> FileInfo;
}

/// An open upload. Nothing reaches the backend until [`FileWriter::commit`]; dropping the
/// writer without committing discards it (a disconnect commits nothing).
pub trait FileWriter: Send + 'static {
    /// Writes at `offset`, which may be anywhere inside what this handle has received so far or
    /// exactly at its end; a gap is Unsupported (Dropbox cannot resume). `data` is the WRITE
    /// packet's own buffer, handed over so that it is not copied again.
    fn write(&mut self, offset: u64, data: Bytes) -> impl Future<Output = VfsResult<()>> + Send;

    /// FSETSTAT SIZE: truncates (or extends with zeros) what has been received.
    fn set_size(&mut self, size: u64) -> impl Future<Output = VfsResult<()>> + Send;

    /// An mtime that arrives while the upload is open becomes the file's client_modified.
    fn set_mtime(&mut self, mtime: i64);

    /// What the handle holds so far (FSTAT).
    fn stat(&self) -> FileInfo;

    /// Sends the file to the backend and returns only once it holds exactly these bytes: what
    /// was stored, with the backend's own names for it where it has them (for the audit log).
    fn commit(self) -> impl Future<Output = VfsResult<Committed>> + Send;
}

/// What a commit stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub info: FileInfo,
    /// The backend's id for the file (Dropbox: `id:...`).
    pub id: Option<String>,
    /// The backend's revision of this version (Dropbox: `rev`).
    pub rev: Option<String>,
    /// The backend's hash of the content (Dropbox: `content_hash`).
    pub content_hash: Option<String>,
}
