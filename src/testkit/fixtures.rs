//! What every case starts from: a clock at a fixed instant, an `ApiTokens` over a counting
//! wrapper of the store under test, and records and tokens made to order.

use std::sync::Arc;

use time::OffsetDateTime;

use super::counting::{Calls, CountingStore};
use crate::{
    ApiTokens, ManualClock, NewToken, Scopes, TokenHash, TokenId, TokenPolicy, TokenRecord,
    TokenStore,
};

/// 2026-01-01T00:00:00Z, where every case's clock starts.
pub fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a valid timestamp")
}

pub(crate) struct Kit<S: TokenStore> {
    pub(crate) tokens: ApiTokens<CountingStore<S>>,
    pub(crate) clock: ManualClock,
    pub(crate) calls: Arc<Calls>,
}

pub(crate) fn kit<S: TokenStore>(store: S) -> Kit<S> {
    kit_with(store, TokenPolicy::default())
}

/// A kit whose store takes `delay` for every read, to widen race windows.
pub(crate) fn kit_slow<S: TokenStore>(store: S, delay: std::time::Duration) -> Kit<S> {
    kit_over(
        CountingStore::new(store).slow_reads(delay),
        TokenPolicy::default(),
    )
}

/// [`kit_slow`] with a policy.
pub(crate) fn kit_slow_with<S: TokenStore>(
    store: S,
    delay: std::time::Duration,
    policy: TokenPolicy,
) -> Kit<S> {
    kit_over(CountingStore::new(store).slow_reads(delay), policy)
}

pub(crate) fn kit_with<S: TokenStore>(store: S, policy: TokenPolicy) -> Kit<S> {
    kit_over(CountingStore::new(store), policy)
}

fn kit_over<S: TokenStore>(store: CountingStore<S>, policy: TokenPolicy) -> Kit<S> {
    let clock = ManualClock::new(epoch());
    let calls = store.calls();
    let tokens = ApiTokens::builder(store, "kit_test")
        .policy(policy)
        .clock(clock.clone())
        .build()
        .expect("a valid configuration");
    Kit {
        tokens,
        clock,
        calls,
    }
}

impl<S: TokenStore> Kit<S> {
    pub(crate) async fn issue(&self, new: NewToken) -> (String, TokenRecord) {
        let issued = self.tokens.issue(new).await.expect("issue");
        (issued.plaintext.expose_secret().to_owned(), issued.record)
    }

    pub(crate) fn store(&self) -> &S {
        self.tokens.store().inner()
    }
}

/// `token` as another issuer would have written it: the prefix replaced, the checksum
/// recomputed (it is public), so only the issuer check can refuse it.
pub(crate) fn reissue(token: &str, from: &str, to: &str) -> String {
    let body = &token[from.len()..token.len() - 8];
    let signed = format!("{to}{body}");
    format!("{signed}{:08x}", crc32fast::hash(signed.as_bytes()))
}

/// A token with this id and a random secret, well-formed and with a valid checksum.
pub(crate) fn forge(prefix: &str, id: &TokenId) -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("random bytes");
    let body = format!("{prefix}_{id}{}", hex::encode(secret));
    format!("{body}{:08x}", crc32fast::hash(body.as_bytes()))
}

pub(crate) fn record(owner: &str, created_at: OffsetDateTime) -> TokenRecord {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("random bytes");
    TokenRecord {
        id: TokenId::from_bytes(id),
        owner: owner.into(),
        tenant: None,
        name: "store-level".into(),
        description: None,
        scopes: Scopes::default(),
        hash: TokenHash::of_secret(&id),
        prefix: "kit_test".into(),
        created_at,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
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
