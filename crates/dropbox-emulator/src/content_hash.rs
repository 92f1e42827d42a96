//! Dropbox's `content_hash`, computed incrementally.
//!
//! Dropbox splits a file into 4,194,304-byte blocks, hashes each block with SHA-256, concatenates
//! the raw block digests and hashes that concatenation again; the result is lowercase hex. The
//! emulator computes it itself (instead of trusting a client) because it is what a client's own
//! hash is checked against. The hasher is incremental so uploads can be hashed while they stream
//! to disk.

use sha2::{Digest, Sha256};

/// Size of one content-hash block (4 MiB), fixed by Dropbox.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental content-hash computation: feed bytes in any chunking, then [`finish`](Self::finish).
#[derive(Default, Clone)]
pub struct ContentHasher {
    /// Hash of the block being filled.
    block: Sha256,
    /// Bytes already fed into `block`.
    block_len: usize,
    /// Hash over the digests of all completed blocks.
    overall: Sha256,
    /// The digests of the completed blocks, for [`ContentHasher::finish_with_blocks`].
    blocks: Vec<BlockDigest>,
}

/// The SHA-256 of one 4 MiB block.
pub type BlockDigest = [u8; 32];

impl ContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the content.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.block_len;
            let take = room.min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.overall.update(digest);
        self.blocks.push(digest.into());
        self.block_len = 0;
    }

    /// The content hash and the digest of every block: content that starts on a block
    /// boundary (a concurrent session's piece) can be joined into a larger one's hash by
    /// `content_hash_of_blocks` without reading it again.
    pub fn finish_with_blocks(mut self) -> (String, Vec<BlockDigest>) {
        if self.block_len > 0 {
            self.close_block();
        }
        let blocks = std::mem::take(&mut self.blocks);
        (hex::encode(self.overall.finalize()), blocks)
    }

    /// The lowercase-hex content hash of everything fed so far.
    pub fn finish(mut self) -> String {
        if self.block_len > 0 {
            self.close_block();
        }
        hex::encode(self.overall.finalize())
    }
}

/// The content hash of content made of these blocks, in order.
pub fn content_hash_of_blocks<'a>(blocks: impl IntoIterator<Item = &'a BlockDigest>) -> String {
    let mut overall = Sha256::new();
    for block in blocks {
        overall.update(block);
    }
    hex::encode(overall.finalize())
}

/// Content hash of a whole in-memory buffer.
pub fn content_hash(data: &[u8]) -> String {
    let mut hasher = ContentHasher::new();
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn empty_content_is_sha256_of_nothing() {
        assert_eq!(
            content_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn small_content_is_hash_of_one_block_digest() {
        let expected = sha256_hex(&Sha256::digest(b"hello"));
        assert_eq!(content_hash(b"hello"), expected);
    }

    #[test]
    fn two_blocks_hash_the_concatenated_block_digests() {
        let data: Vec<u8> = (0..BLOCK_SIZE + 10).map(|i| (i % 251) as u8).collect();
        let mut digests = Vec::new();
        digests.extend_from_slice(&Sha256::digest(&data[..BLOCK_SIZE]));
        digests.extend_from_slice(&Sha256::digest(&data[BLOCK_SIZE..]));
        assert_eq!(content_hash(&data), sha256_hex(&digests));
    }

    #[test]
    fn chunking_does_not_change_the_hash() {
        let data: Vec<u8> = (0..BLOCK_SIZE * 2).map(|i| (i % 7) as u8).collect();
        let mut hasher = ContentHasher::new();
        for chunk in data.chunks(1_000_003) {
            hasher.update(chunk);
        }
        assert_eq!(hasher.finish(), content_hash(&data));
        // An exact multiple of the block size has no trailing empty block.
        let one_block = &data[..BLOCK_SIZE];
        assert_eq!(
            content_hash(one_block),
            sha256_hex(&Sha256::digest(one_block))
        );
    }

    #[test]
    fn pieces_on_block_boundaries_join_into_the_whole_hash() {
        let data: Vec<u8> = (0..BLOCK_SIZE * 3 + 1234)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut blocks = Vec::new();
        for piece in [&data[..BLOCK_SIZE * 2], &data[BLOCK_SIZE * 2..]] {
            let mut hasher = ContentHasher::new();
            hasher.update(piece);
            let (piece_hash, piece_blocks) = hasher.finish_with_blocks();
            assert_eq!(piece_hash, content_hash(piece));
            blocks.extend(piece_blocks);
        }
        assert_eq!(blocks.len(), 4);
        assert_eq!(content_hash_of_blocks(&blocks), content_hash(&data));
        // Joined in another order, the hash is another's.
        blocks.swap(0, 1);
        assert_ne!(content_hash_of_blocks(&blocks), content_hash(&data));
    }
}
