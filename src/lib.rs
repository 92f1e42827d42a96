//! dropgate: an SSH/SFTP server that serves Dropbox.
//!
//! Data flows one way: SFTP packet → [`sftp`] dispatcher → [`vfs`] seam → [`dropbox`] client →
//! HTTP. The SFTP layer never sees a Dropbox type and the Dropbox client never sees an SFTP type.
//! The Dropbox API v2 emulator (the embedded default of `dropgate demo` and the tests' backend)
//! is its own crate, `dropbox-emulator`: `main.rs` uses it behind the default `demo` feature.
//! [`oauth`] is `dropgate auth`, the one-time registration of a Dropbox account.

pub mod audit_log;
pub mod backend;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod log_safe;
pub mod metrics;
pub mod sftp;
pub mod ssh;
pub mod users;
pub mod vfs;
