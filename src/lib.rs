//! dropgate: an SSH/SFTP server that serves Dropbox.
//!
//! Data flows one way: SFTP packet → [`sftp`] dispatcher → [`vfs`] seam → [`dropbox`] client →
//! HTTP. The SFTP layer never sees a Dropbox type and the Dropbox client never sees an SFTP type.
//! [`emulator`] is a Dropbox API v2 emulator: the embedded default and the tests' backend.
//! [`oauth`] is `dropgate auth`, the one-time registration of a Dropbox account.

pub mod audit;
pub mod config;
pub mod dropbox;
pub mod emulator;
pub mod gateway;
pub mod log_safe;
pub mod metrics;
pub mod oauth;
pub mod sftp;
pub mod ssh;
pub mod upload;
pub mod vfs;
