//! Issuing tokens ([`ApiTokens::issue`]) and rotating them ([`ApiTokens::rotate`]).

use std::sync::Arc;

use time::OffsetDateTime;

use super::ApiTokens;
use super::audit::{AuditEvent, AuditKind};
use super::expiry::Expiry;
use super::principal::Principal;
use crate::error::{AuthError, Error, FieldError, RandomError, ValidationErrors};
use crate::limits::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::record::{IpAllowlist, Metadata, RateLimit, Scopes, TokenInfo, TokenRecord, UsageLimit};
use crate::store::token_store::TokenStore;
use crate::store::{ChildInsert, ChildRules};
use crate::token::{PlaintextToken, TokenId};
use crate::validate::{check_identifier, check_prose, check_text};

/// What to issue: the owner, a name, and optionally a tenant, description, scopes and expiry.
///
/// ```
/// use api_tokens::{Expiry, NewToken};
///
/// let request = NewToken::new("user_42", "monitoring-bot")
///     .tenant("business_7")
///     .description("Reads metrics every minute")
///     .scopes(["profile:read", "tokens:read"])
///     .expires(Expiry::InDays(90));
/// # let _ = request;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewToken {
    owner: String,
    tenant: Option<String>,
    name: String,
    description: Option<String>,
    scopes: Vec<String>,
    expires: Expiry,
    creator: Option<Creator>,
    metadata: Option<serde_json::Value>,
    allowed_ips: Option<Vec<String>>,
    usage: Option<UsageLimit>,
    rate_limit: Option<RateLimit>,
}

/// What a token created by another may be: the creator's id, and the limits its own token
/// sets (its scopes and expiry), as it verified.
#[derive(Debug, Clone)]
struct Creator {
    id: TokenId,
    tenant: Option<String>,
    scopes: Scopes,
    expires_at: Option<OffsetDateTime>,
}

impl NewToken {
    /// A token for `owner` called `name` (trimmed, 1–255 characters), with no scopes and the
    /// policy's default expiry. The owner (and the tenant) are identifiers, kept exactly as
    /// given: surrounding whitespace, control and invisible format characters are refused,
    /// never trimmed.
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            tenant: None,
            name: name.into(),
            description: None,
            scopes: Vec::new(),
            expires: Expiry::PolicyDefault,
            creator: None,
            metadata: None,
            allowed_ips: None,
            usage: None,
            rate_limit: None,
        }
    }

    /// A token called `name` created by the verified token `creator`, for the same owner
    /// and tenant. What a token API needs to stop a token from minting more than it is:
    ///
    /// - it may carry only scopes the creator holds (more is [`AuthError::InsufficientScope`],
    ///   403, naming the missing ones);
    /// - it never outlives the creator: its expiry is cut to the creator's (unless the
    ///   policy lets [children outlive creators](crate::TokenPolicy::children_may_outlive_creators));
    /// - it is confined to the creator's tenant (another tenant is [`AuthError::WrongTenant`]);
    /// - revoking the creator revokes it too, and a creator revoked meanwhile creates nothing
    ///   ([`AuthError::Invalid`], 401): the store checks and inserts in one atomic step
    ///   ([`TokenStore::insert_child`](crate::TokenStore::insert_child)).
    ///
    /// ```
    /// use api_tokens::{ApiTokens, AuthError, Error, Expiry, MemoryStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let parent = tokens
    ///     .issue(NewToken::new("u1", "login").scopes(["a", "b"]).expires(Expiry::InDays(1)))
    ///     .await?;
    /// let who = tokens.verify(parent.plaintext.expose_secret()).await?;
    ///
    /// let child = tokens
    ///     .issue(NewToken::child_of(&who, "ci").scopes(["a"]).expires(Expiry::InDays(365)))
    ///     .await?;
    /// assert_eq!(child.record.expires_at, parent.record.expires_at); // cut to the creator's
    /// assert_eq!(child.record.created_by, Some(who.token_id()));
    ///
    /// let wider = tokens.issue(NewToken::child_of(&who, "x").scopes(["a", "c"])).await;
    /// assert!(matches!(wider, Err(Error::Auth(AuthError::InsufficientScope { .. }))));
    ///
    /// tokens.revoke("u1", who.token_id(), Some("leaked")).await?;
    /// let gone = tokens.verify(child.plaintext.expose_secret()).await;
    /// assert!(matches!(gone, Err(AuthError::Revoked { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn child_of(creator: &Principal, name: impl Into<String>) -> Self {
        let mut new = Self::new(creator.owner(), name);
        new.tenant = creator.tenant().map(str::to_owned);
        new.creator = Some(Creator {
            id: creator.token_id(),
            tenant: new.tenant.clone(),
            scopes: creator.scopes().to_scopes(),
            expires_at: creator.expires_at(),
        });
        new
    }

    /// Confine the token to a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// A description (at most 1024 characters, or the policy's
    /// [`description_chars`](crate::TokenPolicy::description_chars); blank means none).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The token's scopes.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// When the token expires.
    pub fn expires(mut self, expires: Expiry) -> Self {
        self.expires = expires;
        self
    }

    /// A small JSON object to keep with the token (see [`Metadata`] for the bounds; a
    /// rejected one is named `metadata`).
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The client addresses the token may be used from: CIDR ranges or single addresses
    /// (see [`IpAllowlist`]; rejected ones are named `allowed_ips[i]`). A token created by a
    /// token that has an allowlist gets that one unless it asks for a narrower one.
    pub fn allowed_ips<I, T>(mut self, ranges: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_ips = Some(ranges.into_iter().map(Into::into).collect());
        self
    }

    /// Count the token's uses: each successful verification consumes one, and once none is
    /// left it fails with [`AuthError::UsageExceeded`] (429 `usage_exceeded`) until a
    /// refill. A token with a usage limit cannot create tokens (their uses would not be
    /// counted against it), and its uses move to its successor when it is rotated.
    pub fn usage(mut self, usage: UsageLimit) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Limit how often the token may be used (checked by the service's
    /// [rate limiter](crate::ApiTokensBuilder::rate_limiter)). A rate-limited token cannot
    /// create tokens (each would bring a count of its own), and its successors share its
    /// count.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }
}

/// A freshly issued token: its plaintext, to show exactly once, and its record.
#[derive(Debug)]
pub struct Issued {
    /// The token itself. Hand it to the user now; it cannot be recovered later.
    pub plaintext: PlaintextToken,
    /// What the store now holds.
    pub record: TokenRecord,
}

impl Issued {
    /// The record as users may see it.
    pub fn info(&self) -> TokenInfo {
        self.record.info()
    }
}

impl<S: TokenStore> ApiTokens<S> {
    /// Issue a token: validate every field, generate the token from the operating system's
    /// CSPRNG, and insert its record. Every rejected field is reported at once in
    /// [`Error::Invalid`]; nothing is written then.
    pub async fn issue(&self, new: NewToken) -> Result<Issued, Error> {
        if !self.observed() {
            return self.issue_unobserved(new).await;
        }
        // Boxed: what observing adds stays out of the future of a service that observes
        // nothing (the future is moved on every call; smaller is cheaper).
        Box::pin(
            self.observe_op("issue", None, self.issue_unobserved(new), |issued| {
                vec![
                    AuditEvent::new(issued.record.created_at, AuditKind::Issued)
                        .token(issued.record.id)
                        .owner(issued.record.owner.clone()),
                ]
            }),
        )
        .await
    }

    async fn issue_unobserved(&self, new: NewToken) -> Result<Issued, Error> {
        let now = self.now();
        // Checked without waiting, so that none of validation's temporaries is kept across
        // a wait in the future (which is moved on every call: smaller is cheaper).
        let (mut draft, creator) = self.draft(new, now)?;
        if let Some(creator) = creator {
            // Rare, and waits for the store: boxed, so that its state does not enlarge
            // every issue's future.
            Box::pin(self.confine_to_creator(&mut draft, &creator)).await?;
        }
        let (plaintext, record) = self.generate(draft, now)?;
        let cap = self.inner.policy.get_max_active_per_owner();
        let store = &self.inner.store;
        if record.created_by.is_some() {
            let rules = ChildRules::new(
                cap,
                now,
                self.inner.policy.get_children_may_outlive_creators(),
            );
            match store.insert_child(&record, &rules).await? {
                ChildInsert::Inserted => {}
                ChildInsert::CapReached => {
                    return Err(Error::TooManyTokens {
                        limit: cap.unwrap_or_default(),
                    });
                }
                ChildInsert::CreatorNotActive => return Err(AuthError::Invalid.into()),
            }
        } else {
            match cap {
                None => store.insert(&record).await?,
                Some(limit) => {
                    if !store.insert_capped(&record, limit, now).await? {
                        return Err(Error::TooManyTokens { limit });
                    }
                }
            }
        }
        Ok(Issued { plaintext, record })
    }

    /// The request validated into the fields of a record (every rejected field at once),
    /// and the creator it names, if any.
    fn draft(&self, new: NewToken, now: OffsetDateTime) -> Result<(Draft, Option<Creator>), Error> {
        let mut errors = Vec::new();
        check_identifier("owner", &new.owner, &mut errors);
        if let Some(tenant) = &new.tenant {
            check_identifier("tenant", tenant, &mut errors);
        }
        let name = check_text("name", &new.name, MAX_NAME_CHARS, &mut errors);
        let description = new
            .description
            .as_deref()
            .map(|d| check_prose("description", d, MAX_DESCRIPTION_CHARS, &mut errors))
            .filter(|d| !d.is_empty());
        let (min, max) = self.inner.policy.get_description_chars();
        if let Some(d) = description {
            let chars = d.chars().count();
            if (chars < min || chars > max) && chars <= MAX_DESCRIPTION_CHARS {
                errors.push(FieldError::new(
                    "description",
                    format!("must be {min} to {max} characters long"),
                ));
            }
        }
        let metadata = match new.metadata.clone().map(Metadata::new).transpose() {
            Ok(metadata) => metadata,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let allowed_ips = match new.allowed_ips.as_ref().map(IpAllowlist::parse).transpose() {
            Ok(list) => list,
            Err(e) => {
                errors.extend(e.0);
                None
            }
        };
        // Each token counts on its own bucket (a successor on its predecessor's).
        let rate_limit = new
            .rate_limit
            .map(|l| RateLimit::new(l.limit(), l.per_seconds()))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        if rate_limit.is_some() && !self.inner.rate_limits_enforced() {
            errors.push(FieldError::new(
                "rate_limit",
                "this service enforces no rate limits; configure a rate limiter \
                 (ApiTokensBuilder::rate_limiter) to issue rate-limited tokens",
            ));
        }
        if let Some(Err(e)) = new.usage.as_ref().map(UsageLimit::check) {
            errors.push(e);
        }
        let usage = new.usage.map(|mut usage| {
            // The first refill is at the start of the next period.
            usage.refilled_at = usage.refill.map(|r| r.interval.period_start(now));
            Box::new(usage)
        });
        let scopes = Scopes::parse(&new.scopes)
            .map_err(|e| errors.extend(e.0))
            .unwrap_or_default();
        let expires_at = new
            .expires
            .resolve(&self.inner.policy, now)
            .map_err(|e| errors.push(e))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(Error::Invalid(ValidationErrors(errors)));
        }
        let draft = Draft {
            owner: Arc::from(new.owner.as_str()),
            tenant: new.tenant.as_deref().map(Arc::from),
            name: Box::from(name),
            description: description.map(Box::from),
            scopes,
            expires_at,
            created_by: new.creator.as_ref().map(|c| c.id),
            metadata,
            allowed_ips,
            usage,
            rate_limit,
        };
        Ok((draft, new.creator))
    }

    /// What a token created by another may be: the creator's tenant, scopes, expiry and
    /// addresses bound the draft; a creator with usage or rate limits creates nothing.
    async fn confine_to_creator(&self, draft: &mut Draft, creator: &Creator) -> Result<(), Error> {
        if draft.tenant.as_deref() != creator.tenant.as_deref() {
            return Err(AuthError::WrongTenant.into());
        }
        let missing: Vec<String> = draft
            .scopes
            .iter()
            .filter(|s| !creator.scopes.contains(s))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope { missing }.into());
        }
        if let Some(limit) = creator.expires_at
            && !self.inner.policy.get_children_may_outlive_creators()
        {
            draft.expires_at = Some(draft.expires_at.map_or(limit, |at| at.min(limit)));
        }
        let creator_record = self.inner.store.get(&creator.id).await?;
        if creator_record
            .as_ref()
            .is_some_and(|c| c.usage.is_some() || c.rate_limit.is_some())
        {
            return Err(FieldError::new(
                "creator",
                "a token with a usage or rate limit cannot create tokens (their uses and \
                 requests would not count against it); create them with a token without \
                 limits",
            )
            .into());
        }
        // The creator's address restriction holds for what it creates.
        let creator_ips = creator_record.and_then(|r| r.allowed_ips.clone());
        if let Some(outer) = creator_ips {
            match &draft.allowed_ips {
                None => draft.allowed_ips = Some(outer),
                Some(inner) if outer.covers(inner) => {}
                Some(_) => {
                    return Err(FieldError::new(
                        "allowed_ips",
                        "must lie within the addresses the creating token is allowed from",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// A fresh token with these fields: its plaintext and the record to store.
    pub(super) fn generate(
        &self,
        draft: Draft,
        now: OffsetDateTime,
    ) -> Result<(PlaintextToken, TokenRecord), Error> {
        let format = &self.inner.format;
        let (id, hash, plaintext) = format
            .generate()
            .map_err(|e| Error::Random(RandomError::new(e)))?;
        let record = TokenRecord {
            id,
            owner: draft.owner,
            tenant: draft.tenant,
            name: draft.name,
            description: draft.description,
            scopes: draft.scopes,
            hash,
            prefix: Arc::clone(format.shared_prefix()),
            created_at: now,
            expires_at: draft.expires_at,
            last_used_at: None,
            revoked_at: None,
            revocation_reason: None,
            successor: None,
            created_by: draft.created_by,
            suspended_at: None,
            metadata: draft.metadata,
            allowed_ips: draft.allowed_ips,
            usage: draft.usage,
            rate_limit: draft.rate_limit,
        };
        Ok((plaintext, record))
    }
}

/// The validated fields of a token about to be issued.
pub(super) struct Draft {
    pub(super) owner: Arc<str>,
    pub(super) tenant: Option<Arc<str>>,
    pub(super) name: Box<str>,
    pub(super) description: Option<Box<str>>,
    pub(super) scopes: Scopes,
    pub(super) expires_at: Option<OffsetDateTime>,
    pub(super) created_by: Option<TokenId>,
    pub(super) metadata: Option<Metadata>,
    pub(super) allowed_ips: Option<IpAllowlist>,
    pub(super) usage: Option<Box<UsageLimit>>,
    pub(super) rate_limit: Option<RateLimit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn the_future_of_an_issue_keeps_observation_and_creators_boxed() {
        // It is moved on every call: observation (tracing, metrics, audit) and the creator
        // checks live in boxes, so what stays is the request, the draft and the record.
        let tokens = ApiTokens::new(MemoryStore::new(), "dz").expect("a valid prefix");
        let future = tokens.issue(NewToken::new("user_1", "ci"));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1_536, "the issue future is {size} bytes");
    }
}
