//! Responding to a leak: revoking a batch of plaintexts found in the wild
//! ([`ApiTokens::revoke_leaked`]), as GitHub's secret scanning partners do.

use std::sync::Arc;

use serde::Serialize;

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use crate::error::Error;
use crate::store::token_store::TokenStore;
use crate::token::TokenId;

/// What [`ApiTokens::revoke_leaked`] found for one leaked string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeakOutcome {
    /// It was a live token of this issuer: it is revoked now (with what it created).
    WasLive,
    /// A token of this issuer that had expired: revoked too, for the record.
    WasExpired,
    /// A token of this issuer that was revoked already.
    AlreadyRevoked,
    /// Not a token of this issuer (malformed, unknown id, or the secret does not match).
    NotOurs,
}

impl LeakOutcome {
    /// Whether the string was a real token of this issuer (live or not): a true positive
    /// for a secret scanner.
    pub fn is_ours(self) -> bool {
        self != Self::NotOurs
    }
}

/// The report for one leaked string: what it was, and the token and owner when it was one
/// of this issuer's (so that the owner can be told). Never the string itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeakReport {
    /// What was found.
    pub outcome: LeakOutcome,
    /// The token's id, when it was one of this issuer's.
    pub token_id: Option<TokenId>,
    /// The token's owner, when it was one of this issuer's.
    pub owner: Option<Arc<str>>,
    /// How many of its successors (tokens that replaced it by rotation, and theirs) were
    /// revoked with it: whoever found the token could have rotated it.
    pub successors_revoked: u32,
}

/// The longest chain of successors followed from one leaked token.
const MAX_SUCCESSORS: u32 = 1_000;

impl<S: TokenStore> ApiTokens<S> {
    /// Revoke every token of this issuer among `leaked` (plaintexts found in the wild, in a
    /// public repository say) with the reason `leaked`, and report, in the same order, what
    /// each string was. Only a string whose secret matches is acted on: a string that merely
    /// looks like a token (a scanner's false positive, or someone reporting ids they do not
    /// hold) revokes nothing. Revoking a token revokes the tokens it created, and the tokens
    /// that replaced it by rotation (and what those created): anyone holding the leaked
    /// token could have rotated it into a token nobody has seen.
    ///
    /// ```
    /// use api_tokens::{ApiTokens, LeakOutcome, MemoryStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let leaked = tokens.issue(NewToken::new("alice", "ci")).await?;
    /// let found = [leaked.plaintext.expose_secret(), "dz_not_a_real_token"];
    /// let reports = tokens.revoke_leaked(&found).await?;
    /// assert_eq!(reports[0].outcome, LeakOutcome::WasLive);
    /// assert_eq!(reports[1].outcome, LeakOutcome::NotOurs);
    /// assert!(tokens.verify(found[0]).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn revoke_leaked(&self, leaked: &[&str]) -> Result<Vec<LeakReport>, Error> {
        self.observe_op(
            "revoke_leaked",
            None,
            self.revoke_leaked_unobserved(leaked),
            |reports| {
                reports
                    .iter()
                    .filter(|r| r.outcome == LeakOutcome::WasLive)
                    .map(|r| {
                        let mut e =
                            AuditEvent::new(self.now(), AuditKind::Revoked).reason(Some("leaked"));
                        e.token_id = r.token_id;
                        e.owner = r.owner.clone();
                        e
                    })
                    .collect()
            },
        )
        .await
    }

    async fn revoke_leaked_unobserved(&self, leaked: &[&str]) -> Result<Vec<LeakReport>, Error> {
        let mut reports = Vec::with_capacity(leaked.len());
        for presented in leaked {
            reports.push(self.revoke_one_leaked(presented).await?);
        }
        Ok(reports)
    }

    async fn revoke_one_leaked(&self, presented: &str) -> Result<LeakReport, Error> {
        let not_ours = LeakReport {
            outcome: LeakOutcome::NotOurs,
            token_id: None,
            owner: None,
            successors_revoked: 0,
        };
        let Ok(token) = self.format().parse(presented) else {
            return Ok(not_ours);
        };
        let Some(record) = self.inner.store.get(&token.id()).await? else {
            return Ok(not_ours);
        };
        if !(record.hash.ct_eq(&token.secret_hash()) && self.format().issued(&record.prefix)) {
            return Ok(not_ours);
        }
        let now = self.now();
        let outcome = if record.is_revoked() {
            LeakOutcome::AlreadyRevoked
        } else if record.is_expired(now) {
            LeakOutcome::WasExpired
        } else {
            LeakOutcome::WasLive
        };
        // Whoever holds a leaked token may have rotated it: its successors go too. Read
        // after the revocation, which no rotation can follow, so none is missed.
        let mut successors_revoked = 0;
        let mut next = Some(record.id);
        let mut first = true;
        while let Some(id) = next.take() {
            match self
                .revoke_checked(&record.owner, id, Some("leaked".into()), now)
                .await
            {
                Ok(()) if !first => successors_revoked += 1,
                // Revoked meanwhile by someone else: it is revoked either way.
                Ok(()) | Err(Error::AlreadyRevoked { .. }) => {}
                // The leaked token purged meanwhile (an ended one): its successor, read
                // before, is what may still be live (a purged record gains none).
                Err(Error::NotFound) if first => {
                    first = false;
                    next = record.successor;
                    continue;
                }
                // A successor gone: nothing further is left to revoke.
                Err(Error::NotFound) => break,
                Err(e) => return Err(e),
            }
            first = false;
            if successors_revoked >= MAX_SUCCESSORS {
                break;
            }
            next = self.inner.store.get(&id).await?.and_then(|r| r.successor);
        }
        Ok(LeakReport {
            outcome,
            token_id: Some(record.id),
            owner: Some(Arc::clone(&record.owner)),
            successors_revoked,
        })
    }
}
