//! What a store lends verification ([`RecordRef`]), and the compact form in which the
//! memory store keeps a record ([`CompactRecord`]): times as 8-byte microseconds, the fields
//! most tokens never set behind one pointer, and the fields many tokens share (owner, tenant,
//! scopes, issuer) behind another, and a short name inline. 144 bytes instead of
//! [`TokenRecord`]'s 352.

use std::sync::Arc;

use time::{OffsetDateTime, PrimitiveDateTime};

use super::{IpAllowlist, Metadata, RateLimit, Scopes, Shared, TokenRecord, UsageLimit};
use crate::hash::TokenHash;
use crate::token::TokenId;

/// `t` in microseconds since the Unix epoch (whatever its offset: the instant counts).
pub(crate) fn unix_micros(t: OffsetDateTime) -> i64 {
    // Seconds and microseconds apart: no 128-bit division. Years ±9999 fit.
    t.unix_timestamp() * 1_000_000 + i64::from(t.microsecond())
}

/// A point in time in microseconds since the Unix epoch (UTC), or no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Micros(i64);

impl Default for Micros {
    fn default() -> Self {
        Self::NONE
    }
}

impl Micros {
    /// No time (`None`): below every time a `OffsetDateTime` can hold.
    pub(crate) const NONE: Self = Self(i64::MIN);

    /// `t` to the microsecond (whatever its offset: the instant is kept, in UTC).
    pub(crate) fn of(t: OffsetDateTime) -> Self {
        Self(unix_micros(t))
    }

    /// `t`, or [`NONE`](Self::NONE).
    pub(crate) fn of_option(t: Option<OffsetDateTime>) -> Self {
        t.map_or(Self::NONE, Self::of)
    }

    /// The microseconds, if this is a time.
    pub(crate) fn get(self) -> Option<i64> {
        (self != Self::NONE).then_some(self.0)
    }

    /// The time, in UTC. An instant outside the range of `OffsetDateTime` in UTC (an
    /// extreme date given another offset) is held at the nearest end of that range.
    pub(crate) fn time(self) -> Option<OffsetDateTime> {
        self.get().map(|micros| {
            // Seconds and microseconds apart, in 64 bits: no 128-bit division.
            let nanos = micros.rem_euclid(1_000_000) as u32 * 1_000;
            OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
                .and_then(|t| t.replace_nanosecond(nanos))
                .unwrap_or(if micros < 0 {
                    PrimitiveDateTime::MIN.assume_utc()
                } else {
                    PrimitiveDateTime::MAX.assume_utc()
                })
        })
    }
}

/// A record as the memory store keeps it, with the same content as a [`TokenRecord`] (to
/// the microsecond, in UTC, as the SQL stores keep times too). What verification reads
/// comes first; what it never reads (beyond the pointer to it) is in [`Rare`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct CompactRecord {
    pub(crate) id: TokenId,
    pub(crate) hash: TokenHash,
    pub(crate) expires_at: Micros,
    pub(crate) last_used_at: Micros,
    pub(crate) shared: Arc<Shared>,
    /// Inline up to 24 bytes (most names): no pointer to follow, no allocation.
    pub(crate) name: compact_str::CompactString,
    pub(crate) rare: Option<Box<Rare>>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) created_at: Micros,
}

/// The fields of a record that most tokens leave unset. (Verification reads the pointer to
/// them anyway, for the address allowlist: a revocation or suspension found here costs it
/// nothing more for the tokens that have neither.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rare {
    pub(crate) revoked_at: Micros,
    pub(crate) suspended_at: Micros,
    pub(crate) metadata: Option<Metadata>,
    pub(crate) allowed_ips: Option<IpAllowlist>,
    pub(crate) usage: Option<UsageLimit>,
    pub(crate) description: Option<Box<str>>,
    pub(crate) revocation_reason: Option<Box<str>>,
    pub(crate) successor: Option<TokenId>,
    pub(crate) created_by: Option<TokenId>,
}

impl From<TokenRecord> for CompactRecord {
    /// With shared fields of its own.
    fn from(r: TokenRecord) -> Self {
        Self::new(&r, |key| {
            Arc::new(Shared::new(key.owner, key.tenant, key.scopes, key.prefix))
        })
    }
}

impl CompactRecord {
    /// `r` made compact, its shared fields held where `share` puts them (a copy that other
    /// records with the same ones hold too, made with [`Shared::new`] from the key `share`
    /// is given).
    pub(crate) fn new(r: &TokenRecord, share: impl FnOnce(Shared) -> Arc<Shared>) -> Self {
        let shared = share(Shared::key(
            Arc::clone(&r.owner),
            r.tenant.clone(),
            r.scopes.clone(),
            Arc::clone(&r.prefix),
        ));
        // Read from the record in place: of the rare fields, only what a token has is
        // copied, and a record with none keeps no box for them. Every field is named here,
        // so a field added to the record has to be placed (common or rare) to compile.
        let TokenRecord {
            id: _,
            hash: _,
            expires_at: _,
            last_used_at: _,
            owner: _,
            tenant: _,
            scopes: _,
            prefix: _,
            name: _,
            rate_limit: _,
            created_at: _,
            revoked_at,
            suspended_at,
            metadata,
            allowed_ips,
            usage,
            description,
            revocation_reason,
            successor,
            created_by,
        } = r;
        let has_rare = revoked_at.is_some()
            || suspended_at.is_some()
            || metadata.is_some()
            || allowed_ips.is_some()
            || usage.is_some()
            || description.is_some()
            || revocation_reason.is_some()
            || successor.is_some()
            || created_by.is_some();
        let rare = has_rare.then(|| {
            Box::new(Rare {
                revoked_at: Micros::of_option(*revoked_at),
                suspended_at: Micros::of_option(*suspended_at),
                metadata: metadata.clone(),
                allowed_ips: allowed_ips.clone(),
                usage: usage.as_deref().copied(),
                description: description.clone(),
                revocation_reason: revocation_reason.clone(),
                successor: *successor,
                created_by: *created_by,
            })
        });
        Self {
            id: r.id,
            hash: r.hash,
            expires_at: Micros::of_option(r.expires_at),
            last_used_at: Micros::of_option(r.last_used_at),
            shared,
            name: compact_str::CompactString::new(&r.name),
            rare,
            rate_limit: r.rate_limit,
            created_at: Micros::of(r.created_at),
        }
    }

    /// The record as the store's users see it.
    pub(crate) fn to_record(&self) -> TokenRecord {
        let rare = self.rare.as_deref();
        TokenRecord {
            id: self.id,
            hash: self.hash,
            revoked_at: self.revoked_micros().time(),
            suspended_at: self.suspended_micros().time(),
            expires_at: self.expires_at.time(),
            last_used_at: self.last_used_at.time(),
            owner: Arc::clone(&self.shared.owner),
            tenant: self.shared.tenant.clone(),
            scopes: self.shared.scopes.clone(),
            prefix: Arc::clone(&self.shared.prefix),
            name: Box::from(self.name.as_str()),
            metadata: rare.and_then(|r| r.metadata.clone()),
            allowed_ips: rare.and_then(|r| r.allowed_ips.clone()),
            usage: rare.and_then(|r| r.usage).map(Box::new),
            rate_limit: self.rate_limit,
            created_at: self.created_at.time().unwrap_or(OffsetDateTime::UNIX_EPOCH),
            description: rare.and_then(|r| r.description.clone()),
            revocation_reason: rare.and_then(|r| r.revocation_reason.clone()),
            successor: rare.and_then(|r| r.successor),
            created_by: rare.and_then(|r| r.created_by),
        }
    }

    /// When it was revoked, if it was.
    pub(crate) fn revoked_micros(&self) -> Micros {
        self.rare.as_ref().map_or(Micros::NONE, |r| r.revoked_at)
    }

    /// When it was suspended, if it is.
    pub(crate) fn suspended_micros(&self) -> Micros {
        self.rare.as_ref().map_or(Micros::NONE, |r| r.suspended_at)
    }

    /// The token that replaced this one, if it was rotated.
    pub(crate) fn successor(&self) -> Option<TokenId> {
        self.rare.as_ref().and_then(|r| r.successor)
    }

    /// The token that created this one, if any.
    pub(crate) fn created_by(&self) -> Option<TokenId> {
        self.rare.as_ref().and_then(|r| r.created_by)
    }

    /// Its usage limit, if it counts uses.
    pub(crate) fn usage(&self) -> Option<&UsageLimit> {
        self.rare.as_ref().and_then(|r| r.usage.as_ref())
    }

    /// Whether the token ended (was revoked or expired) before `before`.
    pub(crate) fn ended_before(&self, before: i64) -> bool {
        self.revoked_micros().get().is_some_and(|t| t < before)
            || self.expires_at.get().is_some_and(|t| t < before)
    }
}

/// A record a store lends verification in place
/// ([`TokenStore::read_counted_now`](crate::TokenStore::read_counted_now)): a
/// [`TokenRecord`] (`RecordRef::from(&record)`), or the memory store's compact form.
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken, RecordRef, TokenStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens.issue(NewToken::new("user_1", "ci")).await?;
/// let lent = tokens
///     .store()
///     .read_counted_now(&issued.record.id, |lent, _| lent.map(|r| r.to_record()))
///     .expect("a store in memory answers at once")?;
/// assert_eq!(lent.as_ref(), Some(&issued.record));
/// assert_eq!(RecordRef::from(&issued.record).id(), issued.record.id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a>(Lent<'a>);

/// What a [`RecordRef`] lends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lent<'a> {
    Full(&'a TokenRecord),
    Compact(&'a CompactRecord),
}

impl<'a> From<&'a TokenRecord> for RecordRef<'a> {
    fn from(record: &'a TokenRecord) -> Self {
        Self(Lent::Full(record))
    }
}

impl<'a> RecordRef<'a> {
    /// Lend a compact record.
    pub(crate) fn compact(record: &'a CompactRecord) -> Self {
        Self(Lent::Compact(record))
    }

    /// What is lent.
    pub(crate) fn lent(self) -> Lent<'a> {
        self.0
    }

    /// The record's id.
    pub fn id(&self) -> TokenId {
        match self.0 {
            Lent::Full(r) => r.id,
            Lent::Compact(r) => r.id,
        }
    }

    /// The record, if it is lent as a [`TokenRecord`] (not in a store's form of its own).
    pub(crate) fn as_full(&self) -> Option<&'a TokenRecord> {
        match self.0 {
            Lent::Full(r) => Some(r),
            Lent::Compact(_) => None,
        }
    }

    /// A copy of the record.
    pub fn to_record(&self) -> TokenRecord {
        match self.0 {
            Lent::Full(r) => r.clone(),
            Lent::Compact(r) => r.to_record(),
        }
    }
}

/// What verification reads of a record, in either form. Times come as Unix nanoseconds
/// where verification compares them, as `OffsetDateTime` where it reports them.
pub(crate) trait Verifiable {
    fn id(&self) -> TokenId;
    fn hash(&self) -> &TokenHash;
    fn prefix(&self) -> &Arc<str>;
    fn revoked_at(&self) -> Option<OffsetDateTime>;
    fn suspended_at(&self) -> Option<OffsetDateTime>;
    fn expires_at_nanos(&self) -> Option<i128>;
    fn expires_at(&self) -> Option<OffsetDateTime>;
    fn expires_at_micros(&self) -> Micros;
    fn last_used_at_nanos(&self) -> Option<i128>;
    /// Last use, or creation if never used: when it became idle.
    fn idle_since_nanos(&self) -> i128;
    fn idle_since(&self) -> OffsetDateTime;
    fn allowed_ips(&self) -> Option<&IpAllowlist>;
    fn scopes(&self) -> &Scopes;
    fn tenant(&self) -> Option<&str>;
    fn owner(&self) -> &str;
    fn name(&self) -> &str;
    fn metadata(&self) -> Option<&Metadata>;
    /// Owner, tenant and scopes already packed as a principal holds them, if the record
    /// keeps them so.
    fn packed_shared(&self) -> Option<&[u8]> {
        None
    }
    fn rate_limit(&self) -> Option<RateLimit>;
    fn counts_uses(&self) -> bool;
}

impl Verifiable for TokenRecord {
    fn id(&self) -> TokenId {
        self.id
    }
    fn hash(&self) -> &TokenHash {
        &self.hash
    }
    fn prefix(&self) -> &Arc<str> {
        &self.prefix
    }
    fn revoked_at(&self) -> Option<OffsetDateTime> {
        self.revoked_at
    }
    fn suspended_at(&self) -> Option<OffsetDateTime> {
        self.suspended_at
    }
    fn expires_at_nanos(&self) -> Option<i128> {
        self.expires_at.map(OffsetDateTime::unix_timestamp_nanos)
    }
    fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at
    }
    fn expires_at_micros(&self) -> Micros {
        Micros::of_option(self.expires_at)
    }
    fn last_used_at_nanos(&self) -> Option<i128> {
        self.last_used_at.map(OffsetDateTime::unix_timestamp_nanos)
    }
    fn idle_since_nanos(&self) -> i128 {
        self.idle_since().unix_timestamp_nanos()
    }
    fn idle_since(&self) -> OffsetDateTime {
        self.last_used_at.unwrap_or(self.created_at)
    }
    fn allowed_ips(&self) -> Option<&IpAllowlist> {
        self.allowed_ips.as_ref()
    }
    fn scopes(&self) -> &Scopes {
        &self.scopes
    }
    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    fn owner(&self) -> &str {
        &self.owner
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }
    fn counts_uses(&self) -> bool {
        self.usage.is_some()
    }
}

fn nanos(micros: i64) -> i128 {
    i128::from(micros) * 1_000
}

impl Verifiable for CompactRecord {
    fn id(&self) -> TokenId {
        self.id
    }
    fn hash(&self) -> &TokenHash {
        &self.hash
    }
    fn prefix(&self) -> &Arc<str> {
        &self.shared.prefix
    }
    fn revoked_at(&self) -> Option<OffsetDateTime> {
        self.revoked_micros().time()
    }
    fn suspended_at(&self) -> Option<OffsetDateTime> {
        self.suspended_micros().time()
    }
    fn expires_at_nanos(&self) -> Option<i128> {
        self.expires_at.get().map(nanos)
    }
    fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at.time()
    }
    fn expires_at_micros(&self) -> Micros {
        self.expires_at
    }
    fn last_used_at_nanos(&self) -> Option<i128> {
        self.last_used_at.get().map(nanos)
    }
    fn idle_since_nanos(&self) -> i128 {
        nanos(self.last_used_at.get().unwrap_or(self.created_at.0))
    }
    fn idle_since(&self) -> OffsetDateTime {
        let since = self.last_used_at.get().unwrap_or(self.created_at.0);
        Micros(since).time().unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
    fn allowed_ips(&self) -> Option<&IpAllowlist> {
        self.rare.as_ref().and_then(|r| r.allowed_ips.as_ref())
    }
    fn scopes(&self) -> &Scopes {
        &self.shared.scopes
    }
    fn tenant(&self) -> Option<&str> {
        self.shared.tenant.as_deref()
    }
    fn owner(&self) -> &str {
        &self.shared.owner
    }
    fn name(&self) -> &str {
        self.name.as_str()
    }
    fn metadata(&self) -> Option<&Metadata> {
        self.rare.as_ref().and_then(|r| r.metadata.as_ref())
    }
    fn packed_shared(&self) -> Option<&[u8]> {
        self.shared.packed()
    }
    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }
    fn counts_uses(&self) -> bool {
        self.usage().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TokenRecord {
        TokenRecord {
            id: TokenId::from_bytes([1; 16]),
            hash: TokenHash::of_secret(&[1; 32]),
            revoked_at: None,
            suspended_at: None,
            expires_at: Some(time::macros::datetime!(2027-12-02 03:04:05.123456 UTC)),
            last_used_at: None,
            owner: "u1".into(),
            tenant: Some("t1".into()),
            scopes: Scopes::default(),
            prefix: "dz".into(),
            name: "ci".into(),
            metadata: None,
            allowed_ips: None,
            usage: None,
            rate_limit: None,
            created_at: time::macros::datetime!(2026-12-02 03:04:05.123456 UTC),
            description: None,
            revocation_reason: None,
            successor: None,
            created_by: None,
        }
    }

    #[test]
    fn a_record_survives_being_made_compact() {
        let mut r = record();
        assert_eq!(CompactRecord::from(r.clone()).to_record(), r);
        assert!(
            CompactRecord::from(r.clone()).rare.is_none(),
            "nothing rare set"
        );
        r.description = Some("d".into());
        r.successor = Some(TokenId::from_bytes([7; 16]));
        r.revoked_at = Some(r.created_at);
        r.revocation_reason = Some("leaked".into());
        r.usage = Some(Box::new(UsageLimit::new(3).unwrap()));
        let compact = CompactRecord::from(r.clone());
        assert_eq!(compact.to_record(), r);
        assert_eq!(compact.successor(), r.successor);
    }

    #[test]
    fn times_keep_their_instant_to_the_microsecond_in_utc() {
        let t = time::macros::datetime!(2026-12-02 03:04:05.123456789 +02:00);
        let kept = Micros::of(t).time().unwrap();
        assert_eq!(kept, t.replace_nanosecond(123_456_000).unwrap());
        assert_eq!(kept.offset(), time::UtcOffset::UTC);
        assert_eq!(Micros::of_option(None).time(), None);
        // The earliest date at a positive offset is before the earliest in UTC: held there.
        let early = PrimitiveDateTime::MIN.assume_offset(time::macros::offset!(+10));
        assert_eq!(
            Micros::of(early).time(),
            Some(PrimitiveDateTime::MIN.assume_utc())
        );
    }

    #[test]
    fn a_compact_record_is_small() {
        assert!(std::mem::size_of::<CompactRecord>() <= 144);
    }
}
