//! Verifying presented tokens: [`ApiTokens::verify`] and [`ApiTokens::verify_with`].
//!
//! The steps, in order: parse (length, alphabet, prefix, checksum: no storage touched) →
//! one store lookup by id (lent in place if the store can answer without waiting,
//! [`TokenStore::read_now`](crate::TokenStore::read_now)) → SHA-256 of the secret →
//! constant-time hash compare (against a dummy when the id is unknown) → this issuer's? →
//! revoked? → suspended? → expired? → idle? → client address → scopes and tenant → the
//! [`Principal`] (a copy of what a route needs) → rate limits (the token's, then the
//! owner's) → one use consumed (tokens with a usage limit) → record last use (at most once per interval, [`LastUseFailure`] deciding what a
//! failed write does). Expiry is compared with the clock's cheap reading
//! ([`Clock::recent_unix_nanos`](crate::Clock::recent_unix_nanos)), and with the precise
//! time within a second of it.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::Poll;

use super::ApiTokens;
use super::gate::{Limits, RateNow};
use super::principal::Principal;
use crate::clock::to_stored_precision;
use crate::error::{AuthError, StoreError};
use crate::hash::{SecretMessage, TokenHash};
use crate::limits::PRECISE_CLOCK_WITHIN;
use crate::record::{
    Backoff, CellMoved, Lent, RateCell, RateLimit, RecordRef, TokenRecord, Verifiable,
};
use crate::store::token_store::TokenStore;
use crate::token::TokenId;

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
    client_ip: Option<IpAddr>,
    /// Skip the IP allowlist, the rate limits and the usage count (revoking the presented
    /// token: whoever holds the secret may end it, from anywhere, whenever).
    any_address: bool,
}

impl<'a> Requirements<'a> {
    /// Nothing beyond a valid token.
    pub const NONE: Requirements<'static> = Requirements {
        scopes: &[],
        tenant: None,
        client_ip: None,
        any_address: false,
    };

    /// Nothing, not even an allowed address.
    pub(crate) const ANYWHERE: Requirements<'static> = Requirements {
        any_address: true,
        ..Self::NONE
    };

    /// The token must carry every one of `scopes`.
    pub const fn scopes(scopes: &'a [&'a str]) -> Self {
        Self {
            scopes,
            tenant: None,
            client_ip: None,
            any_address: false,
        }
    }

    /// The request comes from `address` (the client's, as the integrations find it): a
    /// token with an [IP allowlist](crate::IpAllowlist) verifies only from an address on
    /// it, and never when no address is given.
    pub const fn client_ip(mut self, address: Option<IpAddr>) -> Self {
        self.client_ip = address;
        self
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
    pub fn verify_with<'a>(
        &'a self,
        presented: &'a str,
        requirements: &'a Requirements<'a>,
    ) -> impl Future<Output = Result<Principal, AuthError>> + Send + 'a {
        // Nothing runs before the first poll. A verification the store answers at once
        // finishes within it, so the future holds no more than these references (it is
        // moved when it is pinned); whatever has to wait for the store is boxed.
        let mut waiting: Option<Waiting<'a>> = None;
        std::future::poll_fn(move |cx| {
            let waiting = match &mut waiting {
                Some(waiting) => waiting,
                None => match self.verify_at_once(presented, requirements) {
                    AtOnce::Done(result) => return Poll::Ready(self.reported(presented, result)),
                    AtOnce::Wait(future) => waiting.insert(future),
                },
            };
            waiting
                .as_mut()
                .poll(cx)
                .map(|result| self.reported(presented, result))
        })
    }

    /// `result`, after telling whoever listens (audit, tracing, metrics).
    #[inline]
    fn reported(
        &self,
        presented: &str,
        result: Result<Principal, AuthError>,
    ) -> Result<Principal, AuthError> {
        if self.observed() {
            self.verified(presented, &result);
        }
        result
    }

    /// As much of a verification as can be done without waiting: all of it when the store
    /// lends the record at once and no last use is due.
    fn verify_at_once<'a>(
        &'a self,
        presented: &str,
        requirements: &'a Requirements<'a>,
    ) -> AtOnce<'a> {
        let inner = &*self.inner;
        // The one copy of the secret, decoded into place and wiped when dropped; never moved.
        let mut secret = SecretMessage::new(inner.format.secret_bytes());
        let id = match inner.format.parse_secret(presented, &mut secret) {
            Ok(id) => id,
            Err(e) => return AtOnce::Done(Err(e.into())),
        };
        // The record is looked up before the secret is hashed, so that its cache misses
        // overlap the hashing; a store in memory lends it in place, with the cell its rate
        // limit counts on. A cell frozen by a replacement of the record (a last use written,
        // say) means reading the new version, a compare-and-swap away.
        let mut moved = false;
        let mut read = inner.store.read_counted_now(&id, |record, cell| {
            self.check_lent(record, cell, &mut moved, || secret.hash(), requirements)
        });
        if moved {
            read = self.read_moved(&id, &mut secret, requirements);
        }
        match read {
            Some(Ok(checked)) => self.finish(id, checked),
            Some(Err(e)) => AtOnce::Done(Err(AuthError::Store(e))),
            None => {
                // Hashed before waiting for the store (the secret is wiped as this returns).
                let presented_hash = secret.hash();
                AtOnce::Wait(Box::pin(async move {
                    let started = std::time::Instant::now();
                    let record = self.inner.store.get(&id).await;
                    self.store_waited(started.elapsed());
                    let record = record.map_err(AuthError::Store)?;
                    let checked = self.check(
                        record.as_deref(),
                        None,
                        &mut false,
                        || presented_hash,
                        requirements,
                    );
                    match self.finish(id, checked) {
                        AtOnce::Done(result) => result,
                        AtOnce::Wait(write) => write.await,
                    }
                }))
            }
        }
    }

    /// The principal of a checked token, once it passed its rate limits and consumed a use
    /// (if it counts them), and after writing its last use if that is due.
    #[inline]
    fn finish(&self, id: TokenId, checked: Result<Checked, AuthError>) -> AtOnce<'_> {
        let Checked {
            principal,
            last_use_due,
            counts_uses,
            rate_limit,
            gated,
        } = match checked {
            Err(e) => return AtOnce::Done(Err(e)),
            Ok(checked) => checked,
        };
        let mut limits = Limits {
            token: rate_limit.filter(|_| gated),
            owner: self.inner.owner_rate_limit.filter(|_| gated),
        };
        let counts_uses = counts_uses && gated;
        if limits.any() {
            match self.rate_now(id, &principal, limits) {
                RateNow::Passed => {
                    limits = Limits {
                        token: None,
                        owner: None,
                    }
                }
                RateNow::Refused(e) => return AtOnce::Done(Err(e)),
                RateNow::Wait(left) => limits = left,
            }
        }
        if limits.any() || counts_uses {
            return AtOnce::Wait(Box::pin(self.pass_slowly(
                id,
                principal,
                limits,
                counts_uses,
                last_use_due,
            )));
        }
        if last_use_due {
            AtOnce::Wait(Box::pin(self.write_last_use(id, principal)))
        } else {
            AtOnce::Done(Ok(principal))
        }
    }

    /// Write a verified token's last use, then hand over its principal (or the store's
    /// error, if the policy says a failed write fails the request).
    pub(super) async fn write_last_use(
        &self,
        id: TokenId,
        principal: Principal,
    ) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let at = to_stored_precision(inner.clock.now());
        match inner.store.record_last_use(&id, at).await {
            Err(e) if inner.last_use_failure == LastUseFailure::FailRequest => {
                Err(AuthError::Store(e))
            }
            _ => Ok(principal),
        }
    }

    /// Count a checked token's request under `limit` on `cell`, the count its store keeps
    /// for its rate limit, if the limiter counts on cells.
    #[inline]
    fn count_on(&self, cell: &RateCell, limit: RateLimit) -> Counted {
        let Some(limiter) = &self.inner.rate_limiter else {
            return Counted::ByKey;
        };
        match limiter.check_cell(cell, limit) {
            None => Counted::ByKey,
            Some(Err(CellMoved)) => Counted::Moved,
            Some(Ok(decision)) => match super::gate::refused(Ok(decision)) {
                Ok(()) => Counted::Passed,
                Err(e) => Counted::Refused(e),
            },
        }
    }

    /// Read and check the record again, for as long as its rate count's cell is frozen by
    /// a replacement of the record (a last use written, say): the new version is a
    /// compare-and-swap away.
    #[cold]
    #[inline(never)]
    fn read_moved(
        &self,
        id: &TokenId,
        secret: &mut SecretMessage,
        requirements: &Requirements<'_>,
    ) -> Option<Result<Result<Checked, AuthError>, StoreError>> {
        let mut backoff = Backoff::default();
        loop {
            backoff.wait();
            if backoff.exhausted() {
                // Not a replacement that will finish (a limiter that always says so, say):
                // fail closed rather than wait for ever, or count elsewhere.
                return Some(Ok(Err(AuthError::RateLimiterUnavailable)));
            }
            let mut moved = false;
            let read = self.inner.store.read_counted_now(id, |record, cell| {
                self.check_lent(record, cell, &mut moved, || secret.hash(), requirements)
            });
            if !moved {
                return read;
            }
        }
    }

    /// [`check`](Self::check) on a record in whichever form its store lent it (one copy
    /// of the checks for each form, so no check branches on it).
    #[inline]
    fn check_lent(
        &self,
        record: Option<RecordRef<'_>>,
        cell: Option<&RateCell>,
        moved: &mut bool,
        presented_hash: impl FnOnce() -> TokenHash,
        requirements: &Requirements<'_>,
    ) -> Result<Checked, AuthError> {
        match record.map(RecordRef::lent) {
            Some(Lent::Compact(r)) => {
                self.check(Some(r), cell, moved, presented_hash, requirements)
            }
            Some(Lent::Full(r)) => self.check(Some(r), cell, moved, presented_hash, requirements),
            None => self.check::<TokenRecord>(None, cell, moved, presented_hash, requirements),
        }
    }

    /// Every check of a record against a presented secret's hash and the requirements, in
    /// order; on success, the principal and whether its last use is due.
    ///
    /// Last, a token with a rate limit is counted on `cell` if its store lent one (and the
    /// limiter counts on cells); a frozen cell sets `moved` (the answer is then to be thrown
    /// away, and the record read again).
    fn check<V: Verifiable>(
        &self,
        record: Option<&V>,
        cell: Option<&RateCell>,
        moved: &mut bool,
        presented_hash: impl FnOnce() -> TokenHash,
        requirements: &Requirements<'_>,
    ) -> Result<Checked, AuthError> {
        let inner = &*self.inner;
        let Some(record) = record else {
            // Same work as a wrong secret (hash and compare), so timing tells little about
            // which ids exist.
            std::hint::black_box(TokenHash::DUMMY.ct_eq(&presented_hash()));
            return Err(AuthError::Invalid);
        };
        // A record of another issuer sharing the store is not this issuer's token, even with
        // a valid checksum and secret.
        if !(record.hash().ct_eq(&presented_hash()) && inner.format.issued(record.prefix())) {
            return Err(AuthError::Invalid);
        }
        if let Some(revoked_at) = record.revoked_at() {
            return Err(AuthError::Revoked { revoked_at });
        }
        if let Some(suspended_at) = record.suspended_at() {
            return Err(AuthError::Suspended { suspended_at });
        }
        // Compared in integer nanoseconds (cheaper than date arithmetic on every request),
        // against the clock's cheap reading, which is never ahead of the time; against the
        // precise time when the token expires within a second of it.
        let clock = &*inner.clock;
        let recent = clock.recent_unix_nanos();
        if record.expires_at_nanos().is_some_and(|at| {
            at <= recent
                || (at - recent <= PRECISE_CLOCK_WITHIN.whole_nanoseconds()
                    && at <= clock.now_unix_nanos())
        }) {
            // Refused on the time compared, whatever the report of it says.
            let expired_at = record
                .expires_at()
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            return Err(AuthError::Expired { expired_at });
        }
        if let Some(idle) = inner.policy.get_idle_timeout()
            && recent - record.idle_since_nanos() > idle.whole_nanoseconds()
        {
            return Err(AuthError::Idle {
                idle_since: record.idle_since(),
            });
        }
        // Before scopes and tenant: from a refused address, nothing more about the token is
        // told.
        if let Some(allowed) = record.allowed_ips()
            && !requirements.any_address
            && !requirements.client_ip.is_some_and(|ip| allowed.allows(ip))
        {
            return Err(AuthError::IpNotAllowed);
        }
        if !requirements
            .scopes
            .iter()
            .all(|s| record.scopes().contains(s))
        {
            let missing = requirements
                .scopes
                .iter()
                .filter(|s| !record.scopes().contains(s))
                .map(|s| (*s).to_owned())
                .collect();
            return Err(AuthError::InsufficientScope { missing });
        }
        // Stored tenants are valid identifiers, so an invalid one never matches.
        if let Some(tenant) = requirements.tenant
            && record.tenant() != Some(tenant)
        {
            return Err(AuthError::WrongTenant);
        }
        // Due once the interval has passed by the cheap reading (which can only make the
        // write come a tick later); written at the precise time.
        let last_use_due = record
            .last_used_at_nanos()
            .is_none_or(|last| recent - last >= inner.last_use_interval.whole_nanoseconds());
        // Ending the token (`revoke_presented`) is never limited.
        let gated = !requirements.any_address;
        let mut rate_limit = record.rate_limit();
        if let (Some(cell), Some(limit), true) = (cell, rate_limit, gated) {
            match self.count_on(cell, limit) {
                Counted::ByKey => {}
                Counted::Passed => rate_limit = None,
                Counted::Refused(e) => return Err(e),
                Counted::Moved => {
                    *moved = true;
                    return Err(AuthError::Invalid);
                }
            }
        }
        Ok(Checked {
            principal: Principal::of(record),
            last_use_due,
            counts_uses: record.counts_uses(),
            rate_limit,
            gated,
        })
    }
}

/// The part of a verification that waits for the store.
type Waiting<'a> = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send + 'a>>;

/// How far a verification got without waiting.
enum AtOnce<'a> {
    /// All the way.
    Done(Result<Principal, AuthError>),
    /// The rest waits for the store.
    Wait(Waiting<'a>),
}

/// What counting a request on a record's cell came to.
enum Counted {
    /// The limiter counts by key: the limit is left for it.
    ByKey,
    /// Counted, within the limit.
    Passed,
    /// Refused (over the limit).
    Refused(AuthError),
    /// The cell is frozen by a replacement of the record: read it again.
    Moved,
}

/// A token that passed every check: who it acts for, whether its last use is due, and the
/// gates it has still to pass.
struct Checked {
    principal: Principal,
    last_use_due: bool,
    counts_uses: bool,
    rate_limit: Option<RateLimit>,
    /// Whether the gates apply (not when the token is being revoked by its holder).
    gated: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn the_future_of_a_verification_holds_only_references() {
        // Moving it into place when it is pinned must stay a few register moves; a
        // verification that waits boxes what it waits for instead.
        let tokens = ApiTokens::new(MemoryStore::new(), "dz").expect("a valid prefix");
        let future = tokens.verify_with("dz_x", &Requirements::NONE);
        assert!(std::mem::size_of_val(&future) <= 64);
    }
}
