//! The admin web page: connect Dropbox accounts in a browser, see users, connections and
//! transfers as they happen.
//!
//! Off unless `[admin] listen` is set ([`settings`]).

pub mod settings;
