//! Keeping secrets out of logs, Debug output and error messages.
//!
//! [`Secret`] wraps tokens and app secrets so `{:?}` can never print them; [`scrub`] removes
//! what might be a credential from text that came from elsewhere (server messages, transport
//! errors, proxy URLs) before it goes into an error or a log line.

use std::fmt;

/// A string that is never shown: its Debug prints `[redacted]` and it has no Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Removes `Bearer <token>` values and `user:password@` parts of URLs from `text`.
pub fn scrub(text: &str) -> String {
    scrub_url_userinfo(&scrub_bearer(text))
}

/// `Bearer abc.def` → `Bearer [redacted]` (Dropbox echoes a malformed Authorization header).
fn scrub_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Bearer ") {
        let after = at + "Bearer ".len();
        out.push_str(&rest[..after]);
        let token_len = rest[after..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(rest.len() - after);
        if token_len > 0 {
            out.push_str("[redacted]");
        }
        rest = &rest[after + token_len..];
    }
    out.push_str(rest);
    out
}

/// `https://user:pass@proxy:3128` → `https://***@proxy:3128`.
fn scrub_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = at + 3;
        out.push_str(&rest[..after]);
        let authority_len = rest[after..]
            .find(|c: char| c == '/' || c.is_whitespace() || c == ')' || c == '"')
            .unwrap_or(rest.len() - after);
        let authority = &rest[after..after + authority_len];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[after + authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("sl.ABCDEF");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "sl.ABCDEF");
    }

    #[test]
    fn scrubs_bearer_tokens_and_url_credentials() {
        let text =
            r#"bad header "Authorization": "Bearer sl.ABC-def_1". Expecting "Bearer <token>""#;
        let clean = scrub(text);
        assert!(!clean.contains("sl.ABC"), "{clean}");
        assert!(clean.contains("Bearer [redacted]"));

        let text = "error connecting to proxy (http://bob:hunter2@proxy.local:3128/) failed";
        let clean = scrub(text);
        assert_eq!(
            clean,
            "error connecting to proxy (http://***@proxy.local:3128/) failed"
        );
        assert_eq!(
            scrub("https://api.dropboxapi.com/2/x"),
            "https://api.dropboxapi.com/2/x"
        );
    }
}
