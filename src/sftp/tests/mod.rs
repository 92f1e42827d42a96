//! Session tests: `serve` driven over an in-memory stream by raw packets and by russh-sftp's
//! client, against an in-memory backend.

mod client;
mod copy;
mod listing;
mod properties;
mod protocol;
mod transfer;
mod wire;

use crate::vfs::memory as memfs;
