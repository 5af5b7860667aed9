//! [`Principal`]: who a verified token acts for, owning a copy of what a route needs.

use std::fmt;

use smallvec::SmallVec;
use time::OffsetDateTime;

use crate::record::{Micros, Parts, Scopes, Verifiable, packed_len, put, put_all, shared_parts};
use crate::token::TokenId;

/// Bytes of name, metadata, owner, tenant and scopes (with their lengths) a principal holds
/// without allocating (typical values fit); the whole principal is 96 bytes, which moves
/// without a call to `memcpy`.
const INLINE: usize = 64;

/// `len` zeros, in place when they fit (a few stores, no loop).
fn zeroed(len: usize) -> SmallVec<[u8; INLINE]> {
    if len <= INLINE {
        SmallVec::from_buf_and_len([0; INLINE], len)
    } else {
        SmallVec::from_elem(0, len)
    }
}

/// Who a verified token acts for, and what it may do.
///
/// It owns a copy of what a route needs (the token's id, owner, tenant, name, scopes and
/// expiry), packed into one buffer that holds typical values without allocating. Making one
/// reads the stored record and writes nothing shared: no reference count and no lock word,
/// so threads verifying the same token never contend for a cache line. For the rest of the
/// record (description, creation, last use), read it with
/// [`ApiTokens::get`](crate::ApiTokens::get).
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens
///     .issue(NewToken::new("user_7", "ci").tenant("biz_1").scopes(["repo:read"]))
///     .await?;
/// let who = tokens.verify(issued.plaintext.expose_secret()).await?;
/// assert_eq!(who.token_id(), issued.record.id);
/// assert_eq!((who.owner(), who.tenant(), who.name()), ("user_7", Some("biz_1"), "ci"));
/// assert!(who.has_scope("repo:read") && !who.has_scope("repo:write"));
/// assert_eq!(who.scopes().iter().collect::<Vec<_>>(), ["repo:read"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    id: TokenId,
    /// Kept to the microsecond, as stores keep times (8 bytes, no conversion per verify).
    expires_at: Micros,
    /// Name, metadata, owner, tenant, then each scope, each after its length in bytes
    /// (`u32`, little-endian), packed as [`crate::record`] packs them (owner, tenant and
    /// scopes come last so that a record that keeps them packed gives them in one copy).
    text: SmallVec<[u8; INLINE]>,
}

impl Principal {
    /// A copy of what a route needs of `record`.
    pub(crate) fn of(record: &impl Verifiable) -> Self {
        // Filled in place, where it is returned: the text is written once, in its final
        // place (moving it after its bytes were written one string at a time would stall
        // on loads the stores cannot forward).
        let mut principal = Self {
            id: record.id(),
            expires_at: record.expires_at_micros(),
            text: SmallVec::new(),
        };
        let (name, metadata) = (Some(record.name()), record.metadata().map(|m| m.as_str()));
        let packed = record.packed_shared();
        let shared = || shared_parts(record.owner(), record.tenant(), record.scopes());
        let shared_len = packed.map_or_else(|| shared().map(packed_len).sum(), <[u8]>::len);
        // Sized once and filled in place: one copy per string, the shared ones in one piece
        // when the record keeps them packed.
        let text = &mut principal.text;
        *text = zeroed(packed_len(name) + packed_len(metadata) + shared_len);
        let at = put(text, 0, name);
        let at = put(text, at, metadata);
        let at = match packed {
            Some(packed) => {
                text[at..].copy_from_slice(packed);
                at + packed.len()
            }
            None => put_all(text, at, shared()),
        };
        debug_assert_eq!(at, text.len(), "filled to the end");
        principal
    }

    /// The strings in `text`, in order (`None` for a missing tenant).
    fn parts(&self) -> Parts<'_> {
        Parts(&self.text)
    }

    /// The token's id.
    pub fn token_id(&self) -> TokenId {
        self.id
    }

    /// The user or organisation the token acts for.
    pub fn owner(&self) -> &str {
        self.parts().nth(2).flatten().unwrap_or_default()
    }

    /// The tenant the token is confined to, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.parts().nth(3).flatten()
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        self.parts().next().flatten().unwrap_or_default()
    }

    /// The token's metadata, as compact JSON text (parse it with `serde_json`), if it has
    /// any.
    pub fn metadata_json(&self) -> Option<&str> {
        self.parts().nth(1).flatten()
    }

    /// The token's scopes, sorted.
    pub fn scopes(&self) -> PrincipalScopes<'_> {
        let mut parts = self.parts();
        parts.nth(3);
        PrincipalScopes { parts }
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().contains(scope)
    }

    /// When the token expires, if ever (to the microsecond, in UTC, as stores keep it).
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires_at.time()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("token_id", &self.id)
            .field("owner", &self.owner())
            .field("tenant", &self.tenant())
            .field("name", &self.name())
            .field("scopes", &self.scopes())
            .field("metadata", &self.metadata_json())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// The scopes of a verified token, borrowed from its [`Principal`]: sorted, without
/// duplicates, as in the token's record.
///
/// ```
/// use api_tokens::{ApiTokens, MemoryStore, NewToken, Scopes};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
/// let issued = tokens
///     .issue(NewToken::new("u1", "ci").scopes(["b:write", "a:read"]))
///     .await?;
/// let who = tokens.verify(issued.plaintext.expose_secret()).await?;
/// let scopes = who.scopes();
/// assert_eq!(scopes.len(), 2);
/// assert!(scopes.contains("a:read"));
/// assert!(scopes.contains_all(&Scopes::parse(["a:read"])?));
/// assert_eq!(scopes.to_scopes(), issued.record.scopes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct PrincipalScopes<'a> {
    parts: Parts<'a>,
}

impl<'a> PrincipalScopes<'a> {
    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.parts.clone().flatten()
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Whether `scope` is one of them.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is one of them.
    pub fn contains_all(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    /// The scopes as an owned [`Scopes`] (allocates).
    pub fn to_scopes(&self) -> Scopes {
        Scopes::from_sorted(self.iter())
    }
}

impl fmt::Debug for PrincipalScopes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq<Scopes> for PrincipalScopes<'_> {
    fn eq(&self, other: &Scopes) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CompactRecord, Metadata, Scopes, TokenRecord};

    fn record(owner: &str, tenant: Option<&str>, name: &str, scopes: &[&str]) -> TokenRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        TokenRecord {
            id: TokenId::from_bytes([7; 16]),
            hash: crate::hash::TokenHash::from_bytes([1; 32]),
            revoked_at: None,
            expires_at: Some(now),
            last_used_at: None,
            created_at: now,
            owner: owner.into(),
            tenant: tenant.map(Into::into),
            scopes: Scopes::parse(scopes).unwrap(),
            prefix: "dz".into(),
            name: name.into(),
            description: None,
            revocation_reason: None,
            successor: None,
            created_by: None,
            suspended_at: None,
            metadata: None,
            allowed_ips: None,
            usage: None,
            rate_limit: None,
        }
    }

    #[test]
    fn is_small_enough_to_move_without_a_call() {
        assert!(std::mem::size_of::<Principal>() <= 96);
    }

    #[test]
    fn gives_back_what_it_copied_inline_and_on_the_heap() {
        let long = "x".repeat(300);
        let many: Vec<String> = (0..64).map(|i| format!("scope:{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for (owner, tenant, name, scopes) in [
            ("u", None, "n", &[][..]),
            ("", Some(""), "", &["a"][..]),
            ("user_1", Some("biz_1"), "ci", &["b:write", "a:read"][..]),
            (long.as_str(), Some(long.as_str()), long.as_str(), &many[..]),
        ] {
            let r = record(owner, tenant, name, scopes);
            let p = Principal::of(&r);
            assert_eq!(p.token_id(), r.id);
            assert_eq!(p.owner(), owner);
            assert_eq!(p.tenant(), tenant);
            assert_eq!(p.name(), name);
            assert_eq!(p.expires_at(), r.expires_at);
            assert!(p.scopes() == r.scopes);
            assert_eq!(p.scopes().to_scopes(), r.scopes);
            assert_eq!(p.scopes().len(), r.scopes.len());
            for s in r.scopes.iter() {
                assert!(p.has_scope(s));
            }
            assert!(!p.has_scope("absent"));
            assert_eq!(p.clone(), p);
            assert_eq!(p.metadata_json(), None);
            // The memory store's records give owner, tenant and scopes packed in one piece:
            // the same principal.
            let compact = CompactRecord::from(r.clone());
            assert!(compact.packed_shared().is_some());
            assert_eq!(Principal::of(&compact), p);
            // With metadata, which sits between the name and the shared fields.
            let mut r = r;
            r.metadata = Some(Metadata::parse(r#"{"team":"infra"}"#).unwrap());
            let (p, compact) = (Principal::of(&r), CompactRecord::from(r.clone()));
            assert_eq!(p.metadata_json(), Some(r#"{"team":"infra"}"#));
            assert_eq!((p.owner(), p.tenant(), p.name()), (owner, tenant, name));
            assert!(p.scopes() == r.scopes);
            assert_eq!(Principal::of(&compact), p);
        }
    }

    #[test]
    fn debug_shows_who_and_never_a_hash() {
        let p = Principal::of(&record("user_1", None, "ci", &["a:read"]));
        let shown = format!("{p:?}");
        assert!(
            shown.contains("user_1") && shown.contains("a:read"),
            "{shown}"
        );
        assert!(!shown.contains("0101"), "{shown}");
    }
}
