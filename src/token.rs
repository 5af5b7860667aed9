//! The token format: generating, parsing and displaying API tokens.
//!
//! A token is `{prefix}_{id}{secret}{checksum}`:
//!
//! | part       | encoding        | length (default)        |
//! |------------|-----------------|-------------------------|
//! | `prefix`   | as configured   | 1–32 characters         |
//! | `_`        | literal         | 1                       |
//! | `id`       | lowercase hex   | 32 (16 random bytes)    |
//! | `secret`   | lowercase hex   | 64 (32 random bytes)    |
//! | `checksum` | lowercase hex   | 8 (CRC32 of all before) |
//!
//! Every character is in `[A-Za-z0-9_]`, so a double-click selects the whole token and it
//! needs no escaping in a header, a URL or a shell. The checksum lets [`TokenFormat::parse`]
//! reject typos and garbage before any storage is touched, and lets a secret scanner confirm a
//! match offline.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{ConfigError, ParseError};
use crate::hash::TokenHash;

/// Bytes in a [`TokenId`].
pub const TOKEN_ID_BYTES: usize = 16;
/// Fewest secret bytes a [`TokenFormat`] accepts (128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// Most secret bytes a [`TokenFormat`] accepts (512 bits).
pub const MAX_SECRET_BYTES: usize = 64;
/// Secret bytes of a default [`TokenFormat`] (256 bits).
pub const DEFAULT_SECRET_BYTES: usize = 32;
/// Longest prefix a [`TokenFormat`] accepts.
pub const MAX_PREFIX_LEN: usize = 32;
/// Longest input [`TokenFormat::parse`] looks at; anything longer is rejected at once.
pub const MAX_TOKEN_LEN: usize = 256;

const ID_HEX: usize = TOKEN_ID_BYTES * 2;
const CHECKSUM_HEX: usize = 8;
/// Hex characters of the id shown in a display prefix (32 bits of the public id).
const DISPLAY_ID_HEX: usize = 8;

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
    fn encode_hex(&self, out: &mut [u8; ID_HEX]) {
        // The output length is right by construction, so this cannot fail.
        let _ = hex::encode_to_slice(self.0, out);
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

/// Decode lowercase hex into `out` (`text` is twice as long). On failure, the offset of the
/// first byte that is not a lowercase hex digit. Uppercase is refused so that every token has
/// exactly one spelling.
///
/// This runs on every verification: `const-hex` decodes with SIMD, and the uppercase test is
/// one branch-free pass.
fn decode_hex(text: &[u8], out: &mut [u8]) -> Result<(), usize> {
    let has_upper = text.iter().fold(false, |up, b| up | b.is_ascii_uppercase());
    if !has_upper && hex::decode_to_slice(text, out).is_ok() {
        return Ok(());
    }
    Err(text
        .iter()
        .position(|&b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        .unwrap_or(0))
}

/// The secret part of a parsed token; wiped from memory when dropped.
struct SecretBytes {
    buf: [u8; MAX_SECRET_BYTES],
    len: usize,
}

impl SecretBytes {
    fn as_slice(&self) -> &[u8] {
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
/// Obtained from [`TokenFormat::parse`]. It holds the public [`TokenId`] and the secret; the
/// secret never shows in `Debug`, and is wiped from memory on drop.
pub struct Token {
    id: TokenId,
    secret: SecretBytes,
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
/// # use api_tokens::{ApiTokens, MemoryStore, NewToken};
/// # tokio_test_block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "deploy-script")).await?;
/// let shown = format!("{:?}", issued.plaintext);
/// assert!(!shown.contains(issued.plaintext.expose_secret()));
/// assert!(issued.plaintext.expose_secret().starts_with("dz_"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct PlaintextToken {
    text: Zeroizing<String>,
    display_len: usize,
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
#[derive(Clone, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: Arc<str>,
    secret_bytes: usize,
}

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
        Ok(Self {
            prefix: Arc::from(prefix),
            secret_bytes: DEFAULT_SECRET_BYTES,
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

    /// Parse a presented token: length cap, prefix, length, checksum, then the id and
    /// secret. Nothing here touches storage, and nothing here allocates.
    ///
    /// A token that fails any check is then scanned for characters outside `[A-Za-z0-9_]`,
    /// so that such a character is reported as [`ParseError::InvalidCharacter`] whichever
    /// check it broke first; a valid token is never scanned twice.
    pub fn parse(&self, presented: &str) -> Result<Token, ParseError> {
        let bytes = presented.as_bytes();
        if bytes.is_empty() {
            return Err(ParseError::Empty);
        }
        if bytes.len() > MAX_TOKEN_LEN {
            return Err(ParseError::TooLong { max: MAX_TOKEN_LEN });
        }
        self.parse_checked(bytes).map_err(|e| {
            if bytes.iter().fold(false, |bad, &b| bad | !in_alphabet(b)) {
                let position = bytes.iter().position(|&b| !in_alphabet(b)).unwrap_or(0);
                ParseError::InvalidCharacter { position }
            } else {
                e
            }
        })
    }

    fn parse_checked(&self, bytes: &[u8]) -> Result<Token, ParseError> {
        let prefix = self.prefix.as_bytes();
        let body_at = prefix.len() + 1;
        if bytes.len() < body_at || &bytes[..prefix.len()] != prefix || bytes[prefix.len()] != b'_'
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
        let mut claimed = [0u8; 4];
        decode_hex(checksum, &mut claimed).map_err(|_| ParseError::BadChecksum)?;
        if u32::from_be_bytes(claimed) != crc32fast::hash(signed) {
            return Err(ParseError::BadChecksum);
        }
        let (id_hex, secret_hex) = signed[body_at..].split_at(ID_HEX);
        let mut id = [0u8; TOKEN_ID_BYTES];
        decode_hex(id_hex, &mut id).map_err(|at| ParseError::InvalidEncoding {
            position: body_at + at,
        })?;
        let mut secret = SecretBytes {
            buf: [0u8; MAX_SECRET_BYTES],
            len: self.secret_bytes,
        };
        decode_hex(secret_hex, &mut secret.buf[..self.secret_bytes]).map_err(|at| {
            ParseError::InvalidEncoding {
                position: body_at + ID_HEX + at,
            }
        })?;
        Ok(Token {
            id: TokenId(id),
            secret,
        })
    }

    /// Generate a fresh token from the operating system's CSPRNG: its id, the hash of its
    /// secret, and its plaintext.
    pub(crate) fn generate(
        &self,
    ) -> Result<(TokenId, TokenHash, PlaintextToken), getrandom::Error> {
        let mut random = Zeroizing::new([0u8; TOKEN_ID_BYTES + MAX_SECRET_BYTES]);
        let random = &mut random[..TOKEN_ID_BYTES + self.secret_bytes];
        getrandom::fill(random)?;
        let (id_bytes, secret) = random.split_at(TOKEN_ID_BYTES);
        let mut id = [0u8; TOKEN_ID_BYTES];
        id.copy_from_slice(id_bytes);
        let id = TokenId(id);
        let hash = TokenHash::of_secret(secret);

        // Built in place at its final capacity so no reallocation leaves a copy behind.
        let mut text = Zeroizing::new(String::with_capacity(self.token_len()));
        text.push_str(&self.prefix);
        text.push('_');
        let mut id_hex = [0u8; ID_HEX];
        id.encode_hex(&mut id_hex);
        push_ascii(&mut text, &id_hex);
        let mut hex_buf = Zeroizing::new([0u8; MAX_SECRET_BYTES * 2]);
        let secret_hex = &mut hex_buf[..secret.len() * 2];
        let _ = hex::encode_to_slice(secret, &mut *secret_hex);
        push_ascii(&mut text, secret_hex);
        let mut crc_hex = [0u8; CHECKSUM_HEX];
        let _ = hex::encode_to_slice(crc32fast::hash(text.as_bytes()).to_be_bytes(), &mut crc_hex);
        push_ascii(&mut text, &crc_hex);
        debug_assert_eq!(text.len(), self.token_len());

        let display_len = self.prefix.len() + 1 + DISPLAY_ID_HEX;
        Ok((id, hash, PlaintextToken { text, display_len }))
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

/// Whether `b` is in `[A-Za-z0-9_]`, without branches, so a scan over a token vectorises.
fn in_alphabet(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26) | (b == b'_')
}

fn push_ascii(out: &mut String, ascii: &[u8]) {
    out.extend(ascii.iter().map(|&b| char::from(b)));
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
        for bytes in [16, 48, 64] {
            let format = fmt().with_secret_bytes(bytes).unwrap();
            let (_, _, plain) = format.generate().unwrap();
            assert_eq!(plain.expose_secret().len(), 3 + 32 + bytes * 2 + 8);
            format.parse(plain.expose_secret()).unwrap();
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
    fn hex_decoding_agrees_with_the_hex_crate_on_lowercase_and_refuses_the_rest() {
        for byte in 0..=255u8 {
            let text = hex::encode([byte]);
            let mut out = [0u8; 1];
            decode_hex(text.as_bytes(), &mut out).unwrap();
            assert_eq!(out[0], byte);
        }
        for bad in 0..=255u8 {
            if bad.is_ascii_digit() || (b'a'..=b'f').contains(&bad) {
                continue;
            }
            let mut out = [0u8; 2];
            assert_eq!(
                decode_hex(&[b'0', b'1', b'2', bad], &mut out),
                Err(3),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_alphabet_test_matches_its_definition() {
        for b in 0..=255u8 {
            assert_eq!(
                in_alphabet(b),
                b.is_ascii_alphanumeric() || b == b'_',
                "{b}"
            );
        }
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

    #[test]
    fn token_id_round_trips_through_serde_and_text() {
        let (id, _, _) = fmt().generate().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TokenId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TokenId>("\"zz\"").is_err());
        assert!(
            "0123456789ABCDEF0123456789abcdef"
                .parse::<TokenId>()
                .is_err()
        );
    }
}
