//! [`Error`]: why an operation other than verification failed, and the per-field
//! [`ValidationErrors`] of a 422.

use std::fmt;

use time::OffsetDateTime;

use super::{AuthError, StoreError};
use crate::clock::Rfc3339;

/// One rejected input field, for a 422 answer.
///
/// ```
/// use api_tokens::FieldError;
///
/// let e = FieldError::new("page", "must be 1 or more");
/// assert_eq!((e.field.as_str(), e.reason.as_str()), ("page", "must be 1 or more"));
/// assert_eq!(e.to_string(), "`page` must be 1 or more");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field, as the API names it (`name`, `scopes[2]`, `expires_in_days`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// The field `field` is rejected because it `reason` ("must be 1 or more").
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

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

impl std::error::Error for ValidationErrors {}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            fmt::Display::fmt(e, f)?;
        }
        Ok(())
    }
}

/// Why issuing, reading, revoking, rotating, listing or purging failed.
///
/// A store failure is always [`Error::Store`], whether it happened while verifying a token
/// for the operation or while writing; [`store_error`](Self::store_error) finds it.
///
/// ```
/// use api_tokens::{Error, FieldError};
///
/// let err = Error::from(FieldError::new("name", "is required and must not be blank"));
/// assert_eq!((err.status(), err.code()), (422, "validation_failed"));
/// assert_eq!(Error::NotFound.status(), 404);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input fields were rejected; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// No such token for this owner (another owner's token looks the same).
    #[error("no such token; check the id")]
    NotFound,
    /// The token was already revoked; revocation cannot be undone.
    #[error("the token was already revoked at {}; nothing changed", Rfc3339(*.revoked_at))]
    AlreadyRevoked {
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The token is revoked or expired (or, to rotate it, suspended or idle), so it cannot
    /// be changed that way.
    #[error("the token is not active; resume it, or issue a new one instead")]
    NotActive,
    /// The token kept changing while the operation ran (edited, suspended or used by
    /// another request at the same moment, several times over); nothing was written. Try
    /// again.
    #[error("the token changed while the operation ran; nothing was written; try again")]
    Conflict,
    /// The token was already rotated and lives out its grace period; a token has at most
    /// one successor. Rotate the successor instead.
    #[error("the token was already rotated; rotate its successor instead")]
    AlreadyRotated,
    /// The owner already has as many active tokens as the policy allows.
    #[error("the owner already has {limit} active tokens, the most allowed; revoke one first")]
    TooManyTokens {
        /// The policy's cap on an owner's active tokens.
        limit: u32,
    },
    /// The presented token did not verify (for operations on the token in use).
    #[error(transparent)]
    Auth(AuthError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed; no token was issued; try again")]
    Random(#[source] RandomError),
    /// The token store failed; nothing was written unless the store says otherwise.
    #[error("the token store failed: {0}")]
    Store(#[from] StoreError),
}

impl From<AuthError> for Error {
    /// A store failure during verification becomes [`Error::Store`], so a store failure has
    /// one shape whichever step met it.
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => Self::Store(e),
            other => Self::Auth(other),
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(v: ValidationErrors) -> Self {
        Self::Invalid(v)
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e.into())
    }
}

impl Error {
    /// The HTTP status to answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 422,
            Self::NotFound => 404,
            Self::AlreadyRevoked { .. }
            | Self::NotActive
            | Self::AlreadyRotated
            | Self::Conflict => 409,
            Self::TooManyTokens { .. } => 422,
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
            Self::AlreadyRotated => "already_rotated",
            Self::Conflict => "conflict",
            Self::TooManyTokens { .. } => "too_many_tokens",
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

    /// The store's failure, if the store is why the operation failed (also when the store
    /// failed while verifying the token an operation acts on).
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            Self::Auth(e) => e.store_error(),
            _ => None,
        }
    }
}

/// The operating system's random number generator failed.
#[derive(Debug)]
pub struct RandomError(getrandom::Error);

impl RandomError {
    pub(crate) fn new(e: getrandom::Error) -> Self {
        Self(e)
    }
}

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for RandomError {}
