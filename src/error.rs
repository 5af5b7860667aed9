//! The crate's error types, each with the HTTP status a web layer should answer.
//!
//! | type            | raised by                                         |
//! |-----------------|---------------------------------------------------|
//! | [`ParseError`]  | [`TokenFormat::parse`](crate::TokenFormat::parse) |
//! | [`AuthError`]   | verification: every way a presented token fails   |
//! | [`Error`]       | issue, revoke, rotate, list, purge                |
//! | [`ConfigError`] | building an [`ApiTokens`](crate::ApiTokens)       |
//! | [`StoreError`](crate::StoreError) | storage (in `store`)            |
//!
//! No message ever contains a token or a secret.

use std::fmt;

use time::OffsetDateTime;

use crate::clock::Rfc3339;
use crate::store::StoreError;

/// Why a presented string is not a token of this format. Raised before any storage lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing was presented.
    #[error("the token is empty")]
    Empty,
    /// Longer than any token of any format.
    #[error("the token is longer than {max} characters")]
    TooLong {
        /// The cap.
        max: usize,
    },
    /// A character outside `[A-Za-z0-9_]`.
    #[error("the token has a character outside [A-Za-z0-9_] at byte {position}")]
    InvalidCharacter {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// The token does not start with this issuer's prefix and `_`.
    #[error("the token does not start with this issuer's prefix")]
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
    #[error("the token is not lowercase hex at byte {position}")]
    InvalidEncoding {
        /// Byte offset of the first bad character.
        position: usize,
    },
}

/// Why a presented token was not accepted.
///
/// The credential failures ([`Missing`](Self::Missing), [`MalformedHeader`](Self::MalformedHeader),
/// [`Malformed`](Self::Malformed), [`Invalid`](Self::Invalid), [`Expired`](Self::Expired),
/// [`Revoked`](Self::Revoked)) all map to 401, and a web layer should answer them with one
/// body so a caller cannot probe which tokens exist. An unknown id and a wrong secret are the
/// same [`Invalid`](Self::Invalid). `Expired` and `Revoked` are only reported once the secret
/// has matched.
///
/// ```
/// use api_tokens::AuthError;
///
/// assert_eq!(AuthError::Invalid.status(), 401);
/// assert_eq!(AuthError::WrongTenant.status(), 403);
/// assert_eq!(AuthError::Invalid.code(), "invalid_token");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error(
        "no API token was presented; send it as `Authorization: Bearer <token>` or `X-API-Key: <token>`"
    )]
    Missing,
    /// The header carrying the token is unusable.
    #[error("the API token header is malformed: {reason}")]
    MalformedHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The presented string is not a token of this issuer.
    #[error("the API token is malformed: {0}")]
    Malformed(#[from] ParseError),
    /// No such token, or the secret does not match.
    #[error("the API token is not valid")]
    Invalid,
    /// The token expired.
    #[error("the API token expired at {}; create a new one", Rfc3339(*.expired_at))]
    Expired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The token was revoked; revocation cannot be undone.
    #[error("the API token was revoked at {}; create a new one", Rfc3339(*.revoked_at))]
    Revoked {
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The token lacks scopes the operation requires.
    #[error("the API token lacks the required scopes: {}", .missing.join(", "))]
    InsufficientScope {
        /// The required scopes the token does not carry.
        missing: Vec<String>,
    },
    /// The token belongs to another tenant (or to none, where one is required).
    #[error("the API token does not belong to the requested tenant")]
    WrongTenant,
    /// The token store could not answer; the request fails closed.
    #[error("the token store is unavailable; try again later")]
    Store(#[source] StoreError),
}

impl AuthError {
    /// The HTTP status to answer: 401 for credential failures, 403 for scope and tenant,
    /// 503 (store unavailable) or 500 (store fault).
    pub fn status(&self) -> u16 {
        match self {
            Self::Missing
            | Self::MalformedHeader { .. }
            | Self::Malformed(_)
            | Self::Invalid
            | Self::Expired { .. }
            | Self::Revoked { .. } => 401,
            Self::InsufficientScope { .. } | Self::WrongTenant => 403,
            Self::Store(e) => e.status(),
        }
    }

    /// A stable machine-readable code. All credential failures share `invalid_token`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::WrongTenant => "wrong_tenant",
            Self::Store(e) => e.code(),
            _ => "invalid_token",
        }
    }

    /// Whether this is one of the 401 credential failures.
    pub fn is_credential_failure(&self) -> bool {
        self.status() == 401
    }
}

/// One rejected input field, for a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field, as the API names it (`name`, `scopes[2]`, `expires_in_days`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Every rejected field of one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The rejected fields.
    pub fn fields(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether `field` was rejected.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}` {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

/// Why issuing, revoking, rotating, listing or purging failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input fields were rejected; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// No such token for this owner (another owner's token looks the same).
    #[error("no such token")]
    NotFound,
    /// The token was already revoked; revocation cannot be undone.
    #[error("the token was already revoked at {}", Rfc3339(*.revoked_at))]
    AlreadyRevoked {
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The token is revoked or expired, so it cannot be rotated.
    #[error("the token is no longer active; issue a new one instead")]
    NotActive,
    /// The presented token did not verify (for operations on the token in use).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed; no token was issued")]
    Random(#[source] RandomError),
    /// The token store failed; nothing was written unless the store says otherwise.
    #[error("the token store failed: {0}")]
    Store(#[from] StoreError),
}

impl Error {
    /// The HTTP status to answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 422,
            Self::NotFound => 404,
            Self::AlreadyRevoked { .. } | Self::NotActive => 409,
            Self::Auth(e) => e.status(),
            Self::Random(_) => 500,
            Self::Store(e) => e.status(),
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "validation_failed",
            Self::NotFound => "not_found",
            Self::AlreadyRevoked { .. } => "already_revoked",
            Self::NotActive => "not_active",
            Self::Auth(e) => e.code(),
            Self::Random(_) => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    /// The rejected fields, for a validation error.
    pub fn validation(&self) -> Option<&ValidationErrors> {
        match self {
            Self::Invalid(v) => Some(v),
            _ => None,
        }
    }
}

/// The random number generator's failure, without naming `getrandom`'s type.
#[derive(Debug)]
pub struct RandomError(pub(crate) getrandom::Error);

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// A configuration that cannot work, reported when it is built rather than at first use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token prefix is not usable.
    #[error(
        "the token prefix {prefix:?} {reason}; use 1-32 characters of [A-Za-z0-9_] starting with a letter, like `dz` or `opt_live`"
    )]
    Prefix {
        /// The rejected prefix.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The secret length is out of range.
    #[error("a secret of {bytes} bytes is not allowed; choose {min} to {max}")]
    SecretLength {
        /// The requested length.
        bytes: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// A SQL table name is not usable.
    #[error(
        "the table name {name:?} is not allowed; use `table` or `schema.table`, each part 1-48 characters of [A-Za-z0-9_] not starting with a digit"
    )]
    TableName {
        /// The rejected name.
        name: String,
    },
    /// The lifetime policy contradicts itself.
    #[error("the token policy is inconsistent: {0}")]
    Policy(&'static str),
}
