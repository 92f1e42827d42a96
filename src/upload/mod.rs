//! Uploads the Dropbox way: spool every byte to a temp file, then commit the whole file.
//!
//! Dropbox cannot write into a file at an offset, so an SFTP upload is collected in a
//! [`Spool`] (a temp file: never in memory) and sent at CLOSE by [`commit`]: one `files/upload`
//! up to the single-upload limit, an upload session above it. The commit carries our
//! content_hash and checks the one Dropbox answers with, so an OK means Dropbox holds exactly
//! these bytes.

mod commit;
mod spool;

use std::path::PathBuf;

pub use commit::{commit, CommitError};
pub use spool::{remove_stale_spools, Spool};

/// How uploads are spooled and committed.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub spool_dir: PathBuf,
    /// Files up to this many bytes go as one files/upload.
    pub single_upload_limit: u64,
    /// Upload-session chunk size (a multiple of 4 MiB).
    pub chunk_size: u64,
}
