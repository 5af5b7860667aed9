//! Revocation (one token by id, the token in use, or all of an owner's) and purging the
//! records of tokens that stopped working long ago.
//!
//! Revocation is immediate (the very next verification fails) and cannot be undone.

use time::Duration;

use super::ApiTokens;
use super::verify::Principal;
use crate::error::{Error, FieldError};
use crate::store::RevokeOutcome;
use crate::store::token_store::TokenStore;
use crate::token::TokenId;
use crate::validate::check_reason;

impl<S: TokenStore> ApiTokens<S> {
    /// Revoke `owner`'s token `id`, with an optional reason (at most 1024 characters).
    ///
    /// Another owner's token is [`Error::NotFound`], exactly like an id that does not exist.
    /// A token already revoked is [`Error::AlreadyRevoked`] and keeps its first revocation.
    pub async fn revoke(
        &self,
        owner: &str,
        id: TokenId,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let reason = check_reason(reason)?;
        let now = self.now();
        match self
            .inner
            .store
            .revoke(&id, owner, now, reason.as_deref())
            .await?
        {
            RevokeOutcome::Revoked => Ok(()),
            RevokeOutcome::AlreadyRevoked(revoked_at) => Err(Error::AlreadyRevoked { revoked_at }),
            RevokeOutcome::NotFound => Err(Error::NotFound),
        }
    }

    /// Revoke the presented token itself (the token API's `DELETE /auth/token`). The token must
    /// verify first; its owner's other tokens keep working. Returns who it was.
    pub async fn revoke_presented(
        &self,
        presented: &str,
        reason: Option<&str>,
    ) -> Result<Principal, Error> {
        let reason = check_reason(reason)?;
        let principal = self.verify(presented).await?;
        let now = self.now();
        match self
            .inner
            .store
            .revoke(
                &principal.token_id(),
                principal.owner(),
                now,
                reason.as_deref(),
            )
            .await?
        {
            RevokeOutcome::Revoked => Ok(principal),
            RevokeOutcome::AlreadyRevoked(revoked_at) => Err(Error::AlreadyRevoked { revoked_at }),
            RevokeOutcome::NotFound => Err(Error::NotFound),
        }
    }

    /// Revoke every active token of `owner` (only those of `tenant`, if given) in one call.
    /// Returns how many were revoked.
    pub async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        reason: Option<&str>,
    ) -> Result<u64, Error> {
        let reason = check_reason(reason)?;
        let now = self.now();
        Ok(self
            .inner
            .store
            .revoke_all(owner, tenant, now, reason.as_deref())
            .await?)
    }

    /// Delete the records of tokens revoked or expired more than `retention` ago; returns
    /// how many. Keep a retention long enough for audits: a purged token's record is gone.
    pub async fn purge(&self, retention: Duration) -> Result<u64, Error> {
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
}
