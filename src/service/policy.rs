//! [`TokenPolicy`]: how long tokens may live.

use time::Duration;

use crate::error::ConfigError;
use crate::limits::MAX_DESCRIPTION_CHARS;

/// Lifetime rules applied when a token is issued.
///
/// The default: tokens live 365 days unless asked otherwise, at most 365 days, and "never
/// expires" is refused. Lifetimes asked for in days must then be 1–365.
///
/// ```
/// use api_tokens::TokenPolicy;
/// use time::Duration;
///
/// // Tokens that may be created without an expiry.
/// let policy = TokenPolicy::default().allow_never(true).max_lifetime(None);
/// assert!(policy.allows_never());
///
/// // Short-lived tokens for a staging environment.
/// let policy = TokenPolicy::default()
///     .default_lifetime(Duration::days(7))
///     .max_lifetime(Some(Duration::days(30)));
/// assert_eq!(policy.max_days(), Some(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    default_lifetime: Duration,
    max_lifetime: Option<Duration>,
    allow_never: bool,
    max_active_per_owner: Option<u32>,
    idle_timeout: Option<Duration>,
    description_chars: (usize, usize),
    children_may_outlive_creators: bool,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            default_lifetime: Duration::days(365),
            max_lifetime: Some(Duration::days(365)),
            allow_never: false,
            max_active_per_owner: None,
            idle_timeout: None,
            description_chars: (0, MAX_DESCRIPTION_CHARS),
            children_may_outlive_creators: false,
        }
    }
}

impl TokenPolicy {
    /// The lifetime of a token issued without an explicit expiry.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The longest lifetime a token may be given; `None` for no limit.
    pub fn max_lifetime(mut self, max: Option<Duration>) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Whether tokens may be issued that never expire.
    pub fn allow_never(mut self, allow: bool) -> Self {
        self.allow_never = allow;
        self
    }

    /// The most active (not revoked, not expired) tokens an owner may hold from this issuer;
    /// issuing one more is refused with [`Error::TooManyTokens`](crate::Error::TooManyTokens)
    /// (422 `too_many_tokens`). `None` (the default) for no cap. Rotation is not capped: the
    /// old token ends with its grace period. Like Knox's `TOKEN_LIMIT_PER_USER`.
    pub fn max_active_per_owner(mut self, cap: Option<u32>) -> Self {
        self.max_active_per_owner = cap;
        self
    }

    /// Stop a token that has not been used for `timeout` (Sanctum's "expire by last use"):
    /// it fails with [`AuthError::Idle`](crate::AuthError::Idle) (401, like any expiry) once
    /// its last use, or its creation if it was never used, is older. `None` (the default)
    /// for no inactivity limit.
    ///
    /// Last use is written at most once per
    /// [last-use interval](crate::ApiTokensBuilder::last_use_interval), so the recorded last
    /// use may be up to that interval older than the real one: a token idles out between
    /// `timeout − interval` and `timeout` after its real last use. The timeout must be longer
    /// than the interval (checked when `ApiTokens` is built).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The inactivity limit, if any.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// How long a description must be, in characters, when one is given (default 0 to
    /// 1 024; one token API asks for 3 to 255). At most
    /// [`MAX_DESCRIPTION_CHARS`](crate::limits::MAX_DESCRIPTION_CHARS).
    pub fn description_chars(mut self, min: usize, max: usize) -> Self {
        self.description_chars = (min, max);
        self
    }

    /// Let a token created by another ([`NewToken::child_of`](crate::NewToken::child_of))
    /// expire after its creator, or never (when [`allow_never`](Self::allow_never)): a
    /// personal token made from a login session then outlives the session, as on GitHub.
    /// Revoking the creator still revokes it. By default (`false`) a created token's
    /// expiry is cut to its creator's, so a stolen token cannot mint a longer-lived one.
    ///
    /// ```
    /// use api_tokens::{ApiTokens, Expiry, MemoryStore, NewToken, TokenPolicy};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let policy = TokenPolicy::default().allow_never(true);
    /// for (outlive, expected_never) in [(false, false), (true, true)] {
    ///     let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
    ///         .policy(policy.children_may_outlive_creators(outlive))
    ///         .build()?;
    ///     let login = tokens.issue(NewToken::new("u1", "login").expires(Expiry::InDays(1))).await?;
    ///     let who = tokens.verify(login.plaintext.expose_secret()).await?;
    ///     let child = tokens.issue(NewToken::child_of(&who, "ci").expires(Expiry::Never)).await?;
    ///     assert_eq!(child.record.expires_at.is_none(), expected_never);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn children_may_outlive_creators(mut self, allow: bool) -> Self {
        self.children_may_outlive_creators = allow;
        self
    }

    /// Whether a created token may expire after its creator.
    pub fn get_children_may_outlive_creators(&self) -> bool {
        self.children_may_outlive_creators
    }

    /// The shortest and longest description allowed, in characters.
    pub fn get_description_chars(&self) -> (usize, usize) {
        self.description_chars
    }

    /// The cap on an owner's active tokens, if any.
    pub fn get_max_active_per_owner(&self) -> Option<u32> {
        self.max_active_per_owner
    }

    /// The lifetime of a token issued without an explicit expiry.
    pub fn get_default_lifetime(&self) -> Duration {
        self.default_lifetime
    }

    /// The longest lifetime, if limited.
    pub fn get_max_lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    /// Whether never-expiring tokens are allowed.
    pub fn allows_never(&self) -> bool {
        self.allow_never
    }

    /// The largest whole number of days a lifetime in days may have, if limited.
    pub fn max_days(&self) -> Option<i64> {
        self.max_lifetime.map(|d| d.whole_days())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.default_lifetime <= Duration::ZERO {
            return Err(ConfigError::Policy("the default lifetime must be positive"));
        }
        if self.max_active_per_owner == Some(0) {
            return Err(ConfigError::Policy(
                "a cap of 0 active tokens per owner would refuse every token; use None for no cap",
            ));
        }
        if self.idle_timeout.is_some_and(|t| !t.is_positive()) {
            return Err(ConfigError::Policy("the idle timeout must be positive"));
        }
        let (min, max) = self.description_chars;
        if min > max || max > MAX_DESCRIPTION_CHARS || max == 0 {
            return Err(ConfigError::Policy(
                "description lengths must satisfy min <= max, 0 < max <= 1024",
            ));
        }
        if let Some(max) = self.max_lifetime {
            if max < Duration::DAY {
                return Err(ConfigError::Policy(
                    "the maximum lifetime must be at least one day",
                ));
            }
            if self.default_lifetime > max {
                return Err(ConfigError::Policy(
                    "the default lifetime exceeds the maximum lifetime",
                ));
            }
        }
        Ok(())
    }
}
