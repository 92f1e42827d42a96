//! dropgate: an SSH/SFTP server that serves Dropbox.
//!
//! Data flows one way: SSH connection ([`ssh`]) → SFTP packet ([`sftp`] dispatcher) or legacy
//! SCP record ([`scp`]) → the [`vfs`] seam (permissions, audit) → a [`backend`] (Dropbox: spool,
//! commit, HTTP client) → Dropbox. The SFTP layer never sees a Dropbox type and the Dropbox
//! client never sees an SFTP type. Beside the data path: [`config`] reads the TOML file and
//! builds the [`users`]; [`gateway`] wires accounts, users and the SSH server together;
//! [`hooks`] tell partners' automation what happened, from the audit log's lines, and
//! [`activity`] keeps what the admin page shows from the same lines; [`cli`] holds one module
//! per command; [`metrics`], [`audit_log`], [`transfers`] (those in progress), [`log_safe`],
//! [`tls_trust`] (the CAs HTTPS trusts) and [`secret_file`] serve every layer and depend on
//! none.
//! The Dropbox API v2 emulator (`dropgate demo`'s Dropbox and the tests' backend) is its own
//! crate, `dropbox-emulator`, used only behind the default `demo` feature.

pub mod activity;
pub mod admin;
pub mod audit_log;
pub mod backend;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod hooks;
pub mod log_safe;
pub mod logging;
pub mod metrics;
pub mod scp;
pub mod secret_file;
pub mod sftp;
pub mod ssh;
pub mod tls_trust;
pub mod transfers;
pub mod users;
pub mod vfs;
