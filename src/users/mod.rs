//! The users: who may log in, with which keys or password, from where, and what they may do.
//!
//! `config` builds them; the SSH layer logs them in ([`registry`] holds the
//! current generation, replaced whole by a reload) and the vfs layer enforces their
//! [`permissions`]. Nothing here depends on either layer, so both can depend on it.

pub mod authorized_keys;
pub mod networks;
pub mod password;
pub mod permissions;
pub mod registry;

use authorized_keys::AuthorizedKey;
use password::StoredPasswordHash;
use permissions::Permissions;

/// A user as the server uses it: keys parsed, root normalised.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub account: String,
    /// Dropbox path of the jail: "" for the whole Dropbox, else "/folder/sub".
    pub dropbox_root: String,
    /// Authorized keys with the restrictions of their options.
    pub keys: Vec<AuthorizedKey>,
    pub permissions: Permissions,
    /// Password login is possible only with one.
    pub password_hash: Option<StoredPasswordHash>,
}
