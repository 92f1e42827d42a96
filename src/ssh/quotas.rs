//! Per-user caps that span connections: SFTP sessions running, and handles open.
//!
//! A connection's own caps (channels, handles per session) do not stop one user from opening
//! many connections, each with many sessions, each holding spool files. These caps follow the
//! user instead. Each is a semaphore: a session holds its permit while it runs, a handle while
//! its task lives, so nothing can leak a count when a session ends in any way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::sftp::HandleQuota;

/// Every user's quotas, created at their first session.
pub struct UserQuotas {
    max_sessions: usize,
    max_handles: usize,
    by_user: Mutex<HashMap<String, UserQuota>>,
}

/// One user's quotas, shared by all their sessions.
#[derive(Clone)]
pub struct UserQuota {
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    pub handles: HandleQuota,
}

impl UserQuotas {
    pub fn new(limits: &LimitsConfig) -> Arc<UserQuotas> {
        Arc::new(UserQuotas {
            max_sessions: limits.max_sftp_sessions_per_user,
            max_handles: limits.max_handles_per_user,
            by_user: Mutex::new(HashMap::new()),
        })
    }

    /// Only users who logged in get an entry: the table is as small as the user list.
    pub fn for_user(&self, name: &str) -> UserQuota {
        let mut by_user = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        by_user
            .entry(name.to_string())
            .or_insert_with(|| UserQuota {
                sessions: Arc::new(Semaphore::new(self.max_sessions)),
                max_sessions: self.max_sessions,
                handles: HandleQuota::new(self.max_handles),
            })
            .clone()
    }
}

impl UserQuota {
    /// A place for one more SFTP session, held while it runs; or why there is none.
    pub fn start_session(&self) -> Result<OwnedSemaphorePermit, String> {
        self.sessions.clone().try_acquire_owned().map_err(|_| {
            format!(
                "too many SFTP sessions for this user (the limit is {}, \
                 limits.max_sftp_sessions_per_user); end some first",
                self.max_sessions
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_per_user_and_given_back() {
        let quotas = UserQuotas::new(&LimitsConfig {
            max_sftp_sessions_per_user: 1,
            ..LimitsConfig::default()
        });
        let first = quotas.for_user("alice").start_session().unwrap();
        let refused = quotas.for_user("alice").start_session().unwrap_err();
        assert!(refused.contains("too many SFTP sessions"), "{refused}");
        assert!(quotas.for_user("bob").start_session().is_ok());
        drop(first);
        assert!(quotas.for_user("alice").start_session().is_ok());
    }
}
