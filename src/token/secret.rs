//! The two forms a secret takes in memory: a parsed [`Token`] being verified, and the
//! [`PlaintextToken`] handed out once. Both are redacted in `Debug` and wiped on drop.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::TokenId;
use crate::hash::TokenHash;
use crate::limits::MAX_SECRET_BYTES;

/// The secret part of a parsed token; wiped from memory when dropped.
pub(crate) struct SecretBytes {
    pub(crate) buf: [u8; MAX_SECRET_BYTES],
    pub(crate) len: usize,
}

impl SecretBytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // Only the first `len` bytes were ever written.
        self.buf[..self.len].zeroize();
    }
}

/// A token presented by a client, parsed and checksum-checked but not yet verified.
///
/// Obtained from [`TokenFormat::parse`](crate::TokenFormat::parse). It holds the public
/// [`TokenId`] and the secret; the secret never shows in `Debug`, and is wiped from memory
/// on drop.
///
/// ```
/// use api_tokens::TokenFormat;
///
/// let format = TokenFormat::new("dz")?;
/// let err = format.parse("dz_not_a_token").unwrap_err();
/// assert!(!err.to_string().contains("not_a_token"));
/// # Ok::<(), api_tokens::ConfigError>(())
/// ```
pub struct Token {
    pub(crate) id: TokenId,
    pub(crate) secret: SecretBytes,
}

impl Token {
    /// The public id, used to find the token's record.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// SHA-256 of the secret: what a store keeps and what verification compares.
    pub fn secret_hash(&self) -> TokenHash {
        TokenHash::of_secret(self.secret.as_slice())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A token's plaintext, returned exactly once when it is issued.
///
/// `Debug` and `Display` show only the display prefix; reading the whole token takes an
/// explicit [`expose_secret`](Self::expose_secret). The memory is wiped on drop.
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "deploy-script")).await?;
/// let shown = format!("{:?} {}", issued.plaintext, issued.plaintext);
/// assert!(!shown.contains(issued.plaintext.expose_secret()));
/// assert!(issued.plaintext.expose_secret().starts_with("dz_"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct PlaintextToken {
    pub(crate) text: Zeroizing<String>,
    pub(crate) display_len: usize,
}

impl PlaintextToken {
    /// The whole token, to hand to the user once. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The display prefix (`dz_1a2b3c4d`), safe to show anywhere.
    pub fn display_prefix(&self) -> &str {
        &self.text[..self.display_len]
    }
}

impl fmt::Debug for PlaintextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlaintextToken({}…[redacted])", self.display_prefix())
    }
}

impl fmt::Display for PlaintextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…[redacted]", self.display_prefix())
    }
}
