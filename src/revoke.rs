//! Revocation: one token by id, the token in use, or all of an owner's.
//!
//! Revocation is immediate (the very next verification fails) and cannot be undone.

use crate::error::Error;
use crate::record::check_reason;
use crate::service::ApiTokens;
use crate::store::{RevokeOutcome, TokenStore};
use crate::token::TokenId;
use crate::verifier::Principal;

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

    /// Revoke the presented token itself (the seeds' `DELETE /auth/token`). The token must
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
}
