//! Who may log in: the configured users and the certificate authorities trusted to vouch for
//! them, replaceable while the server runs (SIGHUP reload).
//!
//! A connection reads the current [`Logins`] when it needs them and keeps nothing from one
//! look-up to the next, except the [`User`] it logged in as: a session already running goes on
//! with the user it started with, and the next login sees the new users and keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use russh::keys::PublicKey;

use super::User;

/// One generation of users and trusted CAs.
#[derive(Debug, Default)]
pub struct Logins {
    pub users: HashMap<String, User>,
    /// CA keys whose user certificates are accepted (`[server] trusted_user_ca_keys`).
    pub trusted_user_cas: Vec<PublicKey>,
}

impl Logins {
    pub fn new(users: Vec<User>, trusted_user_cas: Vec<PublicKey>) -> Logins {
        Logins {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            trusted_user_cas,
        }
    }

    /// Password login is offered at all only if some user has a password.
    pub fn any_password(&self) -> bool {
        self.users.values().any(|u| u.password_hash.is_some())
    }
}

/// The current [`Logins`], swapped whole by a reload.
#[derive(Debug)]
pub struct Registry {
    current: RwLock<Arc<Logins>>,
}

impl Registry {
    pub fn new(logins: Logins) -> Registry {
        Registry {
            current: RwLock::new(Arc::new(logins)),
        }
    }

    pub fn current(&self) -> Arc<Logins> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn replace(&self, logins: Logins) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(logins);
    }
}
