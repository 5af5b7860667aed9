//! [`ConfigError`]: a configuration that cannot work.

/// A configuration that cannot work, reported when it is built rather than at first use.
///
/// ```
/// use api_tokens::{ApiTokens, ConfigError, MemoryStore};
///
/// let err = ApiTokens::new(MemoryStore::new(), "bad prefix!").unwrap_err();
/// assert!(matches!(err, ConfigError::Prefix { .. }));
/// ```
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
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    #[error(
        "the table name {name:?} is not allowed: {reason}; use `table` or `schema.table`, each part 1-48 characters of [A-Za-z0-9_] not starting with a digit"
    )]
    TableName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A [`CachedStore`](crate::CachedStore) cannot be built this way.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    #[error("the token cache cannot be built: {0}")]
    Cache(&'static str),
    /// The lifetime policy contradicts itself.
    #[error("the token policy is inconsistent: {0}")]
    Policy(&'static str),
}
