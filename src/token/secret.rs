//! A parsed [`Token`] being verified (its id and the hash of its secret, never the secret),
//! and the [`PlaintextToken`] handed out once (redacted in `Debug`, wiped on drop).

use std::fmt;

use zeroize::Zeroizing;

use super::TokenId;
use crate::hash::TokenHash;

/// A token presented by a client, parsed and checksum-checked but not yet verified.
///
/// Obtained from [`TokenFormat::parse`](crate::TokenFormat::parse). It holds the public
/// [`TokenId`] and the SHA-256 of the secret, never the secret itself: parsing decodes the
/// secret into one buffer that it wipes before returning, so no copy of the secret outlives
/// it (a value moved in Rust leaves its old bytes behind, so a secret is never moved).
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
    pub(crate) hash: TokenHash,
}

impl Token {
    /// The public id, used to find the token's record.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// SHA-256 of the secret: what a store keeps and what verification compares.
    pub fn secret_hash(&self) -> TokenHash {
        self.hash
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("secret_hash", &self.hash)
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
