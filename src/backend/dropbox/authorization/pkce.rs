//! PKCE (RFC 7636) and the `state` value of one authorization attempt.
//!
//! The verifier stays in this process; only its S256 challenge goes into the authorize URL, so
//! a code caught by someone else (a browser extension, a log) cannot be exchanged without it.
//! `state` ties the redirect to this attempt: a redirect carrying another state is ignored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::backend::dropbox::api::Secret;

/// The secrets of one authorization attempt.
pub struct Attempt {
    /// 86 characters of base64url: within RFC 7636's 43–128 unreserved characters.
    pub verifier: Secret,
    /// base64url(SHA-256(verifier)).
    pub challenge: String,
    pub state: String,
}

impl Attempt {
    pub fn new() -> Attempt {
        let verifier = random_text(64);
        Attempt {
            challenge: challenge_for(&verifier),
            verifier: Secret::new(verifier),
            state: random_text(24),
        }
    }
}

impl Default for Attempt {
    fn default() -> Self {
        Self::new()
    }
}

fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_example() {
        // Appendix B of RFC 7636.
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn attempts_differ_and_fit_the_rules() {
        let (a, b) = (Attempt::new(), Attempt::new());
        assert_ne!(a.state, b.state);
        let verifier = a.verifier.expose();
        assert!((43..=128).contains(&verifier.len()));
        assert!(verifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(a.challenge, challenge_for(verifier));
    }
}
