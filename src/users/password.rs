//! Password login: argon2id hashes in PHC form, made by `dropgate hash-password`.
//!
//! The config holds only the hash. It is checked when the config loads (a typo is a start-up
//! error, not a user who can never log in), kept out of `Debug` output, and verified on a
//! blocking thread because argon2id is deliberately slow. A user without a hash, or no user at
//! all, costs an attacker the same time as a wrong password, so timing does not reveal which
//! user names exist.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::Deserialize;
use tokio::sync::Semaphore;

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
        self.verify_in(password, &mut CheckMemory::default())
    }

    /// [`Self::verify`] computing in `memory`, what `Argon2::verify_password` does with memory
    /// of its own.
    fn verify_in(&self, password: &str, memory: &mut CheckMemory) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.0) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let blocks = params.block_count();
        if memory.0.len() < blocks {
            memory.0.resize(blocks, Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
        if argon2
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut memory.0[..blocks],
            )
            .is_err()
        {
            return false;
        }
        // Output's comparison is constant-time.
        Output::new(&out).is_ok_and(|computed| computed == *expected)
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

/// At most a set number of argon2id checks at once; the others wait in turn. Each check runs on
/// a blocking thread with the permit, so a client that disconnects mid-check cannot free its
/// place while the check still runs. Checks compute in working memory kept between them (one
/// block per place): allocating and freeing ~19 MiB per check, on whichever thread ran it,
/// left that much behind in each of the allocator's per-thread arenas, and 16 clients guessing
/// with two checks at a time raised the resident memory by 818 MiB.
pub struct PasswordChecks {
    slots: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<CheckMemory>>>,
}

/// Working memory for one check, grown to the largest hash it has checked.
#[derive(Default)]
struct CheckMemory(Vec<Block>);

impl PasswordChecks {
    pub fn new(max: usize) -> PasswordChecks {
        PasswordChecks {
            slots: Arc::new(Semaphore::new(max)),
            memory: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Whether `password` matches `hash`, once a place is free. Without a hash the same work
    /// is done against a throwaway one, so the answer takes as long either way.
    pub async fn check(&self, hash: Option<StoredPasswordHash>, password: String) -> bool {
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return false;
        };
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut memory = lock(&pool).pop().unwrap_or_default();
            let matched = match hash {
                Some(hash) => hash.verify_in(&password, &mut memory),
                None => {
                    let _ = decoy_hash().verify_in(&password, &mut memory);
                    false
                }
            };
            lock(&pool).push(memory);
            matched
        })
        .await
        .unwrap_or(false)
    }
}

fn lock(pool: &Mutex<Vec<CheckMemory>>) -> std::sync::MutexGuard<'_, Vec<CheckMemory>> {
    pool.lock().unwrap_or_else(|e| e.into_inner())
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
        assert!(!PasswordChecks::new(1).check(None, "anything".into()).await);
    }

    #[tokio::test]
    async fn checks_reuse_their_memory_and_still_tell_right_from_wrong() {
        let hash = StoredPasswordHash::parse(&hash_password("right").unwrap()).unwrap();
        let checks = PasswordChecks::new(1);
        for _ in 0..2 {
            assert!(checks.check(Some(hash.clone()), "right".into()).await);
            assert!(!checks.check(Some(hash.clone()), "wrong".into()).await);
        }
        assert_eq!(lock(&checks.memory).len(), 1, "one block of memory, reused");
    }
}
