//! Verifying presented tokens: [`ApiTokens::verify`] and [`ApiTokens::verify_with`].
//!
//! The steps, in order: parse (length, alphabet, prefix, checksum: no storage touched) →
//! SHA-256 of the secret → one store lookup by id (at once if the store can answer without
//! waiting, [`TokenStore::get_now`](crate::TokenStore::get_now)) → constant-time hash compare (against a
//! dummy when the id is unknown) → this issuer's? → revoked? → expired? → scopes and tenant
//! → record last use (at most once per interval, [`LastUseFailure`] deciding what a failed
//! write does) → the [`Principal`].

use std::future::Future;
use std::sync::Arc;

use time::OffsetDateTime;

use super::ApiTokens;
use crate::clock::to_stored_precision;
use crate::error::AuthError;
use crate::hash::TokenHash;
use crate::record::{Scopes, TokenRecord};
use crate::store::token_store::TokenStore;
use crate::token::TokenId;

/// Who a verified token acts for, and what it may do.
///
/// Holds the verified record behind an `Arc`: verification hands it over with one
/// reference-count increment, whatever the size of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    record: Arc<TokenRecord>,
}

impl Principal {
    /// The token's id.
    pub fn token_id(&self) -> TokenId {
        self.record.id
    }

    /// The user or organisation the token acts for.
    pub fn owner(&self) -> &str {
        &self.record.owner
    }

    /// The tenant the token is confined to, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.record.tenant.as_deref()
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The token's scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.record.scopes
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.record.scopes.contains(scope)
    }

    /// When the token expires, if ever.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.record.expires_at
    }

    /// The token's record as it was when verified (its `last_used_at` may lag by up to the
    /// last-use interval).
    pub fn record(&self) -> &TokenRecord {
        &self.record
    }
}

/// What a route requires of a token beyond being valid.
///
/// ```
/// use api_tokens::Requirements;
///
/// let needs = Requirements::scopes(&["tokens:write"]).tenant(Some("business_7"));
/// # let _ = needs;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Requirements<'a> {
    scopes: &'a [&'a str],
    tenant: Option<&'a str>,
}

impl<'a> Requirements<'a> {
    /// Nothing beyond a valid token.
    pub const NONE: Requirements<'static> = Requirements {
        scopes: &[],
        tenant: None,
    };

    /// The token must carry every one of `scopes`.
    pub const fn scopes(scopes: &'a [&'a str]) -> Self {
        Self {
            scopes,
            tenant: None,
        }
    }

    /// The token must belong to `tenant`, if one is given (a token without a tenant does not
    /// match any tenant).
    pub const fn tenant(mut self, tenant: Option<&'a str>) -> Self {
        self.tenant = tenant;
        self
    }
}

impl<S: TokenStore> ApiTokens<S> {
    /// Verify a presented token: valid, not revoked, not expired.
    pub fn verify<'a>(
        &'a self,
        presented: &'a str,
    ) -> impl Future<Output = Result<Principal, AuthError>> + Send + 'a {
        // The same future as `verify_with`, not one wrapped around it.
        self.verify_with(presented, &Requirements::NONE)
    }

    /// Verify a presented token and check that it meets `requirements`.
    ///
    /// ```
    /// use api_tokens::{ApiTokens, AuthError, MemoryStore, NewToken, Requirements};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let issued = tokens
    ///     .issue(NewToken::new("u1", "reader").tenant("b1").scopes(["tokens:read"]))
    ///     .await?;
    /// let t = issued.plaintext.expose_secret();
    ///
    /// tokens.verify_with(t, &Requirements::scopes(&["tokens:read"]).tenant(Some("b1"))).await?;
    /// let denied = tokens.verify_with(t, &Requirements::scopes(&["tokens:write"])).await;
    /// assert!(matches!(denied, Err(AuthError::InsufficientScope { .. })));
    /// let other = tokens.verify_with(t, &Requirements::NONE.tenant(Some("b2"))).await;
    /// assert!(matches!(other, Err(AuthError::WrongTenant)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn verify_with(
        &self,
        presented: &str,
        requirements: &Requirements<'_>,
    ) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let token = inner.format.parse(presented)?;
        let id = token.id();
        let presented_hash = token.secret_hash();

        let record = match inner.store.get_now(&id) {
            Some(answer) => answer,
            None => inner.store.get(&id).await,
        };
        let record = record.map_err(AuthError::Store)?;
        let record = match record {
            // A record of another issuer sharing the store is not this issuer's token, even
            // with a valid checksum and secret.
            Some(record)
                if record.hash.ct_eq(&presented_hash) && inner.format.issued(&record.prefix) =>
            {
                record
            }
            Some(_) => return Err(AuthError::Invalid),
            None => {
                // Same work as a wrong secret, so timing does not tell which ids exist.
                std::hint::black_box(TokenHash::DUMMY.ct_eq(&presented_hash));
                return Err(AuthError::Invalid);
            }
        };
        if let Some(revoked_at) = record.revoked_at {
            return Err(AuthError::Revoked { revoked_at });
        }
        // Compared at full precision, in integer nanoseconds (cheaper than date arithmetic
        // on every request); truncated to the stores' microseconds only if written.
        let now = inner.clock.now_unix_nanos();
        if let Some(expired_at) = record
            .expires_at
            .filter(|at| at.unix_timestamp_nanos() <= now)
        {
            return Err(AuthError::Expired { expired_at });
        }
        if !requirements
            .scopes
            .iter()
            .all(|s| record.scopes.contains(s))
        {
            let missing = requirements
                .scopes
                .iter()
                .filter(|s| !record.scopes.contains(s))
                .map(|s| (*s).to_owned())
                .collect();
            return Err(AuthError::InsufficientScope { missing });
        }
        // Stored tenants are valid identifiers, so an invalid one never matches.
        if let Some(tenant) = requirements.tenant
            && record.tenant.as_deref() != Some(tenant)
        {
            return Err(AuthError::WrongTenant);
        }
        if record.last_used_at.is_none_or(|last| {
            now - last.unix_timestamp_nanos() >= inner.last_use_interval.whole_nanoseconds()
        }) && let Err(e) = inner
            .store
            .record_last_use(&id, to_stored_precision(written_at(now, &*inner.clock)))
            .await
            && inner.last_use_failure == LastUseFailure::FailRequest
        {
            return Err(AuthError::Store(e));
        }
        Ok(Principal { record })
    }
}

/// `nanos` since the Unix epoch as a timestamp (a clock's `now` when it is out of range,
/// which a clock that agrees with itself never is).
fn written_at(nanos: i128, clock: &dyn crate::clock::Clock) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or_else(|_| clock.now())
}

/// What verification does when writing a token's last use fails (the token itself checked
/// out: its record was read, and it is valid).
///
/// Revocation is never weakened by either choice: a store that cannot be *read* always
/// fails verification closed. Set it with
/// [`ApiTokensBuilder::last_use_failure`](crate::ApiTokensBuilder::last_use_failure).
///
/// ```
/// use api_tokens::{ApiTokens, LastUseFailure, MemoryStore};
///
/// let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
///     .last_use_failure(LastUseFailure::ServeRequest)
///     .build()?;
/// assert_eq!(tokens.last_use_failure_policy(), LastUseFailure::ServeRequest);
/// # Ok::<(), api_tokens::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastUseFailure {
    /// Fail the request with the store's error (503 or 500), as if the store could not be
    /// read. The default: a store that cannot write may not be trusted to have kept the
    /// revocations either.
    #[default]
    FailRequest,
    /// Serve the request. The write is retried by the next verification of that token
    /// (its recorded last use is still older than the interval), so at most the precision
    /// of `last_used_at` suffers while the store cannot write.
    ServeRequest,
}
