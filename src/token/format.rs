//! [`TokenFormat`]: one issuer's layout of tokens, how they are parsed and generated.

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::TokenId;
use super::encoding::{
    CHECKSUM_HEX, DISPLAY_ID_HEX, ID_HEX, ascii_string, decode_block, decode_hex, decode_u32,
    first_non_hex, in_alphabet, write_hex,
};
use super::id::display_prefix;
use super::secret::{PlaintextToken, Token};
use crate::error::{ConfigError, ParseError};
use crate::hash::{SecretMessage, TokenHash};
use crate::limits::{
    DEFAULT_SECRET_BYTES, MAX_PREFIX_LEN, MAX_SECRET_BYTES, MAX_TOKEN_LEN, MIN_SECRET_BYTES,
    TOKEN_ID_BYTES,
};

/// The layout of one issuer's tokens: its prefix and its secret length.
///
/// ```
/// use api_tokens::{ParseError, TokenFormat};
///
/// let format = TokenFormat::new("opt_live")?;
/// assert_eq!(format.prefix(), "opt_live");
/// assert!(matches!(format.parse(""), Err(ParseError::Empty)));
/// assert!(matches!(format.parse("ghp_abc"), Err(ParseError::WrongPrefix)));
/// assert!(TokenFormat::new("bad prefix!").is_err());
/// # Ok::<(), api_tokens::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TokenFormat {
    prefix: Arc<str>,
    secret_bytes: usize,
    /// The checksum's state after the prefix and its `_`, which every token of this format
    /// starts with: a token's own bytes are checked from there (the CPU's features are
    /// detected once, here, and the default body, 96 hex digits, is whole 16-byte blocks).
    crc_after_prefix: crc32fast::Hasher,
}

/// Formats are equal when their prefix and secret length are (the checksum's state follows).
impl PartialEq for TokenFormat {
    fn eq(&self, other: &Self) -> bool {
        (&self.prefix, self.secret_bytes) == (&other.prefix, other.secret_bytes)
    }
}

impl Eq for TokenFormat {}

impl fmt::Debug for TokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFormat")
            .field("prefix", &self.prefix)
            .field("secret_bytes", &self.secret_bytes)
            .finish()
    }
}

impl TokenFormat {
    /// A format with this issuer/environment prefix (`dz`, `opt_live`, `api_prod`) and a
    /// 256-bit secret.
    ///
    /// The prefix is 1–32 characters of `[A-Za-z0-9_]`, starting with a letter, not ending
    /// with `_` and with no `__`.
    pub fn new(prefix: &str) -> Result<Self, ConfigError> {
        validate_prefix(prefix)?;
        let mut crc_after_prefix = crc32fast::Hasher::new();
        crc_after_prefix.update(prefix.as_bytes());
        crc_after_prefix.update(b"_");
        Ok(Self {
            prefix: Arc::from(prefix),
            secret_bytes: DEFAULT_SECRET_BYTES,
            crc_after_prefix,
        })
    }

    /// The same format with a secret of `bytes` random bytes (16–64).
    pub fn with_secret_bytes(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes) {
            return Err(ConfigError::SecretLength {
                bytes,
                min: MIN_SECRET_BYTES,
                max: MAX_SECRET_BYTES,
            });
        }
        self.secret_bytes = bytes;
        Ok(self)
    }

    /// The issuer/environment prefix, without the trailing `_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix as the `Arc` every record issued with this format shares.
    pub(crate) fn shared_prefix(&self) -> &Arc<str> {
        &self.prefix
    }

    /// Random bytes in each secret.
    pub fn secret_bytes(&self) -> usize {
        self.secret_bytes
    }

    /// Length of every token of this format.
    pub fn token_len(&self) -> usize {
        self.prefix.len() + 1 + ID_HEX + self.secret_bytes * 2 + CHECKSUM_HEX
    }

    /// The display prefix of a token with this id: the prefix, `_` and the first 8 hex
    /// characters of the id (`dz_1a2b3c4d`). It reveals nothing of the secret.
    pub fn display_prefix(&self, id: &TokenId) -> String {
        display_prefix(&self.prefix, id)
    }

    /// Parse a presented token: length cap, prefix, length, checksum, then the id, and the
    /// SHA-256 of the secret. Nothing here touches storage, and nothing here allocates.
    ///
    /// A token that fails any check is then scanned for characters outside `[A-Za-z0-9_]`,
    /// so that such a character is reported as [`ParseError::InvalidCharacter`] whichever
    /// check it broke first; a valid token is never scanned twice.
    pub fn parse(&self, presented: &str) -> Result<Token, ParseError> {
        let mut secret = SecretMessage::new(self.secret_bytes);
        let id = self.parse_secret(presented, &mut secret)?;
        Ok(Token {
            id,
            hash: secret.hash(),
        })
    }

    /// The id a well-formed presented token names (checksum and all), without looking at
    /// whether it exists; `None` if it is not well formed. For audit events and logs.
    pub(crate) fn id_of(&self, presented: &str) -> Option<TokenId> {
        let mut secret = SecretMessage::new(self.secret_bytes);
        self.parse_secret(presented, &mut secret).ok()
    }

    /// [`parse`](Self::parse), leaving the secret unhashed: decoded into `secret` (SHA-256's
    /// message block, which the caller made for this format's secret length and which
    /// wipes itself on drop; passed by reference so that it is never moved, which could
    /// leave a copy behind), so that verification can start the lookup by id before it
    /// spends the time hashing.
    pub(crate) fn parse_secret(
        &self,
        presented: &str,
        secret: &mut SecretMessage,
    ) -> Result<TokenId, ParseError> {
        let bytes = presented.as_bytes();
        if bytes.is_empty() {
            return Err(ParseError::Empty);
        }
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(ParseError::TooLong { max: MAX_TOKEN_LEN });
        }
        self.parse_checked(bytes, secret).map_err(|e| {
            if bytes.iter().fold(false, |bad, &b| bad | !in_alphabet(b)) {
                let position = bytes.iter().position(|&b| !in_alphabet(b)).unwrap_or(0);
                ParseError::InvalidCharacter { position }
            } else {
                e
            }
        })
    }

    fn parse_checked(
        &self,
        bytes: &[u8],
        secret: &mut SecretMessage,
    ) -> Result<TokenId, ParseError> {
        let prefix = self.prefix.as_bytes();
        let body_at = prefix.len() + 1;
        // Compared without a call to `memcmp` (a prefix is at most 32 bytes, and public).
        if bytes.len() < body_at
            || prefix
                .iter()
                .zip(bytes)
                .fold(false, |d, (a, b)| d | (a != b))
            || bytes[prefix.len()] != b'_'
        {
            return Err(ParseError::WrongPrefix);
        }
        let expected = self.token_len();
        if bytes.len() != expected {
            return Err(ParseError::WrongLength {
                expected,
                found: bytes.len(),
            });
        }
        let (signed, checksum) = bytes.split_at(expected - CHECKSUM_HEX);
        let claimed = checksum.try_into().ok().and_then(decode_u32);
        if claimed != Some(self.checksum(&signed[body_at..])) {
            return Err(ParseError::BadChecksum);
        }
        let wrong_length = ParseError::WrongLength {
            expected,
            found: bytes.len(),
        };
        let (id_hex, secret_hex) = signed[body_at..]
            .split_first_chunk::<ID_HEX>()
            .ok_or(wrong_length)?;
        let mut id = [0u8; TOKEN_ID_BYTES];
        if !decode_block(id_hex, &mut id) {
            return Err(ParseError::InvalidEncoding {
                position: body_at + first_non_hex(id_hex),
            });
        }
        // The one copy of the secret: decoded straight into SHA-256's message block.
        decode_hex(secret_hex, secret.secret_mut()).map_err(|at| ParseError::InvalidEncoding {
            position: body_at + ID_HEX + at,
        })?;
        Ok(TokenId::from_bytes(id))
    }

    /// The CRC32 of a token of this format whose bytes after the prefix and its `_` are
    /// `body` (id and secret in hex).
    fn checksum(&self, body: &[u8]) -> u32 {
        let mut crc = self.crc_after_prefix.clone();
        crc.update(body);
        crc.finalize()
    }

    /// Whether a record's issuer `prefix` is this format's.
    pub(crate) fn issued(&self, prefix: &Arc<str>) -> bool {
        Arc::ptr_eq(&self.prefix, prefix) || *self.prefix == **prefix
    }

    /// Generate a fresh token from the operating system's CSPRNG: its id, the hash of its
    /// secret, and its plaintext. The secret is read on its own (the default 32 bytes in
    /// the kernel's one-step read); the id is a pad from this thread's batch XOR the
    /// hash's first half (see [`fresh_id`](super::fresh_id)).
    pub(crate) fn generate(
        &self,
    ) -> Result<(TokenId, TokenHash, PlaintextToken), getrandom::Error> {
        let mut secret = Zeroizing::new([0u8; MAX_SECRET_BYTES]);
        let secret = &mut secret[..self.secret_bytes];
        getrandom::fill(secret)?;
        let secret = &*secret;
        let hash = TokenHash::of_secret(secret);
        let id = super::fresh_id::for_hash(&hash)?;

        // Built in place at its final length, so no reallocation leaves a copy behind.
        let len = self.token_len();
        let mut text = Zeroizing::new(vec![0u8; len]);
        let (id_at, checksum_at) = (self.prefix.len() + 1, len - CHECKSUM_HEX);
        let secret_at = id_at + ID_HEX;
        text[..id_at - 1].copy_from_slice(self.prefix.as_bytes());
        text[id_at - 1] = b'_';
        write_hex(&mut text[id_at..secret_at], id.as_bytes());
        write_hex(&mut text[secret_at..checksum_at], secret);
        let checksum = self.checksum(&text[id_at..checksum_at]);
        write_hex(&mut text[checksum_at..], &checksum.to_be_bytes());
        let text = Zeroizing::new(ascii_string(std::mem::take(&mut *text)));
        debug_assert_eq!(text.len(), self.token_len());

        let display_len = self.prefix.len() + 1 + DISPLAY_ID_HEX;
        Ok((id, hash, PlaintextToken { text, display_len }))
    }
}

fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let reason = if prefix.is_empty() {
        Some("is empty")
    } else if prefix.len() > MAX_PREFIX_LEN {
        Some("is longer than 32 characters")
    } else if !prefix.bytes().all(in_alphabet) {
        Some("has a character outside [A-Za-z0-9_]")
    } else if !prefix.as_bytes()[0].is_ascii_alphabetic() {
        Some("does not start with a letter")
    } else if prefix.ends_with('_') || prefix.contains("__") {
        Some("ends with `_` or contains `__`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::Prefix {
            prefix: prefix.chars().take(MAX_PREFIX_LEN + 8).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> TokenFormat {
        TokenFormat::new("dz").unwrap()
    }

    #[test]
    fn generated_tokens_parse_back() {
        let format = TokenFormat::new("opt_live").unwrap();
        let (id, hash, plain) = format.generate().unwrap();
        let text = plain.expose_secret();
        assert_eq!(text.len(), format.token_len());
        assert!(text.starts_with("opt_live_"));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let token = format.parse(text).unwrap();
        assert_eq!(token.id(), id);
        assert_eq!(token.secret_hash(), hash);
        assert_eq!(plain.display_prefix(), format.display_prefix(&id));
        assert!(text.starts_with(&format!("opt_live_{id}")));
    }

    #[test]
    fn two_tokens_differ() {
        let (a, _, pa) = fmt().generate().unwrap();
        let (b, _, pb) = fmt().generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(pa.expose_secret(), pb.expose_secret());
    }

    #[test]
    fn secret_length_is_configurable_within_bounds() {
        // Every length, so that every tail of the eight-digit decoder and both one- and
        // two-block hashing are exercised.
        for bytes in MIN_SECRET_BYTES..=MAX_SECRET_BYTES {
            let format = fmt().with_secret_bytes(bytes).unwrap();
            let (id, hash, plain) = format.generate().unwrap();
            let text = plain.expose_secret();
            assert_eq!(text.len(), 3 + 32 + bytes * 2 + 8);
            let token = format.parse(text).unwrap();
            assert_eq!(
                (token.id(), token.secret_hash()),
                (id, hash),
                "{bytes} bytes"
            );
            let secret = hex::decode(&text[3 + 32..text.len() - 8]).unwrap();
            assert_eq!(hash, TokenHash::of_secret(&secret), "{bytes} bytes");
        }
        assert!(fmt().with_secret_bytes(15).is_err());
        assert!(fmt().with_secret_bytes(65).is_err());
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        let f = fmt();
        let (_, _, plain) = f.generate().unwrap();
        let good = plain.expose_secret().to_owned();
        assert_eq!(f.parse("").unwrap_err(), ParseError::Empty);
        assert_eq!(
            f.parse(&"a".repeat(300)).unwrap_err(),
            ParseError::TooLong { max: 256 }
        );
        assert_eq!(
            f.parse("dz_abc-def").unwrap_err(),
            ParseError::InvalidCharacter { position: 6 }
        );
        assert_eq!(
            f.parse("dz_ab\u{e9}").unwrap_err(),
            ParseError::InvalidCharacter { position: 5 }
        );
        assert_eq!(f.parse("ghp_abcdef").unwrap_err(), ParseError::WrongPrefix);
        assert_eq!(f.parse("dz").unwrap_err(), ParseError::WrongPrefix);
        assert_eq!(f.parse("dzx_abc").unwrap_err(), ParseError::WrongPrefix);
        assert_eq!(
            f.parse(&good[..good.len() - 1]).unwrap_err(),
            ParseError::WrongLength {
                expected: good.len(),
                found: good.len() - 1
            }
        );
        // A typo anywhere is caught by the checksum.
        for i in 3..good.len() {
            let mut typo = good.clone().into_bytes();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).unwrap();
            assert_eq!(
                f.parse(&typo).unwrap_err(),
                ParseError::BadChecksum,
                "at {i}"
            );
        }
        // Uppercasing changes the checksummed text.
        let upper = format!("dz_{}", good[3..].to_ascii_uppercase());
        assert_eq!(f.parse(&upper).unwrap_err(), ParseError::BadChecksum);
    }

    #[test]
    fn the_checksum_is_the_crc32_of_the_whole_text_before_it() {
        for prefix in ["d", "dz", "opt_live", &"p".repeat(32)] {
            for bytes in [
                MIN_SECRET_BYTES,
                20,
                DEFAULT_SECRET_BYTES,
                33,
                MAX_SECRET_BYTES,
            ] {
                let f = TokenFormat::new(prefix)
                    .unwrap()
                    .with_secret_bytes(bytes)
                    .unwrap();
                let (_, _, plain) = f.generate().unwrap();
                let text = plain.expose_secret();
                let (signed, checksum) = text.split_at(text.len() - CHECKSUM_HEX);
                let whole = crc32fast::hash(signed.as_bytes());
                assert_eq!(checksum, format!("{whole:08x}"), "{prefix} {bytes}");
                assert!(f.parse(text).is_ok());
                // A checksum of the text that skips the prefix does not pass.
                let skipped = crc32fast::hash(&signed.as_bytes()[prefix.len() + 1..]);
                let forged = format!("{signed}{skipped:08x}");
                assert_eq!(f.parse(&forged).unwrap_err(), ParseError::BadChecksum);
            }
        }
    }

    #[test]
    fn non_hex_body_with_valid_checksum_is_invalid_encoding() {
        let f = fmt();
        let signed = format!("dz_{}{}", "g".repeat(32), "0".repeat(64));
        let token = format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()));
        assert_eq!(
            f.parse(&token).unwrap_err(),
            ParseError::InvalidEncoding { position: 3 }
        );
        let signed = format!("dz_{}{}z", "0".repeat(32), "0".repeat(63));
        let token = format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()));
        assert_eq!(
            f.parse(&token).unwrap_err(),
            ParseError::InvalidEncoding {
                position: 3 + 32 + 63
            }
        );
    }

    #[test]
    fn prefixes_are_validated() {
        for good in ["dz", "opt_live", "api_prod", "A1", &"a".repeat(32)] {
            TokenFormat::new(good).unwrap();
        }
        for bad in [
            "",
            "_dz",
            "1dz",
            "dz_",
            "a__b",
            "dz-live",
            "dz live",
            &"a".repeat(33),
        ] {
            assert!(TokenFormat::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_and_display() {
        let f = fmt();
        let (_, _, plain) = f.generate().unwrap();
        let secret_part = &plain.expose_secret()[3 + 32..3 + 32 + 64];
        let token = f.parse(plain.expose_secret()).unwrap();
        for shown in [
            format!("{plain:?}"),
            format!("{plain}"),
            format!("{token:?}"),
        ] {
            assert!(!shown.contains(secret_part), "{shown}");
            assert!(!shown.contains(plain.expose_secret()), "{shown}");
        }
    }
}
