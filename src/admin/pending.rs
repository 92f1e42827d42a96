//! A Connect under way: what an admin's session remembers between sending the browser to
//! Dropbox and Dropbox sending it back (`connect` fills it in and takes it out; the session
//! only keeps it).

use std::time::Instant;

use crate::backend::dropbox::api::Secret;
use crate::config::AccountConfig;

/// The secrets and plan of one authorization attempt.
pub struct Pending {
    /// What Dropbox's answer must carry back.
    pub state: String,
    /// PKCE: only its challenge went to Dropbox.
    pub verifier: Secret,
    /// What will be connected (its `token_file` set).
    pub account: AccountConfig,
    /// Not declared in the config: its team settings go into its token file.
    pub new_account: bool,
    pub app_key: String,
    pub app_secret: Secret,
    pub redirect_uri: String,
    pub started: Instant,
}
