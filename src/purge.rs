//! Deleting records of tokens that stopped working long ago.

use time::Duration;

use crate::error::{Error, FieldError, ValidationErrors};
use crate::service::ApiTokens;
use crate::store::TokenStore;

impl<S: TokenStore> ApiTokens<S> {
    /// Delete the records of tokens revoked or expired more than `retention` ago; returns
    /// how many. Keep a retention long enough for audits: a purged token's record is gone.
    pub async fn purge(&self, retention: Duration) -> Result<u64, Error> {
        let before = (!retention.is_negative())
            .then(|| self.now().checked_sub(retention))
            .flatten()
            .ok_or_else(|| {
                Error::Invalid(ValidationErrors(vec![FieldError::new(
                    "retention",
                    "must be zero or more and within the representable time range",
                )]))
            })?;
        Ok(self.inner.store.purge(before).await?)
    }
}
