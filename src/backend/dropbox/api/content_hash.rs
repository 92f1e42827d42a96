//! Dropbox's `content_hash`: how we prove that Dropbox stored exactly the bytes we sent.
//!
//! The bytes are split into 4,194,304-byte blocks; each block is hashed with SHA-256, the raw
//! digests are concatenated and hashed again with SHA-256; the result is written in lowercase hex.
//! [`ContentHasher`] does this incrementally so an upload can be hashed while it streams,
//! whatever sizes its pieces come in.

use sha2::{Digest, Sha256};

/// The block size of the Dropbox content hash (4 MiB).
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental Dropbox content hash.
#[derive(Clone, Default)]
pub struct ContentHasher {
    /// Hash over the concatenated block digests.
    overall: Sha256,
    /// Hash of the block being filled.
    block: Sha256,
    /// Bytes already in the current block.
    block_len: usize,
}

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; piece sizes do not affect the result.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(bytes.len());
            self.block.update(&bytes[..take]);
            self.block_len += take;
            bytes = &bytes[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    /// Finishes the hash and returns it as 64 lowercase hex digits.
    pub fn finish(mut self) -> String {
        // A partial last block counts; an empty one does not (so empty input hashes nothing).
        if self.block_len > 0 {
            self.close_block();
        }
        hex::encode(self.overall.finalize())
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.overall.update(digest);
        self.block_len = 0;
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("block_len", &self.block_len)
            .finish_non_exhaustive()
    }
}

/// The Dropbox content hash of `bytes` in one call.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hasher = ContentHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Deterministic, non-repeating-per-block test data.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn empty_input_is_sha256_of_nothing() {
        assert_eq!(
            content_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn small_input_is_hash_of_one_block_digest() {
        let block_digest = Sha256::digest(b"hello");
        assert_eq!(content_hash(b"hello"), sha256_hex(&block_digest));
    }

    #[test]
    fn exactly_one_block_has_no_trailing_empty_block() {
        let bytes = data(BLOCK_SIZE);
        let block_digest = Sha256::digest(&bytes);
        assert_eq!(content_hash(&bytes), sha256_hex(&block_digest));
    }

    #[test]
    fn spanning_blocks_matches_definition_and_irregular_updates() {
        let bytes = data(2 * BLOCK_SIZE + 12345);
        let mut digests = Vec::new();
        for block in bytes.chunks(BLOCK_SIZE) {
            digests.extend_from_slice(&Sha256::digest(block));
        }
        let expected = sha256_hex(&digests);
        assert_eq!(content_hash(&bytes), expected);

        let mut hasher = ContentHasher::new();
        let mut rest = &bytes[..];
        for size in [1usize, 4_194_303, 2, 7_000_000, 0, 65_536].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let take = (*size).min(rest.len());
            hasher.update(&rest[..take]);
            rest = &rest[take..];
        }
        assert_eq!(hasher.finish(), expected);
    }
}
