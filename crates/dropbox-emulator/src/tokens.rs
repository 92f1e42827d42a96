//! Access tokens, refresh tokens and authorization codes.
//!
//! Static tokens and refresh tokens come from `accounts.json`; `/oauth2/token` issues access
//! tokens that expire after the file's `access_token_ttl_secs` (kept in memory: a restart
//! invalidates them, which a client must survive anyway by refreshing) and refresh tokens from
//! the code flow (kept on disk, so `dropgate auth` output stays usable across restarts).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::accounts::{AccountsFile, Grant, Subject};
use super::disk::{self, random_token, Layout};

/// What a bearer token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Subject),
    Expired,
    Unknown,
}

/// A refresh token and what it may be exchanged for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    #[serde(flatten)]
    pub grant: Grant,
    /// Issued through PKCE: the client may refresh without its secret.
    #[serde(default)]
    pub public_client: bool,
}

/// An authorization code waiting for its exchange.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub app_key: String,
    pub subject: Subject,
    pub redirect_uri: Option<String>,
    /// (code_challenge, method) when PKCE was used.
    pub challenge: Option<(String, String)>,
    /// `token_access_type=offline`: the exchange also issues a refresh token.
    pub offline: bool,
    pub created: Instant,
}

/// How long an authorization code stays valid.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

struct IssuedAccess {
    subject: Subject,
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    statics: HashMap<String, Subject>,
    refresh: HashMap<String, RefreshGrant>,
    issued_refresh: Vec<RefreshGrant>,
    access: HashMap<String, IssuedAccess>,
    codes: HashMap<String, PendingCode>,
}

/// Every token the emulator knows.
pub struct Tokens {
    state: Mutex<State>,
    ttl: Duration,
    layout: Layout,
}

impl Tokens {
    pub fn load(accounts: &AccountsFile, layout: &Layout) -> anyhow::Result<Tokens> {
        let mut state = State::default();
        for grant in &accounts.static_access_tokens {
            state.statics.insert(grant.token.clone(), grant.subject()?);
        }
        for grant in &accounts.refresh_tokens {
            let refresh = RefreshGrant {
                grant: grant.clone(),
                public_client: false,
            };
            state.refresh.insert(grant.token.clone(), refresh);
        }
        let issued_path = layout.issued_refresh_tokens();
        if issued_path.exists() {
            let issued: Vec<RefreshGrant> =
                serde_json::from_str(&std::fs::read_to_string(&issued_path)?)?;
            for refresh in &issued {
                state
                    .refresh
                    .insert(refresh.grant.token.clone(), refresh.clone());
            }
            state.issued_refresh = issued;
        }
        Ok(Tokens {
            state: Mutex::new(state),
            ttl: Duration::from_secs(accounts.access_token_ttl_secs),
            layout: layout.clone(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn check_access(&self, token: &str) -> TokenCheck {
        let state = self.state();
        if let Some(subject) = state.statics.get(token) {
            return TokenCheck::Valid(subject.clone());
        }
        match state.access.get(token) {
            Some(issued) if Instant::now() < issued.expires_at => {
                TokenCheck::Valid(issued.subject.clone())
            }
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    /// Issues a new expiring access token.
    pub fn issue_access(&self, subject: Subject) -> String {
        let token = format!("sl.emu.{}", random_token(32));
        let issued = IssuedAccess {
            subject,
            expires_at: Instant::now() + self.ttl,
        };
        self.state().access.insert(token.clone(), issued);
        token
    }

    /// Makes every issued (non-static) access token expired (test hook).
    pub fn expire_all(&self) {
        let now = Instant::now();
        for issued in self.state().access.values_mut() {
            issued.expires_at = now;
        }
    }

    pub fn refresh_grant(&self, token: &str) -> Option<RefreshGrant> {
        self.state().refresh.get(token).cloned()
    }

    /// Issues and persists a refresh token.
    pub fn issue_refresh(
        &self,
        app_key: &str,
        subject: &Subject,
        public_client: bool,
    ) -> std::io::Result<String> {
        let token = format!("emu-refresh-{}", random_token(32));
        let (account_id, team_id) = match subject {
            Subject::Account(id) => (Some(id.clone()), None),
            Subject::Team(id) => (None, Some(id.clone())),
        };
        let refresh = RefreshGrant {
            grant: Grant {
                token: token.clone(),
                app_key: Some(app_key.to_string()),
                account_id,
                team_id,
            },
            public_client,
        };
        let mut state = self.state();
        state.issued_refresh.push(refresh.clone());
        let json =
            serde_json::to_vec_pretty(&state.issued_refresh).map_err(std::io::Error::other)?;
        disk::write_atomically(&self.layout.issued_refresh_tokens(), &json)?;
        state.refresh.insert(token.clone(), refresh);
        Ok(token)
    }

    pub fn add_code(&self, pending: PendingCode) -> String {
        let code = format!("emu-code-{}", random_token(24));
        self.state().codes.insert(code.clone(), pending);
        code
    }

    /// Takes a code out (codes are single-use); `None` when unknown or too old.
    pub fn take_code(&self, code: &str) -> Option<PendingCode> {
        let pending = self.state().codes.remove(code)?;
        (pending.created.elapsed() < CODE_LIFETIME).then_some(pending)
    }
}
