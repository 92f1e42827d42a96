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

use std::net::IpAddr;

use authorized_keys::AuthorizedKey;
use networks::Networks;
use password::StoredPasswordHash;
use permissions::Permissions;
use serde::Deserialize;

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
    /// Where the user may log in from (their own list, else the server's default); None:
    /// from anywhere.
    pub allowed_networks: Option<Networks>,
    /// What SETSTAT does when asked to change a stored file's mtime; None: the server's
    /// `mtime_change`.
    pub mtime_change: Option<MtimeChange>,
}

impl User {
    /// Whether the user may log in from `ip`; the refusal says why, for the log and the audit
    /// line (never for the client, who is told no more than for a wrong key).
    pub fn check_address(&self, ip: IpAddr) -> Result<(), String> {
        match &self.allowed_networks {
            Some(networks) if !networks.contains(ip) => Err(format!(
                "address {} not in the user's allowed_networks",
                networks::canonical(ip)
            )),
            _ => Ok(()),
        }
    }
}

/// What a SETSTAT that would change a stored file's mtime gets, where the backend cannot
/// change it (Dropbox): `[server] mtime_change`, or the user's own. It is the user's policy,
/// not the backend's, since partners' clients differ: WinSCP sets the mtime after every
/// upload and reports a refusal as a failed transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtimeChange {
    /// SSH_FX_PERMISSION_DENIED with a message saying why.
    #[default]
    Reject,
    /// Answer OK and log it.
    Ignore,
}
