//! [`StoreError`]: what went wrong in a [`TokenStore`](crate::TokenStore).

use std::error::Error as StdError;
use std::fmt;

/// What went wrong in a store, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A record with this id already exists; nothing was written.
    DuplicateId,
    /// The backend cannot be reached, is restarting, or has no free connection. Retrying
    /// later may succeed.
    Unavailable,
    /// The backend returned data this crate cannot read (a damaged row, a foreign schema).
    Corrupt,
    /// The store does not implement an optional operation that a setting needs (such as a
    /// cap on active tokens per owner); a configuration problem, not a passing fault.
    Unsupported,
    /// Any other backend failure.
    Other,
}

/// A store failure. The backend's own error, if any, is kept as [`source`](StdError::source)
/// so that this type never names a backend's types and backends can be upgraded freely.
///
/// ```
/// use api_tokens::{StoreError, StoreErrorKind};
///
/// let e = StoreError::new(StoreErrorKind::Unavailable, "the database did not answer")
///     .with_source(std::io::Error::other("connection refused"));
/// assert_eq!((e.status(), e.code()), (503, "store_unavailable"));
/// assert!(std::error::Error::source(&e).is_some());
/// ```
pub struct StoreError {
    kind: StoreErrorKind,
    message: &'static str,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind`, with a short fixed description of what was being done.
    pub fn new(kind: StoreErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    /// Attach the backend's error as the source.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A record with this id already exists.
    pub fn duplicate_id() -> Self {
        Self::new(
            StoreErrorKind::DuplicateId,
            "a token with this id already exists; nothing was written",
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The HTTP status: 503 while the backend is unavailable, 500 otherwise.
    pub fn status(&self) -> u16 {
        match self.kind {
            StoreErrorKind::Unavailable => 503,
            _ => 500,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Unavailable => "store_unavailable",
            StoreErrorKind::DuplicateId => "duplicate_id",
            _ => "store_error",
        }
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
