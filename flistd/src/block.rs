//! One block of file content: compressed, encrypted with the hash of its plaintext, addressed by the
//! hash of its ciphertext (rfs's `BlockStore`).

use crate::FlistError;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use sha2::Sha256;

/// The largest block rfs's packer cuts (it cuts wherever a read returns, so blocks may be smaller).
pub const BLOCK_SIZE: usize = 512 * 1024;

type Blake2b256 = Blake2b<U32>;

/// A block's address and key, as the `block` table stores them (32 raw bytes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// `blake2b-256(ciphertext)`: the key in the store.
    pub id: [u8; 32],
    /// `blake2b-256(plaintext)` (sha256 in older flists): the AES-256-GCM key.
    pub key: [u8; 32],
}

impl Block {
    /// The id in hex, as stores name blocks.
    pub fn hex_id(&self) -> String {
        hex::encode(self.id)
    }
}

fn blake2b(bytes: &[u8]) -> [u8; 32] {
    Blake2b256::digest(bytes).into()
}

/// Encodes a chunk: the block to record and the ciphertext to store.
pub fn seal(plain: &[u8]) -> Result<(Block, Vec<u8>), FlistError> {
    let key = blake2b(plain);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(plain)
        .map_err(|err| FlistError::Block { id: String::new(), why: format!("compression failed: {err}") })?;
    let cipher = Aes256Gcm::new_from_slice(&key)
        .map_err(|_| FlistError::Block { id: String::new(), why: "invalid key".into() })?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&key[..12]), compressed.as_slice())
        .map_err(|_| FlistError::Block { id: String::new(), why: "encryption failed".into() })?;
    Ok((Block { id: blake2b(&sealed), key }, sealed))
}

/// Whether `sealed` is the ciphertext block `id` names (blake2b-256, or sha256 for older flists): what
/// can be checked of a block without its key, before it is kept.
pub fn matches_id(id: &[u8; 32], sealed: &[u8]) -> bool {
    blake2b(sealed) == *id || <[u8; 32]>::from(Sha256::digest(sealed)) == *id
}

/// Decodes a block fetched from a store, and verifies it: the ciphertext must hash to the id, and the
/// plaintext to the key (blake2b-256, or sha256 for flists made by older rfs versions). A block that
/// fails is an error, never data.
pub fn open(block: &Block, sealed: &[u8]) -> Result<Vec<u8>, FlistError> {
    let fail = |why: &str| FlistError::Block { id: block.hex_id(), why: why.into() };
    if !matches_id(&block.id, sealed) {
        return Err(fail("content does not match its id"));
    }
    let cipher = Aes256Gcm::new_from_slice(&block.key).map_err(|_| fail("invalid key"))?;
    let compressed =
        cipher.decrypt(Nonce::from_slice(&block.key[..12]), sealed).map_err(|_| fail("decryption failed"))?;
    let plain = snap::raw::Decoder::new().decompress_vec(&compressed).map_err(|_| fail("not snappy data"))?;
    if blake2b(&plain) != block.key && <[u8; 32]>::from(Sha256::digest(&plain)) != block.key {
        return Err(fail("plaintext does not match its key"));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blocks_open_and_tampering_fails() {
        let plain = b"some random data to store".repeat(100);
        let (block, sealed) = seal(&plain).expect("seal");
        assert_eq!(block.key, blake2b(&plain));
        assert_eq!(block.id, blake2b(&sealed));
        assert_eq!(open(&block, &sealed).expect("open"), plain);
        let mut corrupted = sealed.clone();
        corrupted[10] ^= 1;
        assert!(open(&block, &corrupted).is_err(), "a corrupted block is an error");
        let other = Block { key: [7; 32], ..block };
        assert!(open(&other, &sealed).is_err(), "a wrong key is an error");
    }

    /// Older rfs versions keyed and addressed blocks with sha256: they are read too.
    #[test]
    fn sha256_blocks_of_older_flists_open() {
        let plain = b"an old flist's block".to_vec();
        let key: [u8; 32] = Sha256::digest(&plain).into();
        let compressed = snap::raw::Encoder::new().compress_vec(&plain).expect("compress");
        let sealed = Aes256Gcm::new_from_slice(&key)
            .expect("key")
            .encrypt(Nonce::from_slice(&key[..12]), compressed.as_slice())
            .expect("encrypt");
        let block = Block { id: Sha256::digest(&sealed).into(), key };
        assert_eq!(open(&block, &sealed).expect("open"), plain);
    }
}
