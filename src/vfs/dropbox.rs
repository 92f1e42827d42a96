//! The Dropbox-backed [`super::Vfs`] (in progress).
