//! [`TokenId`]: the public part of a token, the store's key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::encoding::{DISPLAY_ID_HEX, ID_HEX, decode_hex, push_ascii, write_hex};
use crate::error::ParseError;
use crate::limits::TOKEN_ID_BYTES;

/// The public identifier of a token: 16 random bytes, shown as 32 lowercase hex characters.
///
/// The id is embedded in the token, so the store finds a record in one lookup. It is not a
/// secret: it appears in lists, logs and URLs (`DELETE /api/v1/tokens/{id}`).
///
/// ```
/// use api_tokens::TokenId;
///
/// let id: TokenId = "0123456789abcdef0123456789abcdef".parse()?;
/// assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef");
/// assert!("not-an-id".parse::<TokenId>().is_err());
/// # Ok::<(), api_tokens::ParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; TOKEN_ID_BYTES]);

impl TokenId {
    /// The id from its 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; TOKEN_ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// The 16 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; TOKEN_ID_BYTES] {
        &self.0
    }

    /// Write the 32 hex characters into `out`.
    pub(crate) fn encode_hex(&self, out: &mut [u8; ID_HEX]) {
        write_hex(out, &self.0);
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_HEX];
        self.encode_hex(&mut buf);
        // Hex is ASCII.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl FromStr for TokenId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_HEX {
            return Err(ParseError::WrongLength {
                expected: ID_HEX,
                found: s.len(),
            });
        }
        let mut id = [0u8; TOKEN_ID_BYTES];
        decode_hex(s.as_bytes(), &mut id)
            .map_err(|position| ParseError::InvalidEncoding { position })?;
        Ok(Self(id))
    }
}

impl Serialize for TokenId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The display prefix of the token `id` of issuer `prefix`: `{prefix}_{first 8 hex of id}`.
pub(crate) fn display_prefix(prefix: &str, id: &TokenId) -> String {
    let mut buf = [0u8; ID_HEX];
    id.encode_hex(&mut buf);
    let mut out = String::with_capacity(prefix.len() + 1 + DISPLAY_ID_HEX);
    out.push_str(prefix);
    out.push('_');
    push_ascii(&mut out, &buf[..DISPLAY_ID_HEX]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_id_round_trips_through_serde_and_text() {
        let id = TokenId::from_bytes([0xab; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TokenId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TokenId>("\"zz\"").is_err());
        assert!(
            "0123456789ABCDEF0123456789abcdef"
                .parse::<TokenId>()
                .is_err()
        );
        assert_eq!(display_prefix("dz", &id), "dz_abababab");
    }
}
