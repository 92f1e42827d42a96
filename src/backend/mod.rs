//! Storage backends: what stands behind the [`vfs`](crate::vfs) seam.
//!
//! The SFTP layer talks only to [`Vfs`](crate::vfs::Vfs); a backend implements it and keeps
//! everything about its service in its own folder. Today there is one, [`dropbox`]: its
//! filesystem, its upload path and its HTTP API client live together under `backend/dropbox/`,
//! and nothing outside that folder knows a Dropbox type except the wiring in `gateway`.

pub mod dropbox;
