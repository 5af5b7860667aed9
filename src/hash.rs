//! SHA-256 of token secrets, compared in constant time.
//!
//! Tokens carry 128–512 bits from the operating system's CSPRNG, so a fast unsalted hash is
//! the right tool: there is nothing to brute-force, and verification stays one SHA-256. What
//! matters is that the store never holds a usable secret, and that comparing hashes does not
//! leak through timing how much of a guess was right.

use std::fmt;

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::limits::{HASH_BYTES, MAX_SECRET_BYTES};

/// SHA-256 of a token's secret: all that a store keeps of it.
///
/// Equality is constant-time over the fixed 32 bytes. `Debug` shows only the first four bytes,
/// and the type deliberately does not implement `Serialize`: a hash is never published.
///
/// ```
/// use api_tokens::TokenHash;
///
/// let a = TokenHash::of_secret(b"correct horse battery staple");
/// let b = TokenHash::of_secret(b"correct horse battery staple");
/// assert!(a.ct_eq(&b));
/// assert!(!a.ct_eq(&TokenHash::of_secret(b"Tr0ub4dor&3")));
/// ```
#[derive(Clone, Copy)]
pub struct TokenHash([u8; HASH_BYTES]);

impl TokenHash {
    /// SHA-256 of `secret`.
    ///
    /// The hasher buffers the secret; it is used only by reference and dropped where it
    /// was made, so its zeroize-on-drop wipes the only copy (a moved hasher would leave its
    /// old bytes behind).
    pub fn of_secret(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(secret);
        Self(hasher.finalize_reset().into())
    }

    /// A hash from its 32 stored bytes (for store implementations).
    pub const fn from_bytes(bytes: [u8; HASH_BYTES]) -> Self {
        Self(bytes)
    }

    /// A hash from stored bytes of unknown length; `None` unless there are exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The 32 bytes (for store implementations).
    pub const fn as_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.0
    }

    /// Constant-time equality over the fixed 32 bytes.
    ///
    /// The four 64-bit words' differences are OR-ed together without a branch and the
    /// result tested with `subtle` (the same guarantee as byte by byte, with one
    /// optimisation barrier instead of 32).
    pub fn ct_eq(&self, other: &Self) -> bool {
        // The words' differences folded without a branch, then one constant-time test.
        let (a, b) = (words(&self.0), words(&other.0));
        let diff = a.iter().zip(&b).fold(0u64, |d, (x, y)| d | (x ^ y));
        diff.ct_eq(&0).into()
    }

    /// A fixed hash that no secret is expected to produce. Verification compares against it
    /// when a token id is unknown, so an unknown id costs the same work as a wrong secret.
    pub(crate) const DUMMY: Self = Self([0x5a; HASH_BYTES]);
}

/// The 32 bytes as four native-endian words.
fn words(bytes: &[u8; HASH_BYTES]) -> [u64; HASH_BYTES / 8] {
    std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(word)
    })
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A secret being verified, decoded straight into SHA-256's padded message: the one copy of
/// it, wiped on drop. Hashing it is one call of the compression function on one block (two
/// for secrets over 55 bytes), with no hasher state or buffer to copy the secret into.
pub(crate) struct SecretMessage {
    blocks: [[u8; 64]; 2],
    len: usize,
}

impl Drop for SecretMessage {
    /// Wipes the secret's bytes (the padding after them is public).
    fn drop(&mut self) {
        self.blocks.as_flattened_mut()[..self.len].zeroize();
    }
}

impl SecretMessage {
    /// Room for a secret of `len` bytes (at most [`MAX_SECRET_BYTES`]; a format's length
    /// always is).
    pub(crate) fn new(len: usize) -> Self {
        Self {
            blocks: [[0; 64]; 2],
            len: len.min(MAX_SECRET_BYTES),
        }
    }

    /// Where the secret's bytes go.
    pub(crate) fn secret_mut(&mut self) -> &mut [u8] {
        &mut self.blocks.as_flattened_mut()[..self.len]
    }

    /// SHA-256 of the secret.
    pub(crate) fn hash(&mut self) -> TokenHash {
        let len = self.len;
        let blocks = if len <= 55 { 1 } else { 2 };
        let message = self.blocks.as_flattened_mut();
        // Padding: a 1 bit, zeros (the blocks start zeroed, and only the secret's bytes are
        // ever lent out), and the length in bits, big-endian, at the very end.
        message[len] = 0x80;
        message[blocks * 64 - 8..blocks * 64].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        let mut state = SHA256_INITIAL;
        compress256(&mut state, &self.blocks[..blocks]);
        let mut out = [0u8; HASH_BYTES];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        TokenHash(out)
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for TokenHash {}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_sha256_test_vector() {
        // FIPS 180-2, "abc".
        assert_eq!(
            hex::encode(TokenHash::of_secret(b"abc").as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_one_block_hash_agrees_with_sha2_at_every_secret_length() {
        for len in 0..=MAX_SECRET_BYTES {
            let secret: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let mut message = SecretMessage::new(len);
            message.secret_mut().copy_from_slice(&secret);
            assert_eq!(
                message.hash().as_bytes(),
                TokenHash::of_secret(&secret).as_bytes(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn equality_looks_at_every_byte() {
        let a = TokenHash::of_secret(b"a");
        for i in 0..HASH_BYTES {
            let mut other = *a.as_bytes();
            other[i] ^= 1;
            assert!(!a.ct_eq(&TokenHash::from_bytes(other)), "byte {i}");
        }
        assert!(a.ct_eq(&TokenHash::from_bytes(*a.as_bytes())));
    }

    #[test]
    fn from_slice_needs_exactly_32_bytes() {
        assert!(TokenHash::from_slice(&[0; 31]).is_none());
        assert!(TokenHash::from_slice(&[0; 33]).is_none());
        assert!(TokenHash::from_slice(&[0; 32]).is_some());
    }

    #[test]
    fn debug_is_short() {
        let h = TokenHash::of_secret(b"x");
        assert!(format!("{h:?}").len() < 24);
    }
}
