//! [`ParseError`]: why a presented string is not a token of a format.

/// Why a presented string is not a token of this format. Raised before any storage lookup.
///
/// ```
/// use api_tokens::{ParseError, TokenFormat};
///
/// let format = TokenFormat::new("dz")?;
/// assert_eq!(format.parse("").unwrap_err(), ParseError::Empty);
/// assert_eq!(format.parse("ghp_abc").unwrap_err(), ParseError::WrongPrefix);
/// # Ok::<(), api_tokens::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing was presented.
    #[error("the token is empty; send the whole token")]
    Empty,
    /// Longer than any token of any format.
    #[error("the token is longer than {max} characters; send only the token")]
    TooLong {
        /// The cap.
        max: usize,
    },
    /// A character outside `[A-Za-z0-9_]`.
    #[error(
        "the token has a character outside [A-Za-z0-9_] at byte {position}; check how it was copied"
    )]
    InvalidCharacter {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// The token does not start with this issuer's prefix and `_`.
    #[error("the token does not start with this issuer's prefix; it was issued elsewhere")]
    WrongPrefix,
    /// Not the length of this format's tokens.
    #[error("the token is {found} characters long; tokens of this issuer are {expected}")]
    WrongLength {
        /// The length of this format's tokens.
        expected: usize,
        /// The presented length.
        found: usize,
    },
    /// The CRC32 at the end does not match: a typo, a truncated copy, or not one of ours.
    #[error("the token's checksum does not match; check that it was copied whole")]
    BadChecksum,
    /// A part that must be lowercase hex is not.
    #[error("the token is not lowercase hex at byte {position}; tokens have one spelling")]
    InvalidEncoding {
        /// Byte offset of the first bad character.
        position: usize,
    },
}
