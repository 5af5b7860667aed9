//! Revocation (one token by id, the token in use, or all of an owner's) and purging the
//! records of tokens that stopped working long ago.
//!
//! Revocation is immediate (the very next verification fails) and cannot be undone.

use time::{Duration, OffsetDateTime};

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use super::principal::Principal;
use crate::error::{Error, FieldError};
use crate::record::TokenRecord;
use crate::store::token_store::TokenStore;
use crate::store::{Change, RevokeAll};
use crate::token::TokenId;
use crate::validate::{check_reason, identifier};

impl<S: TokenStore> ApiTokens<S> {
    /// Revoke `owner`'s token `id`, with an optional reason (at most 1024 characters).
    ///
    /// Another owner's token, or another issuer's, is [`Error::NotFound`], exactly like an
    /// id that does not exist. A token already revoked is [`Error::AlreadyRevoked`] and
    /// keeps its first revocation.
    ///
    /// Every token it created ([`NewToken::child_of`](crate::NewToken::child_of)), and every
    /// token those created, is revoked with it, with the same reason (also when it was
    /// revoked already): a leaked token's children do not outlive it.
    pub async fn revoke(
        &self,
        owner: &str,
        id: TokenId,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        self.observe_op(
            "revoke",
            Some(id),
            self.revoke_unobserved(owner, id, reason),
            |()| {
                vec![
                    AuditEvent::new(self.now(), AuditKind::Revoked)
                        .token(id)
                        .owner(owner)
                        .reason(reason),
                ]
            },
        )
        .await
    }

    async fn revoke_unobserved(
        &self,
        owner: &str,
        id: TokenId,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        identifier("owner", owner)?;
        let reason = check_reason(reason)?;
        self.revoke_checked(owner, id, reason, self.now()).await
    }

    /// Revoke the presented token itself (the token API's `DELETE /auth/token`), and the
    /// tokens it created, as [`revoke`](Self::revoke) does. The token must verify first
    /// (from any address: whoever holds the secret may end it, also outside its IP
    /// allowlist); its owner's other tokens keep working. Returns who it was.
    pub async fn revoke_presented(
        &self,
        presented: &str,
        reason: Option<&str>,
    ) -> Result<Principal, Error> {
        let work = self.revoke_presented_unobserved(presented, reason);
        self.observe_op("revoke_presented", None, work, |who| {
            vec![
                AuditEvent::new(self.now(), AuditKind::Revoked)
                    .token(who.token_id())
                    .owner(who.owner())
                    .reason(reason),
            ]
        })
        .await
    }

    async fn revoke_presented_unobserved(
        &self,
        presented: &str,
        reason: Option<&str>,
    ) -> Result<Principal, Error> {
        let reason = check_reason(reason)?;
        let principal = self
            .verify_with(presented, &super::verify::Requirements::ANYWHERE)
            .await?;
        let now = self.now();
        self.revoke_checked(principal.owner(), principal.token_id(), reason, now)
            .await?;
        Ok(principal)
    }

    /// Revoke every active token of `owner` from this issuer (only those of `tenant`, if
    /// given) in one step. Returns how many were revoked.
    pub async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        reason: Option<&str>,
    ) -> Result<u64, Error> {
        let work = self.revoke_all_unobserved(owner, tenant, reason);
        self.observe_op("revoke_all", None, work, |n| {
            vec![
                AuditEvent::new(self.now(), AuditKind::RevokedAll)
                    .owner(owner)
                    .reason(Some(format!(
                        "{n} revoked{}",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    ))),
            ]
        })
        .await
    }

    async fn revoke_all_unobserved(
        &self,
        owner: &str,
        tenant: Option<&str>,
        reason: Option<&str>,
    ) -> Result<u64, Error> {
        identifier("owner", owner)?;
        if let Some(tenant) = tenant {
            identifier("tenant", tenant)?;
        }
        let reason = check_reason(reason)?;
        let all = RevokeAll::new(
            self.format().prefix(),
            owner,
            tenant,
            self.now(),
            reason.as_deref(),
        );
        Ok(self.inner.store.revoke_all(&all).await?)
    }

    /// Delete the records of tokens revoked or expired more than `retention` ago; returns
    /// how many. Keep a retention long enough for audits: a purged token's record is gone.
    /// Purging is store-wide: it removes long-dead records of every issuer sharing the store.
    pub async fn purge(&self, retention: Duration) -> Result<u64, Error> {
        self.observe_op("purge", None, self.purge_unobserved(retention), |n| {
            vec![AuditEvent::new(self.now(), AuditKind::Purged).reason(Some(format!("{n} purged")))]
        })
        .await
    }

    async fn purge_unobserved(&self, retention: Duration) -> Result<u64, Error> {
        let before = (!retention.is_negative())
            .then(|| self.now().checked_sub(retention))
            .flatten()
            .ok_or_else(|| {
                FieldError::new(
                    "retention",
                    "must be zero or more and within the representable time range",
                )
            })?;
        Ok(self.inner.store.purge(before).await?)
    }

    /// Revoke `owner`'s token `id` of this issuer at `now`, in one atomic step, then the
    /// tokens it created, in another. Together they leave nothing it created alive: once
    /// the token is revoked, the store refuses to insert a token it creates
    /// (`insert_child`), and the second step revokes every one inserted before.
    pub(super) async fn revoke_checked(
        &self,
        owner: &str,
        id: TokenId,
        reason: Option<Box<str>>,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let prefix = self.format().prefix();
        let mut outcome = Err(Error::NotFound);
        let mut revoke = |r: &mut TokenRecord| {
            if *r.owner != *owner || *r.prefix != *prefix {
                return false;
            }
            if let Some(revoked_at) = r.revoked_at {
                outcome = Err(Error::AlreadyRevoked { revoked_at });
                return false;
            }
            r.revoked_at = Some(now);
            r.revocation_reason = reason.clone();
            outcome = Ok(());
            true
        };
        self.inner
            .store
            .update(&id, &mut Change::new(&mut revoke))
            .await?;
        if matches!(outcome, Ok(()) | Err(Error::AlreadyRevoked { .. })) {
            let all = RevokeAll::new(prefix, owner, None, now, reason.as_deref());
            self.inner.store.revoke_descendants(&id, &all).await?;
        }
        outcome
    }
}
