//! Password login: argon2id hashes in PHC form, made by `dropgate hash-password`.
//!
//! The config holds only the hash. It is checked when the config loads (a typo is a start-up
//! error, not a user who can never log in), kept out of `Debug` output, and verified on a
//! blocking thread because argon2id is deliberately slow. A user without a hash, or no user at
//! all, costs an attacker the same time as a wrong password, so timing does not reveal which
//! user names exist.

use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use serde::Deserialize;

/// A user's argon2id hash as written in the config (`$argon2id$v=19$m=...,t=...,p=...$...`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct StoredPasswordHash(Arc<str>);

impl StoredPasswordHash {
    /// Accepts an argon2id PHC string; anything else gets a message saying how to make one.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let how = "make one with `dropgate hash-password`";
        let parsed = PasswordHash::new(text)
            .map_err(|e| anyhow::anyhow!("not a PHC password hash ({e}); {how}"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            anyhow::bail!(
                "the hash uses {}, only argon2id is accepted; {how}",
                parsed.algorithm
            );
        }
        Ok(StoredPasswordHash(text.into()))
    }

    /// Whether `password` matches. Slow on purpose: call from a blocking thread.
    pub fn verify(&self, password: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), &*self.0)
            .is_ok()
    }
}

impl TryFrom<String> for StoredPasswordHash {
    type Error = anyhow::Error;

    fn try_from(text: String) -> anyhow::Result<Self> {
        StoredPasswordHash::parse(&text)
    }
}

impl fmt::Debug for StoredPasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<password hash>")
    }
}

/// A new argon2id hash (random salt, the crate's recommended parameters) in PHC form.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Checks `password` against `hash` on a blocking thread, holding `permit` (a place among the
/// checks allowed at once) until the check is done, even if the caller stops waiting. Without
/// a hash the same work is done against a throwaway one, so the answer takes as long either
/// way.
pub async fn check_password(
    hash: Option<StoredPasswordHash>,
    password: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> bool {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match hash {
            Some(hash) => hash.verify(&password),
            None => {
                let _ = decoy_hash().verify(&password);
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A hash no password is known for, made once.
fn decoy_hash() -> &'static StoredPasswordHash {
    static DECOY: OnceLock<StoredPasswordHash> = OnceLock::new();
    DECOY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        let text = hash_password(&hex::encode(random)).expect("hashing a random string");
        StoredPasswordHash::parse(&text).expect("our own hash parses")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let text = hash_password("correct horse").unwrap();
        assert!(text.starts_with("$argon2id$"), "{text}");
        let hash = StoredPasswordHash::parse(&text).unwrap();
        assert!(hash.verify("correct horse"));
        assert!(!hash.verify("wrong horse"));
        assert_eq!(format!("{hash:?}"), "<password hash>");
    }

    #[test]
    fn only_argon2id_hashes_are_accepted() {
        let err = StoredPasswordHash::parse("hunter2").unwrap_err();
        assert!(err.to_string().contains("hash-password"), "{err}");
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$Aq6F8gl2aD4rU1zKu4M1pQ";
        let err = StoredPasswordHash::parse(argon2i).unwrap_err();
        assert!(err.to_string().contains("only argon2id"), "{err}");
    }

    #[tokio::test]
    async fn no_hash_never_matches() {
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .unwrap();
        assert!(!check_password(None, "anything".into(), permit).await);
    }
}
