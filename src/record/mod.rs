//! What a store keeps of a token ([`TokenRecord`]), the view that can be shown to users
//! ([`TokenInfo`]), and scopes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::hash::TokenHash;
use crate::token::TokenId;

mod compact;
mod ips;
mod metadata;
mod packed;
mod rate_cell;
mod scopes;
mod shared;
mod usage;

pub use compact::RecordRef;
pub(crate) use compact::{CompactRecord, Lent, Micros, Verifiable, unix_micros};
pub use ips::IpAllowlist;
pub use metadata::Metadata;
pub(crate) use packed::{Parts, pack_shared, packed_len, put, put_all, shared_parts};
pub(crate) use rate_cell::{Backoff, MovedCount};
pub use rate_cell::{CellMoved, RateCell};
pub use scopes::Scopes;
pub(crate) use shared::Shared;
pub use usage::{RateLimit, Refill, RefillInterval, UsageLimit};

/// Everything a store keeps about one token. It never holds the token itself, only the
/// SHA-256 of its secret.
///
/// Owner, tenant, scopes and prefix are shared (`Arc`), so a store in memory keeps one copy
/// of each for all the tokens that have it. Timestamps are UTC with microsecond precision.
///
/// A record is for stores and for the service; it is deliberately not `Serialize`, because
/// it carries the hash. Show users [`TokenInfo`] (from [`info`](Self::info)) instead.
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "ci")).await?;
/// let record = &issued.record;
/// assert!(record.is_active(tokens.now()));
/// assert_eq!(record.info().token_prefix, record.display_prefix());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
// `repr(C)` keeps what verification reads (id, hash, revocation, suspension, expiry, last use,
// then what the principal and the address check need) together at the start, and what it
// never reads (description, revocation reason, successor, creator) at the end: a record in
// memory costs at most four cache lines to verify.
#[repr(C)]
pub struct TokenRecord {
    /// The public id (also embedded in the token).
    pub id: TokenId,
    /// SHA-256 of the secret.
    pub hash: TokenHash,
    /// When it was revoked; `None` while not revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When it was suspended ([`ApiTokens::suspend`](crate::ApiTokens::suspend)); `None`
    /// while it is not. A suspended token does not verify until it is resumed.
    pub suspended_at: Option<OffsetDateTime>,
    /// When it stops working; `None` for never.
    pub expires_at: Option<OffsetDateTime>,
    /// When it last verified (kept to within the last-use interval).
    pub last_used_at: Option<OffsetDateTime>,
    /// The user or organisation the token acts for.
    pub owner: Arc<str>,
    /// The tenant (business, workspace) the token is confined to, if any.
    pub tenant: Option<Arc<str>>,
    /// What the token may do.
    pub scopes: Scopes,
    /// The issuer prefix the token starts with (`dz`); see
    /// [`display_prefix`](Self::display_prefix).
    pub prefix: Arc<str>,
    /// Human-readable name (`deploy-script`).
    pub name: Box<str>,
    /// A small JSON object the service keeps with the token.
    pub metadata: Option<Metadata>,
    /// The client addresses it may be used from; `None` for any.
    pub allowed_ips: Option<IpAllowlist>,
    /// The uses it has left, if they are counted (behind a pointer: most tokens have none).
    pub usage: Option<Box<UsageLimit>>,
    /// How often it may be used, if limited.
    pub rate_limit: Option<RateLimit>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// Optional longer description.
    pub description: Option<Box<str>>,
    /// Why it was revoked, if a reason was given.
    pub revocation_reason: Option<Box<str>>,
    /// The token that replaced this one, once it was rotated (a token has at most one).
    pub successor: Option<TokenId>,
    /// The token that created this one ([`NewToken::child_of`](crate::NewToken::child_of)),
    /// if any: revoking it revokes this one too. A rotation's successor keeps it.
    pub created_by: Option<TokenId>,
}

impl TokenRecord {
    /// The first characters of the token, safe to show in lists (`dz_1a2b3c4d`): the prefix
    /// and 8 characters of the public id.
    pub fn display_prefix(&self) -> String {
        crate::token::display_prefix(&self.prefix, &self.id)
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the token is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the token is not revoked and not expired at `now` (it may be suspended:
    /// see [`is_suspended`](Self::is_suspended)).
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        !self.is_revoked() && !self.is_expired(now)
    }

    /// Whether the token is suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspended_at.is_some()
    }

    /// The view of this record that may be shown to users: everything but the hash.
    pub fn info(&self) -> TokenInfo {
        TokenInfo::from(self)
    }
}

/// A token as users see it in a list: everything but the hash, which this type cannot carry.
///
/// Serialises with the field names of the token API (`token_prefix`, `last_used_at`,
/// `revocation_reason`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The public id.
    pub id: TokenId,
    /// The owner.
    pub owner: Arc<str>,
    /// The tenant, if any.
    pub tenant_id: Option<Arc<str>>,
    /// Human-readable name.
    pub name: Box<str>,
    /// Optional description.
    pub description: Option<Box<str>>,
    /// The first characters of the token.
    pub token_prefix: String,
    /// What the token may do.
    pub scopes: Scopes,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last verified.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working; `None` for never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    pub revocation_reason: Option<Box<str>>,
    /// The token that replaced this one, once it was rotated.
    pub replaced_by: Option<TokenId>,
    /// The token that created this one, if any.
    pub created_by: Option<TokenId>,
    /// When it was suspended, if it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub suspended_at: Option<OffsetDateTime>,
    /// The service's JSON object for this token, if any.
    pub metadata: Option<Metadata>,
    /// The client addresses it may be used from; `None` for any.
    pub allowed_ips: Option<IpAllowlist>,
    /// The uses it has left and how they are refilled, if they are counted.
    pub usage: Option<UsageLimit>,
    /// How often it may be used, if limited.
    pub rate_limit: Option<RateLimit>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(r: &TokenRecord) -> Self {
        Self {
            id: r.id,
            owner: r.owner.clone(),
            tenant_id: r.tenant.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            token_prefix: r.display_prefix(),
            scopes: r.scopes.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revocation_reason: r.revocation_reason.clone(),
            replaced_by: r.successor,
            created_by: r.created_by,
            suspended_at: r.suspended_at,
            metadata: r.metadata.clone(),
            allowed_ips: r.allowed_ips.clone(),
            usage: r.usage.as_deref().copied(),
            rate_limit: r.rate_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    /// `Probe::<T>::SERIALIZE` is `true` exactly when `T: Serialize`: the inherent constant
    /// (which needs the bound) wins over the trait's default when both apply.
    struct Probe<T>(PhantomData<T>);

    #[allow(dead_code)] // used through `Probe`, which the lint does not follow in a const
    trait NotSerialize {
        const SERIALIZE: bool = false;
    }

    impl<T> NotSerialize for Probe<T> {}

    #[allow(dead_code)] // read through the probe only when the bound holds
    impl<T: serde::Serialize> Probe<T> {
        const SERIALIZE: bool = true;
    }

    #[allow(dead_code)] // a type, only ever named
    struct NotSerializable;

    // Checked when the tests are built: adding `Serialize` to either breaks the build.
    const _NOTHING_THAT_CARRIES_THE_HASH_CAN_BE_SERIALISED: () = {
        assert!(
            !Probe::<super::TokenRecord>::SERIALIZE,
            "TokenRecord carries the hash"
        );
        assert!(
            !Probe::<crate::TokenHash>::SERIALIZE,
            "TokenHash is the hash"
        );
        assert!(
            Probe::<super::TokenInfo>::SERIALIZE,
            "the probe detects Serialize"
        );
        assert!(!Probe::<NotSerializable>::SERIALIZE, "and its absence");
    };
}
