//! Issuing tokens ([`ApiTokens::issue`]) and rotating them ([`ApiTokens::rotate`]).

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::clock::to_stored_precision;
use crate::error::{Error, FieldError, RandomError, ValidationErrors};
use crate::record::{
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PRINCIPAL_CHARS, Scopes, TokenInfo, TokenRecord,
    check_prose, check_text,
};
use crate::service::ApiTokens;
use crate::store::{RevokeOutcome, TokenStore};
use crate::token::{PlaintextToken, TokenId};

/// When a new token expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// The policy's default lifetime (365 days unless configured).
    #[default]
    PolicyDefault,
    /// After this many days (1–365 under the default policy). Rejected fields are named
    /// `expires_in_days`.
    InDays(i64),
    /// After this duration. Rejected fields are named `expires_at`.
    After(Duration),
    /// At this instant. Rejected fields are named `expires_at`.
    At(OffsetDateTime),
    /// Never, if the policy allows it.
    Never,
}

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
}

impl NewToken {
    /// A token for `owner` called `name` (trimmed, 1–255 characters), with no scopes and the
    /// policy's default expiry.
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            tenant: None,
            name: name.into(),
            description: None,
            scopes: Vec::new(),
            expires: Expiry::PolicyDefault,
        }
    }

    /// Confine the token to a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// A description (at most 1024 characters; blank means none).
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
        let now = self.now();
        let mut errors = Vec::new();
        let owner = check_text("owner", &new.owner, MAX_PRINCIPAL_CHARS, &mut errors);
        let tenant = new
            .tenant
            .as_deref()
            .map(|t| check_text("tenant", t, MAX_PRINCIPAL_CHARS, &mut errors));
        let name = check_text("name", &new.name, MAX_NAME_CHARS, &mut errors);
        let description = new
            .description
            .as_deref()
            .map(|d| check_prose("description", d, MAX_DESCRIPTION_CHARS, &mut errors))
            .filter(|d| !d.is_empty());
        let scopes = Scopes::parse(&new.scopes)
            .map_err(|e| errors.extend(e.0))
            .unwrap_or_default();
        let expires_at = self.expiry(new.expires, now, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Invalid(ValidationErrors(errors)));
        }
        let draft = Draft {
            owner: Arc::from(owner),
            tenant: tenant.map(Arc::from),
            name: Box::from(name),
            description: description.map(Box::from),
            scopes,
            expires_at,
        };
        self.insert_new(draft, now).await
    }

    /// Rotate `owner`'s token `id`: issue a replacement with the same owner, tenant, name,
    /// description and scopes, and let the old token live only until now + `grace` (a zero
    /// grace revokes it at once, with the reason `rotated`).
    ///
    /// The replacement gets a lifetime as long as the old token's was (capped by the policy),
    /// or never expires if the old one never did and the policy still allows it.
    pub async fn rotate(&self, owner: &str, id: TokenId, grace: Duration) -> Result<Issued, Error> {
        let invalid = |field: &str, reason: &str| {
            Error::Invalid(ValidationErrors(vec![FieldError::new(field, reason)]))
        };
        let too_far = || invalid("grace", "reaches beyond the representable time range");
        if grace.is_negative() {
            return Err(invalid("grace", "must not be negative"));
        }
        let now = self.now();
        let old = match self.inner.store.get(&id).await? {
            Some(r) if *r.owner == *owner => r,
            _ => return Err(Error::NotFound),
        };
        if !old.is_active(now) {
            return Err(Error::NotActive);
        }
        let policy = self.inner.policy;
        let expires_at = match old.expires_at {
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
        };
        let old_until = now.checked_add(grace).ok_or_else(too_far)?;
        let draft = Draft {
            owner: old.owner.clone(),
            tenant: old.tenant.clone(),
            name: old.name.clone(),
            description: old.description.clone(),
            scopes: old.scopes.clone(),
            expires_at,
        };
        let issued = self.insert_new(draft, now).await?;
        if grace.is_zero() {
            match self
                .inner
                .store
                .revoke(&id, owner, now, Some("rotated"))
                .await?
            {
                // Revoked meanwhile by someone else: the old token is dead either way.
                RevokeOutcome::Revoked | RevokeOutcome::AlreadyRevoked(_) => {}
                RevokeOutcome::NotFound => return Err(Error::NotFound),
            }
        } else {
            self.inner.store.shorten_expiry(&id, old_until).await?;
        }
        Ok(issued)
    }

    /// Resolve an [`Expiry`] against the policy, recording what is wrong with it.
    fn expiry(
        &self,
        expires: Expiry,
        now: OffsetDateTime,
        errors: &mut Vec<FieldError>,
    ) -> Option<OffsetDateTime> {
        let policy = &self.inner.policy;
        let max = policy.get_max_lifetime();
        let too_long = |field: &str, errors: &mut Vec<FieldError>| {
            errors.push(FieldError::new(
                field,
                format!(
                    "exceeds the maximum lifetime of {} days",
                    max.map_or(0, |m| m.whole_days())
                ),
            ));
        };
        match expires {
            Expiry::PolicyDefault => now.checked_add(policy.get_default_lifetime()).or_else(|| {
                errors.push(FieldError::new("expires_at", "is too far in the future"));
                None
            }),
            Expiry::Never if policy.allows_never() => None,
            Expiry::Never => {
                errors.push(FieldError::new(
                    "expires_at",
                    "tokens that never expire are not allowed; give an expiry",
                ));
                None
            }
            Expiry::InDays(days) => {
                let max_days = policy.max_days();
                if days < 1 || max_days.is_some_and(|m| days > m) {
                    let reason = match max_days {
                        Some(m) => format!("must be between 1 and {m}"),
                        None => "must be at least 1".to_owned(),
                    };
                    errors.push(FieldError::new("expires_in_days", reason));
                    return None;
                }
                match days
                    .checked_mul(86_400)
                    .map(Duration::seconds)
                    .and_then(|d| now.checked_add(d))
                {
                    Some(at) => Some(at),
                    None => {
                        errors.push(FieldError::new("expires_in_days", "is too large"));
                        None
                    }
                }
            }
            Expiry::After(lifetime) => {
                if !lifetime.is_positive() {
                    errors.push(FieldError::new("expires_at", "must be in the future"));
                    None
                } else if max.is_some_and(|m| lifetime > m) {
                    too_long("expires_at", errors);
                    None
                } else {
                    now.checked_add(lifetime).or_else(|| {
                        errors.push(FieldError::new("expires_at", "is too far in the future"));
                        None
                    })
                }
            }
            Expiry::At(at) => {
                let at = to_stored_precision(at);
                if at <= now {
                    errors.push(FieldError::new("expires_at", "must be in the future"));
                    None
                } else if max.is_some_and(|m| at - now > m) {
                    too_long("expires_at", errors);
                    None
                } else {
                    Some(at)
                }
            }
        }
    }

    async fn insert_new(&self, draft: Draft, now: OffsetDateTime) -> Result<Issued, Error> {
        let format = &self.inner.format;
        let (id, hash, plaintext) = format
            .generate()
            .map_err(|e| Error::Random(RandomError(e)))?;
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
        };
        self.inner.store.insert(&record).await?;
        Ok(Issued { plaintext, record })
    }
}

/// The validated fields of a token about to be issued.
struct Draft {
    owner: Arc<str>,
    tenant: Option<Arc<str>>,
    name: Box<str>,
    description: Option<Box<str>>,
    scopes: Scopes,
    expires_at: Option<OffsetDateTime>,
}
