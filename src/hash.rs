//! SHA-256 of token secrets, compared in constant time.
//!
//! Tokens carry 128–512 bits from the operating system's CSPRNG, so a fast unsalted hash is
//! the right tool: there is nothing to brute-force, and verification stays one SHA-256. What
//! matters is that the store never holds a usable secret, and that comparing hashes does not
//! leak through timing how much of a guess was right.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::limits::HASH_BYTES;

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
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// A fixed hash that no secret is expected to produce. Verification compares against it
    /// when a token id is unknown, so an unknown id costs the same work as a wrong secret.
    pub(crate) const DUMMY: Self = Self([0x5a; HASH_BYTES]);
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
