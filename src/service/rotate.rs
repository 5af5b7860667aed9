//! Rotation: a like-for-like replacement of a token, the old one living on for a grace
//! period.

use time::{Duration, OffsetDateTime};

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use super::issue::{Draft, Issued};
use crate::error::{Error, FieldError};
use crate::record::TokenRecord;
use crate::store::Change;
use crate::store::token_store::TokenStore;
use crate::token::TokenId;
use crate::validate::identifier;

/// How many times a rotation is attempted when the token changes between the read that
/// shapes the successor and the atomic step that writes it.
const ATTEMPTS: usize = 4;

impl<S: TokenStore> ApiTokens<S> {
    /// Rotate `owner`'s token `id`: issue a replacement with the same owner, tenant, name,
    /// description, scopes, metadata, address allowlist, rate limit and creator, and let the
    /// old token live only until now + `grace` (a zero grace revokes it at once, with the
    /// reason `rotated`). A token's counted uses move to the replacement: the old one keeps
    /// none (so it stops at once, grace or not), and rotating never adds uses.
    ///
    /// The replacement gets a lifetime as long as the old token's was (capped by the policy,
    /// and, for a token created by another, by its creator's expiry unless the policy lets
    /// [children outlive creators](crate::TokenPolicy::children_may_outlive_creators)), or
    /// never expires if the old one never did and the policy still allows it. Being created
    /// by the same token, it is revoked, suspended and narrowed with the old one's siblings.
    ///
    /// Rotation is one atomic step in the store, so it is linearizable with revocation: if
    /// the old token was revoked (or expired) first, rotating it fails with
    /// [`Error::NotActive`] and no successor exists; a token has at most one successor, so
    /// rotating a token again during its grace period fails with
    /// [`Error::AlreadyRotated`]; and a concurrent `revoke_all` of the owner either comes
    /// first (the rotation fails) or revokes the successor too. A suspended token, or one
    /// idle past the policy's timeout, is [`Error::NotActive`]: rotation never revives a
    /// token. The successor is made from the old token as the atomic step finds it, so an
    /// edit or a suspension that lands meanwhile is never lost.
    pub async fn rotate(&self, owner: &str, id: TokenId, grace: Duration) -> Result<Issued, Error> {
        self.observe_op(
            "rotate",
            Some(id),
            self.rotate_unobserved(owner, id, grace),
            |next| {
                vec![
                    AuditEvent::new(next.record.created_at, AuditKind::Rotated)
                        .token(id)
                        .owner(next.record.owner.clone())
                        .reason(Some(format!("replaced by {}", next.record.id))),
                ]
            },
        )
        .await
    }

    async fn rotate_unobserved(
        &self,
        owner: &str,
        id: TokenId,
        grace: Duration,
    ) -> Result<Issued, Error> {
        identifier("owner", owner)?;
        if grace.is_negative() {
            return Err(FieldError::new("grace", "must not be negative").into());
        }
        for _ in 0..ATTEMPTS {
            match self.rotate_once(owner, id, grace).await {
                Err(Error::Conflict) => continue,
                done => return done,
            }
        }
        Err(Error::Conflict)
    }

    /// One attempt: read the token, shape its successor, and let the store's atomic step
    /// write both if the token is still as read (`Error::Conflict` otherwise).
    async fn rotate_once(
        &self,
        owner: &str,
        id: TokenId,
        grace: Duration,
    ) -> Result<Issued, Error> {
        let too_far = || FieldError::new("grace", "reaches beyond the representable time range");
        let now = self.now();
        let prefix = self.format().prefix();
        let old = match self.inner.store.get(&id).await? {
            Some(r) if *r.owner == *owner && *r.prefix == *prefix => r,
            _ => return Err(Error::NotFound),
        };
        let mut expires_at = self.successor_expiry(&old, now)?;
        if let Some(creator) = old.created_by
            && !self.inner.policy.get_children_may_outlive_creators()
            && let Some(limit) = self
                .inner
                .store
                .get(&creator)
                .await?
                .and_then(|c| c.expires_at)
        {
            expires_at = Some(expires_at.map_or(limit, |at| at.min(limit)));
        }
        let old_until = now.checked_add(grace).ok_or_else(too_far)?;
        let draft = Draft {
            owner: old.owner.clone(),
            tenant: old.tenant.clone(),
            name: old.name.clone(),
            description: old.description.clone(),
            scopes: old.scopes.clone(),
            expires_at,
            created_by: old.created_by,
            metadata: old.metadata.clone(),
            allowed_ips: old.allowed_ips.clone(),
            // The uses left move to the successor (the old token keeps none, so a rotation
            // never adds uses); the rate limit is copied.
            usage: old.usage.clone(),
            rate_limit: old
                .rate_limit
                .map(|l| l.shared_with(l.bucket().unwrap_or(old.id))),
        };
        let (plaintext, record) = self.generate(draft, now)?;
        let successor = record.id;
        let idle = self.inner.policy.get_idle_timeout();
        let mut outcome = Err(Error::NotFound);
        let mut retire = |r: &mut TokenRecord| {
            outcome = if *r.owner != *owner || *r.prefix != *prefix {
                Err(Error::NotFound)
            } else if !r.is_active(now)
                || r.suspended_at.is_some()
                || idle.is_some_and(|idle| now - r.last_used_at.unwrap_or(r.created_at) > idle)
            {
                Err(Error::NotActive)
            } else if r.successor.is_some() {
                Err(Error::AlreadyRotated)
            } else if !same_shape(r, &old) {
                Err(Error::Conflict)
            } else {
                Ok(())
            };
            if outcome.is_err() {
                return false;
            }
            r.successor = Some(successor);
            if let Some(usage) = &mut r.usage {
                usage.remaining = 0;
                usage.refill = None;
            }
            if grace.is_zero() {
                r.revoked_at = Some(now);
                r.revocation_reason = Some("rotated".into());
            } else {
                r.expires_at = Some(r.expires_at.map_or(old_until, |at| at.min(old_until)));
            }
            true
        };
        let store = &self.inner.store;
        let mut change = Change::new(&mut retire);
        // Under a cap, the successor needs a free slot unless the rotation ends the old
        // token at once: a grace period must not let rotations multiply live tokens.
        let found = match self.inner.policy.get_max_active_per_owner() {
            None => store.rotate(&id, &mut change, &record).await?,
            Some(cap) => match store
                .rotate_capped(&id, &mut change, &record, cap, now)
                .await?
            {
                Some(false) => return Err(Error::TooManyTokens { limit: cap }),
                found => found.is_some(),
            },
        };
        if !found {
            return Err(Error::NotFound);
        }
        outcome.map(|()| Issued { plaintext, record })
    }

    /// The expiry of a successor made at `now` for `old`: as long a life as the old token
    /// had, within the policy.
    fn successor_expiry(
        &self,
        old: &TokenRecord,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, Error> {
        let too_far = || FieldError::new("grace", "reaches beyond the representable time range");
        let policy = self.inner.policy;
        Ok(match old.expires_at {
            Some(at) => {
                let lifetime = at - old.created_at;
                let lifetime = policy
                    .get_max_lifetime()
                    .map_or(lifetime, |m| lifetime.min(m));
                Some(now.checked_add(lifetime).ok_or_else(too_far)?)
            }
            None if policy.allows_never() => None,
            None => Some(
                now.checked_add(policy.get_default_lifetime())
                    .ok_or_else(too_far)?,
            ),
        })
    }
}

/// Whether `current` still has every field the successor copied from `read`.
fn same_shape(current: &TokenRecord, read: &TokenRecord) -> bool {
    current.tenant == read.tenant
        && current.name == read.name
        && current.description == read.description
        && current.scopes == read.scopes
        && current.expires_at == read.expires_at
        && current.created_by == read.created_by
        && current.metadata == read.metadata
        && current.allowed_ips == read.allowed_ips
        && current.usage == read.usage
        && current.rate_limit == read.rate_limit
}
