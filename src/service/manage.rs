//! Changing a live token: editing it ([`ApiTokens::edit`]), and suspending and resuming it
//! ([`ApiTokens::suspend`], [`ApiTokens::resume`]). Each is one atomic step in the store for
//! the token, then one for the tokens it created (which never hold more than it does: they
//! are narrowed, cut and suspended with it). Both steps are safe to repeat: after a
//! failure, calling again finishes the second.

use time::OffsetDateTime;

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use crate::clock::{in_utc, to_stored_precision};
use crate::error::{Error, FieldError, ValidationErrors};
use crate::limits::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::record::{Metadata, Scopes, TokenInfo, TokenRecord};
use crate::store::token_store::TokenStore;
use crate::store::{Change, Descendants};
use crate::token::TokenId;
use crate::validate::{check_prose, check_text, identifier};

/// What to change of a token ([`ApiTokens::edit`]): only the fields set. A token can be
/// renamed, described, narrowed and shortened, never widened or lengthened: scopes must
/// be a subset of the token's, and a new expiry no later than its current one (a token
/// that never expires can be given one).
///
/// ```
/// use api_tokens::TokenEdit;
/// use time::macros::datetime;
///
/// let edit = TokenEdit::new()
///     .name("deploy (read only)")
///     .scopes(["tokens:read"])
///     .expires_at(datetime!(2026-06-01 0:00 UTC));
/// # let _ = edit;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TokenEdit {
    name: Option<String>,
    description: Option<Option<String>>,
    scopes: Option<Vec<String>>,
    expires_at: Option<OffsetDateTime>,
    metadata: Option<Option<serde_json::Value>>,
}

impl TokenEdit {
    /// Change nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new name (trimmed, 1–255 characters).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A new description; `None` (or blank) removes it.
    pub fn description(mut self, description: Option<String>) -> Self {
        self.description = Some(description);
        self
    }

    /// Fewer scopes: every one must be on the token already.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// An earlier expiry (in the future, no later than the current one).
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// New metadata; `None` removes it.
    pub fn metadata(mut self, metadata: Option<serde_json::Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// An edit, validated: what to write.
struct Checked {
    name: Option<Box<str>>,
    description: Option<Option<Box<str>>>,
    scopes: Option<Scopes>,
    expires_at: Option<OffsetDateTime>,
    metadata: Option<Option<Metadata>>,
}

impl<S: TokenStore> ApiTokens<S> {
    /// Edit `owner`'s token `id` as `edit` says, in one atomic step, and return it as it now
    /// is. Widening its scopes or lengthening its life is [`Error::Invalid`] naming the field
    /// (422); a revoked or expired token is [`Error::NotActive`] (409); another owner's is
    /// [`Error::NotFound`].
    ///
    /// ```
    /// use api_tokens::{ApiTokens, Error, MemoryStore, NewToken, TokenEdit};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let id = tokens.issue(NewToken::new("u1", "ci").scopes(["a", "b"])).await?.record.id;
    /// let info = tokens.edit("u1", id, &TokenEdit::new().name("ci (a only)").scopes(["a"])).await?;
    /// assert_eq!((&*info.name, info.scopes.len()), ("ci (a only)", 1));
    /// let wider = tokens.edit("u1", id, &TokenEdit::new().scopes(["a", "b"])).await;
    /// assert!(matches!(wider, Err(Error::Invalid(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn edit(
        &self,
        owner: &str,
        id: TokenId,
        edit: &TokenEdit,
    ) -> Result<TokenInfo, Error> {
        self.observe_op(
            "edit",
            Some(id),
            self.edit_unobserved(owner, id, edit),
            |info| {
                vec![
                    AuditEvent::new(self.now(), AuditKind::Edited)
                        .token(id)
                        .owner(info.owner.clone()),
                ]
            },
        )
        .await
    }

    async fn edit_unobserved(
        &self,
        owner: &str,
        id: TokenId,
        edit: &TokenEdit,
    ) -> Result<TokenInfo, Error> {
        identifier("owner", owner)?;
        let now = self.now();
        let checked = self.check_edit(edit, now)?;
        let prefix = self.format().prefix();
        let mut outcome = Err(Error::NotFound);
        let mut apply = |r: &mut TokenRecord| {
            outcome = (|| {
                if *r.owner != *owner || *r.prefix != *prefix {
                    return Err(Error::NotFound);
                }
                if !r.is_active(now) {
                    return Err(Error::NotActive);
                }
                let mut errors = Vec::new();
                if let Some(scopes) = &checked.scopes
                    && !r.scopes.contains_all(scopes)
                {
                    let wider: Vec<&str> =
                        scopes.iter().filter(|s| !r.scopes.contains(s)).collect();
                    errors.push(FieldError::new(
                        "scopes",
                        format!(
                            "can only be narrowed; not on the token: {}",
                            wider.join(", ")
                        ),
                    ));
                }
                if let (Some(at), Some(current)) = (checked.expires_at, r.expires_at)
                    && at > current
                {
                    errors.push(FieldError::new(
                        "expires_at",
                        "can only be moved earlier than the token's current expiry",
                    ));
                }
                if !errors.is_empty() {
                    return Err(Error::Invalid(ValidationErrors(errors)));
                }
                if let Some(name) = &checked.name {
                    r.name = name.clone();
                }
                if let Some(description) = &checked.description {
                    r.description = description.clone();
                }
                if let Some(scopes) = &checked.scopes {
                    r.scopes = scopes.clone();
                }
                if let Some(at) = checked.expires_at {
                    r.expires_at = Some(at);
                }
                if let Some(metadata) = &checked.metadata {
                    r.metadata = metadata.clone();
                }
                Ok(r.info())
            })();
            outcome.is_ok()
        };
        self.inner
            .store
            .update(&id, &mut Change::new(&mut apply))
            .await?;
        let info = outcome?;
        // What this token created may hold no more than it now does.
        let narrowed = checked.scopes.as_ref();
        let cut = checked
            .expires_at
            .filter(|_| !self.inner.policy.get_children_may_outlive_creators());
        if narrowed.is_some() || cut.is_some() {
            let mut within = |r: &mut TokenRecord| {
                let mut changed = false;
                if let Some(scopes) = narrowed
                    && !scopes.contains_all(&r.scopes)
                {
                    r.scopes = r.scopes.intersection(scopes);
                    changed = true;
                }
                if let Some(limit) = cut
                    && r.expires_at.is_none_or(|at| at > limit)
                {
                    r.expires_at = Some(limit);
                    changed = true;
                }
                changed
            };
            self.inner
                .store
                .update_descendants(
                    &Descendants::new(id, prefix, owner),
                    &mut Change::new(&mut within),
                )
                .await?;
        }
        Ok(info)
    }

    /// Validate every field of `edit` that does not depend on the token.
    fn check_edit(&self, edit: &TokenEdit, now: OffsetDateTime) -> Result<Checked, Error> {
        let mut errors = Vec::new();
        let name = edit
            .name
            .as_deref()
            .map(|n| Box::from(check_text("name", n, MAX_NAME_CHARS, &mut errors)));
        let (min, max) = self.inner.policy.get_description_chars();
        let description = edit.description.as_ref().map(|d| {
            d.as_deref()
                .map(|d| check_prose("description", d, MAX_DESCRIPTION_CHARS, &mut errors))
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let chars = d.chars().count();
                    if chars < min || chars > max {
                        errors.push(FieldError::new(
                            "description",
                            format!("must be {min} to {max} characters long"),
                        ));
                    }
                    Box::from(d)
                })
        });
        let scopes = match edit.scopes.as_ref().map(Scopes::parse).transpose() {
            Ok(scopes) => scopes,
            Err(e) => {
                errors.extend(e.0);
                None
            }
        };
        let expires_at = match edit.expires_at.map(in_utc) {
            Some(None) => {
                errors.push(FieldError::new("expires_at", "is too far in the future"));
                None
            }
            Some(Some(at)) => Some(to_stored_precision(at)),
            None => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            errors.push(FieldError::new(
                "expires_at",
                "must be in the future (revoke the token to end it now)",
            ));
        }
        let metadata = match edit
            .metadata
            .clone()
            .map(|m| m.map(Metadata::new).transpose())
            .transpose()
        {
            Ok(metadata) => metadata,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(Error::Invalid(ValidationErrors(errors)));
        }
        Ok(Checked {
            name,
            description,
            scopes,
            expires_at,
            metadata,
        })
    }

    /// Suspend `owner`'s token `id`: it stops verifying (the same outward 401 as a revoked
    /// token) until [`resume`](Self::resume)d. Suspending a suspended token changes
    /// nothing; a revoked one is [`Error::AlreadyRevoked`] (revocation is final).
    pub async fn suspend(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        self.observe_op(
            "suspend",
            Some(id),
            self.suspend_unobserved(owner, id),
            |info| {
                vec![
                    AuditEvent::new(self.now(), AuditKind::Suspended)
                        .token(id)
                        .owner(info.owner.clone()),
                ]
            },
        )
        .await
    }

    async fn suspend_unobserved(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        let now = self.now();
        self.set_suspended(owner, id, Some(now)).await
    }

    /// Resume `owner`'s suspended token `id`: it verifies again (if it has not expired
    /// meanwhile). Resuming a token that is not suspended changes nothing; a revoked one is
    /// [`Error::AlreadyRevoked`].
    ///
    /// ```
    /// use api_tokens::{ApiTokens, AuthError, MemoryStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let issued = tokens.issue(NewToken::new("u1", "ci")).await?;
    /// let t = issued.plaintext.expose_secret();
    /// tokens.suspend("u1", issued.record.id).await?;
    /// assert!(matches!(tokens.verify(t).await, Err(AuthError::Suspended { .. })));
    /// tokens.resume("u1", issued.record.id).await?;
    /// tokens.verify(t).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn resume(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        self.observe_op(
            "resume",
            Some(id),
            self.resume_unobserved(owner, id),
            |info| {
                vec![
                    AuditEvent::new(self.now(), AuditKind::Resumed)
                        .token(id)
                        .owner(info.owner.clone()),
                ]
            },
        )
        .await
    }

    async fn resume_unobserved(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        self.set_suspended(owner, id, None).await
    }

    async fn set_suspended(
        &self,
        owner: &str,
        id: TokenId,
        at: Option<OffsetDateTime>,
    ) -> Result<TokenInfo, Error> {
        identifier("owner", owner)?;
        let prefix = self.format().prefix();
        let mut outcome = Err(Error::NotFound);
        let mut was = None;
        let mut apply = |r: &mut TokenRecord| {
            if *r.owner != *owner || *r.prefix != *prefix {
                outcome = Err(Error::NotFound);
                return false;
            }
            if let Some(revoked_at) = r.revoked_at {
                outcome = Err(Error::AlreadyRevoked { revoked_at });
                return false;
            }
            was = r.suspended_at;
            // Already as asked: nothing to write (and a suspension keeps its first time).
            let change = r.suspended_at.is_some() != at.is_some();
            if change {
                r.suspended_at = at;
            }
            outcome = Ok(r.info());
            change
        };
        self.inner
            .store
            .update(&id, &mut Change::new(&mut apply))
            .await?;
        let info = outcome?;
        // What it created is suspended with it (marked with the same instant), and resumed
        // with it if it was suspended by that same act; a token suspended on its own stays
        // suspended.
        let (from, to) = match at {
            Some(_) => (None, info.suspended_at),
            None => match was {
                Some(was) => (Some(was), None),
                None => return Ok(info),
            },
        };
        let mut follow = |r: &mut TokenRecord| {
            if r.revoked_at.is_some() || r.suspended_at != from {
                return false;
            }
            r.suspended_at = to;
            true
        };
        self.inner
            .store
            .update_descendants(
                &Descendants::new(id, prefix, owner),
                &mut Change::new(&mut follow),
            )
            .await?;
        Ok(info)
    }
}
