//! Who is signed in: server-side sessions behind a random cookie, each with its CSRF token.
//!
//! The cookie holds only a random id (32 bytes); what it stands for (the admin, the CSRF token,
//! a Dropbox authorization under way, a message for the next page) stays in this process, so
//! signing out or a restart ends every session, and nothing in the browser can be edited into
//! more rights. The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site
//! can make the browser send it) and `Secure` under TLS. Sessions end after an idle time, and
//! the table is bounded: past [`MAX_SESSIONS`] the least recently used one is dropped, so
//! signing in again and again cannot grow it.
//!
//! Before sign-in there is no session at all: the sign-in form is protected by a double-submit
//! token (the same random value in a cookie and in the form), so a flood of visitors to the
//! sign-in page costs no memory here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::pending::Pending;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "dropgate_admin";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "dropgate_login";
/// Signed-in sessions kept at most.
pub const MAX_SESSIONS: usize = 256;

/// One signed-in admin's session.
pub struct Session {
    pub admin: String,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf: String,
    /// The Dropbox authorization this admin started and Dropbox has not sent back yet.
    pub pending: Option<Pending>,
    /// A message for the next page shown (`true` for good news).
    pub flash: Option<(bool, String)>,
    last_seen: Instant,
}

/// Every session of one admin server.
pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// A new session for `admin`; returns its id (for the cookie).
    pub fn create(&self, admin: &str) -> String {
        let id = random_token();
        let mut table = self.lock();
        let now = Instant::now();
        table.retain(|_, session| now.duration_since(session.last_seen) < self.idle);
        if table.len() >= MAX_SESSIONS {
            let oldest = table
                .iter()
                .min_by_key(|(_, session)| session.last_seen)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        table.insert(
            id.clone(),
            Session {
                admin: admin.to_string(),
                csrf: random_token(),
                pending: None,
                flash: None,
                last_seen: now,
            },
        );
        id
    }

    /// Runs `act` on the live session `id` (and marks it used); None when there is no such
    /// session or it has been idle too long (it is then removed).
    pub fn with<R>(&self, id: &str, act: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let mut table = self.lock();
        let now = Instant::now();
        let session = table.get_mut(id)?;
        if now.duration_since(session.last_seen) >= self.idle {
            table.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(act(session))
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 32 random bytes, base64url: a session id, a CSRF token.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Whether a token sent back equals the one expected, in time that does not depend on where
/// they differ. An empty expected token never matches.
pub fn same_token(expected: &str, sent: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(sent.as_bytes()))
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site, Secure under TLS.
/// `max_age` 0 deletes the cookie; None makes it last until the browser closes.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(secs) = max_age {
        text.push_str(&format!("; Max-Age={secs}"));
    }
    HeaderValue::from_str(&text).expect("cookie names and base64url values are header-safe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_are_bounded() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let id = sessions.create("admin");
        assert_eq!(
            sessions.with(&id, |s| s.admin.clone()).as_deref(),
            Some("admin")
        );
        assert!(sessions.with("not-an-id", |_| ()).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.with(&id, |_| ()).is_none(), "idle too long");

        let sessions = Sessions::new(Duration::from_secs(60));
        let first = sessions.create("a");
        for _ in 0..MAX_SESSIONS {
            sessions.create("b");
        }
        assert!(sessions.with(&first, |_| ()).is_none(), "the oldest went");
        assert!(sessions.lock().len() <= MAX_SESSIONS);
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let a = sessions.create("x");
        let b = sessions.create("x");
        let token = |id: &str| sessions.with(id, |s| s.csrf.clone()).unwrap();
        assert_ne!(token(&a), token(&b));
        assert!(same_token(&token(&a), &token(&a)));
        assert!(!same_token(&token(&a), &token(&b)));
        assert!(!same_token("", ""), "no expected token, no match");
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("a=1; dropgate_admin=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", true, None);
        let set = set.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("n", "v", false, Some(0))
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
