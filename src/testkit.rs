//! The conformance suite: every lifecycle rule, run against any [`TokenStore`].
//!
//! A store passes when every case below passes against it. Run them all, one test each,
//! with [`conformance_tests!`](crate::conformance_tests) (needs `tokio` with the `macros`
//! and `rt-multi-thread` features in your dev-dependencies):
//!
//! ```no_run
//! // tests/conformance.rs: for your own store, put its constructor in the block.
//! api_tokens::conformance_tests!(async { api_tokens::MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! The expression is evaluated once per case and must give a fresh, empty store (for a
//! database: a fresh table or schema), because some cases count or purge everything.
//!
//! Each case is also a public `async fn` taking the store, for running one by hand; they
//! panic with a message naming the broken rule.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use time::{Duration, OffsetDateTime};

use crate::store::{ListFilter, ListPage, RevokeOutcome, StoreError, StoreErrorKind, TokenStore};
use crate::{
    ApiTokens, AuthError, Error, Expiry, ListRequest, ManualClock, NewToken, Requirements, Scopes,
    TokenHash, TokenId, TokenPolicy, TokenRecord,
};

/// Define one `#[tokio::test]` per conformance case, each on a fresh store from `$make`
/// (an expression giving a future of the store, evaluated once per case).
///
/// With `optional` first, `$make` gives a future of `Option<store>`, and a case whose
/// store is `None` returns at once: for backends that are not always reachable. Decide in
/// `$make` whether a missing backend is a skip or a failure (in CI it should fail).
#[macro_export]
macro_rules! conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@cases (optional) $make;
            issue_and_verify,
            only_the_hash_is_stored,
            insert_never_overwrites,
            store_round_trips_every_field,
            malformed_tokens_never_touch_the_store,
            unknown_id_and_wrong_secret_look_the_same,
            invalid_fields_are_named_and_nothing_is_written,
            expiry_follows_the_clock,
            lifetime_policy_is_enforced,
            revoke_by_id,
            revoke_the_presented_token,
            revoke_all_of_an_owner,
            revocation_cannot_be_undone,
            last_use_is_written_once_per_interval,
            last_use_only_moves_forward,
            scopes_and_tenant_are_enforced,
            listing_is_paged_newest_first_and_private,
            rotation_with_and_without_grace,
            shorten_expiry_only_moves_earlier,
            purge_removes_only_long_dead_records,
            verifies_racing_a_revoke,
            concurrent_issues_are_all_kept
        );
    };
    ($make:expr) => {
        $crate::conformance_tests!(optional async { ::core::option::Option::Some($make.await) });
    };
    (@cases (optional) $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let ::core::option::Option::Some(store) = $make.await {
                    $crate::testkit::$case(store).await;
                }
            }
        )*
    };
}

/// Run every case in order, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: TokenStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    issue_and_verify(make().await).await;
    only_the_hash_is_stored(make().await).await;
    insert_never_overwrites(make().await).await;
    store_round_trips_every_field(make().await).await;
    malformed_tokens_never_touch_the_store(make().await).await;
    unknown_id_and_wrong_secret_look_the_same(make().await).await;
    invalid_fields_are_named_and_nothing_is_written(make().await).await;
    expiry_follows_the_clock(make().await).await;
    lifetime_policy_is_enforced(make().await).await;
    revoke_by_id(make().await).await;
    revoke_the_presented_token(make().await).await;
    revoke_all_of_an_owner(make().await).await;
    revocation_cannot_be_undone(make().await).await;
    last_use_is_written_once_per_interval(make().await).await;
    last_use_only_moves_forward(make().await).await;
    scopes_and_tenant_are_enforced(make().await).await;
    listing_is_paged_newest_first_and_private(make().await).await;
    rotation_with_and_without_grace(make().await).await;
    shorten_expiry_only_moves_earlier(make().await).await;
    purge_removes_only_long_dead_records(make().await).await;
    verifies_racing_a_revoke(make().await).await;
    concurrent_issues_are_all_kept(make().await).await;
}

/// How many times each [`TokenStore`] method was called on a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Calls {
    /// `insert` calls.
    pub insert: AtomicU64,
    /// `get` calls.
    pub get: AtomicU64,
    /// `list` calls.
    pub list: AtomicU64,
    /// `record_last_use` calls.
    pub record_last_use: AtomicU64,
    /// `revoke` calls.
    pub revoke: AtomicU64,
    /// `revoke_all` calls.
    pub revoke_all: AtomicU64,
    /// `shorten_expiry` calls.
    pub shorten_expiry: AtomicU64,
    /// `purge` calls.
    pub purge: AtomicU64,
}

impl Calls {
    /// Every write call (all but `get` and `list`).
    pub fn writes(&self) -> u64 {
        [
            &self.insert,
            &self.record_last_use,
            &self.revoke,
            &self.revoke_all,
            &self.shorten_expiry,
            &self.purge,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.writes() + self.get.load(Ordering::SeqCst) + self.list.load(Ordering::SeqCst)
    }
}

/// A store that counts the calls made to the store it wraps.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    calls: Arc<Calls>,
}

impl<S> CountingStore<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Arc::default(),
        }
    }

    /// The counts so far.
    pub fn calls(&self) -> Arc<Calls> {
        Arc::clone(&self.calls)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

impl<S: TokenStore> TokenStore for CountingStore<S> {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        bump(&self.calls.insert);
        self.inner.insert(record).await
    }
    async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
        bump(&self.calls.get);
        self.inner.get(id).await
    }
    async fn list(&self, filter: &ListFilter<'_>) -> Result<ListPage, StoreError> {
        bump(&self.calls.list);
        self.inner.list(filter).await
    }
    async fn record_last_use(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        bump(&self.calls.record_last_use);
        self.inner.record_last_use(id, at).await
    }
    async fn revoke(
        &self,
        id: &TokenId,
        owner: &str,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<RevokeOutcome, StoreError> {
        bump(&self.calls.revoke);
        self.inner.revoke(id, owner, at, reason).await
    }
    async fn revoke_all(
        &self,
        owner: &str,
        tenant: Option<&str>,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) -> Result<u64, StoreError> {
        bump(&self.calls.revoke_all);
        self.inner.revoke_all(owner, tenant, at, reason).await
    }
    async fn shorten_expiry(&self, id: &TokenId, at: OffsetDateTime) -> Result<bool, StoreError> {
        bump(&self.calls.shorten_expiry);
        self.inner.shorten_expiry(id, at).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        bump(&self.calls.purge);
        self.inner.purge(before).await
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures

/// 2026-01-01T00:00:00Z, where every case's clock starts.
fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a valid timestamp")
}

struct Kit<S: TokenStore> {
    tokens: ApiTokens<CountingStore<S>>,
    clock: ManualClock,
    calls: Arc<Calls>,
}

fn kit<S: TokenStore>(store: S) -> Kit<S> {
    kit_with(store, TokenPolicy::default())
}

fn kit_with<S: TokenStore>(store: S, policy: TokenPolicy) -> Kit<S> {
    let clock = ManualClock::new(epoch());
    let store = CountingStore::new(store);
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
    async fn issue(&self, new: NewToken) -> (String, TokenRecord) {
        let issued = self.tokens.issue(new).await.expect("issue");
        (issued.plaintext.expose_secret().to_owned(), issued.record)
    }

    fn store(&self) -> &S {
        self.tokens.store().inner()
    }
}

/// A token with this id and a random secret, well-formed and with a valid checksum.
fn forge(prefix: &str, id: &TokenId) -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("random bytes");
    let body = format!("{prefix}_{id}{}", hex::encode(secret));
    format!("{body}{:08x}", crc32fast::hash(body.as_bytes()))
}

fn record(owner: &str, created_at: OffsetDateTime) -> TokenRecord {
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
    }
}

// ---------------------------------------------------------------------------------------
// Cases

/// Issue a token, verify it, and read back what was stored.
pub async fn issue_and_verify<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k
        .issue(
            NewToken::new("alice", "  deploy-script  ")
                .tenant("biz_1")
                .description("Deploys from CI")
                .scopes(["tokens:read", "profile:read"]),
        )
        .await;
    assert!(plain.starts_with("kit_test_"), "the prefix leads the token");
    assert_eq!(&*rec.name, "deploy-script", "names are trimmed");
    assert_eq!(rec.created_at, epoch());
    assert_eq!(
        rec.expires_at,
        Some(epoch() + Duration::days(365)),
        "default lifetime is 365 days"
    );
    assert!(
        plain.starts_with(&rec.display_prefix()),
        "the display prefix is the token's start"
    );

    let who = k
        .tokens
        .verify(&plain)
        .await
        .expect("a fresh token verifies");
    assert_eq!(who.token_id(), rec.id);
    assert_eq!(who.owner(), "alice");
    assert_eq!(who.tenant(), Some("biz_1"));
    assert_eq!(who.name(), "deploy-script");
    assert_eq!(
        who.scopes().iter().collect::<Vec<_>>(),
        ["profile:read", "tokens:read"]
    );
    assert_eq!(who.expires_at(), rec.expires_at);

    let stored = k
        .store()
        .get(&rec.id)
        .await
        .expect("get")
        .expect("the record exists");
    assert_eq!(
        stored.last_used_at,
        Some(epoch()),
        "verification records last use"
    );
    assert_eq!(
        TokenRecord {
            last_used_at: None,
            ..TokenRecord::clone(&stored)
        },
        rec,
        "the store keeps the record as issued"
    );
}

/// The store holds the SHA-256 of the secret and never the token; nothing prints a secret.
pub async fn only_the_hash_is_stored<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "ci")).await;
    let parsed = k.tokens.format().parse(&plain).expect("parses");
    assert!(
        rec.hash.ct_eq(&parsed.secret_hash()),
        "the stored hash is SHA-256 of the secret"
    );
    let secret_part = &plain[rec.display_prefix().len() + 24..plain.len() - 8];
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    let who = k.tokens.verify(&plain).await.expect("verifies");
    for shown in [
        format!("{stored:?}"),
        format!("{:?}", stored.info()),
        format!("{who:?}"),
        format!("{parsed:?}"),
    ] {
        assert!(
            !shown.contains(secret_part),
            "a secret leaked into Debug: {shown}"
        );
    }
    let wrong = forge("kit_test", &rec.id);
    let err = k.tokens.verify(&wrong).await.expect_err("wrong secret");
    assert!(
        !err.to_string().contains(&wrong[9..]),
        "a token leaked into an error message"
    );
}

/// Inserting an existing id is an error and leaves the first record untouched.
pub async fn insert_never_overwrites<S: TokenStore>(store: S) {
    let first = record("alice", epoch());
    store.insert(&first).await.expect("first insert");
    let mut second = record("mallory", epoch() + Duration::days(1));
    second.id = first.id;
    let err = store
        .insert(&second)
        .await
        .expect_err("a duplicate id must fail");
    assert_eq!(err.kind(), StoreErrorKind::DuplicateId, "{err}");
    let kept = store.get(&first.id).await.expect("get").expect("exists");
    assert_eq!(*kept, first, "a duplicate insert must not overwrite");
}

/// Every field reads back exactly as written, at microsecond precision.
pub async fn store_round_trips_every_field<S: TokenStore>(store: S) {
    let t = epoch() + Duration::microseconds(123_456);
    let mut full = record("alice ✓", t);
    full.tenant = Some("tenant/ü".into());
    full.name = "名前 with spaces".into();
    full.description = Some("line one\nline two".into());
    full.scopes = Scopes::parse(["a:b", "user:api-token:write"]).expect("scopes");
    full.expires_at = Some(t + Duration::days(30));
    full.last_used_at = Some(t + Duration::seconds(5));
    full.revoked_at = Some(t + Duration::seconds(9));
    full.revocation_reason = Some("leaked in a log".into());
    store.insert(&full).await.expect("insert");
    let back = store.get(&full.id).await.expect("get").expect("exists");
    assert_eq!(*back, full);
    let bare = record("bob", t);
    store.insert(&bare).await.expect("insert");
    assert_eq!(
        *store.get(&bare.id).await.expect("get").expect("exists"),
        bare
    );
    assert!(
        store.get(&record("x", t).id).await.expect("get").is_none(),
        "unknown ids are None"
    );
}

/// Garbage is rejected by parsing alone, with a typed error, before any store call.
pub async fn malformed_tokens_never_touch_the_store<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, _) = k.issue(NewToken::new("alice", "ci")).await;
    let before = k.calls.total();
    let mut typo = plain.clone().into_bytes();
    let last = typo.len() - 12;
    typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
    let cases = [
        String::new(),
        "x".repeat(10_000),
        "kit_test_".to_owned(),
        "kit_test_ZZZ".to_owned(),
        plain.replace("kit_test", "other"),
        format!("{plain}0"),
        plain[..plain.len() - 1].to_owned(),
        format!("{} ", plain),
        plain.replace('_', "-"),
        String::from_utf8(typo).expect("ascii"),
        "'; DROP TABLE api_tokens; --".to_owned(),
        "kit_test_\u{0}\u{0}".to_owned(),
        "kit_test_🦀".to_owned(),
    ];
    for bad in &cases {
        match k.tokens.verify(bad).await {
            Err(AuthError::Malformed(_)) => {}
            other => panic!("{:?}… should be malformed, got {other:?}", bad.get(..20)),
        }
    }
    assert_eq!(
        k.calls.total(),
        before,
        "malformed tokens must not reach the store"
    );
}

/// An unknown id and a wrong secret give the same error.
pub async fn unknown_id_and_wrong_secret_look_the_same<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, rec) = k.issue(NewToken::new("alice", "ci")).await;
    let wrong_secret = k.tokens.verify(&forge("kit_test", &rec.id)).await;
    let unknown = k
        .tokens
        .verify(&forge("kit_test", &record("x", epoch()).id))
        .await;
    assert!(
        matches!(wrong_secret, Err(AuthError::Invalid)),
        "{wrong_secret:?}"
    );
    assert!(matches!(unknown, Err(AuthError::Invalid)), "{unknown:?}");
    let (a, b) = (wrong_secret.unwrap_err(), unknown.unwrap_err());
    assert_eq!(a.to_string(), b.to_string());
    assert_eq!((a.status(), a.code()), (b.status(), b.code()));
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(
        stored.last_used_at, None,
        "a failed verification records no use"
    );
}

/// Every rejected field is named at once, and nothing is written.
pub async fn invalid_fields_are_named_and_nothing_is_written<S: TokenStore>(store: S) {
    let k = kit(store);
    let err = k
        .tokens
        .issue(
            NewToken::new("", "   ")
                .tenant("a\u{7}b")
                .description("d".repeat(1025))
                .scopes(["ok", "not ok"])
                .expires(Expiry::InDays(0)),
        )
        .await
        .expect_err("all invalid");
    assert_eq!(err.status(), 422);
    let v = err.validation().expect("a validation error");
    for field in [
        "owner",
        "tenant",
        "name",
        "description",
        "scopes[1]",
        "expires_in_days",
    ] {
        assert!(v.has(field), "{field} should be named in {v}");
    }
    for bad in [
        NewToken::new("alice", "x".repeat(256)),
        NewToken::new("alice", "tab\tname"),
        NewToken::new("alice", "ok").expires(Expiry::InDays(366)),
        NewToken::new("alice", "ok").expires(Expiry::InDays(-5)),
        NewToken::new("alice", "ok").expires(Expiry::At(epoch() - Duration::seconds(1))),
        NewToken::new("alice", "ok").expires(Expiry::After(Duration::days(400))),
        NewToken::new("alice", "ok").expires(Expiry::Never),
        NewToken::new("alice", "ok").scopes([""]),
    ] {
        let err = k.tokens.issue(bad.clone()).await.expect_err("invalid");
        assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(
        k.calls.insert.load(Ordering::SeqCst),
        0,
        "rejected requests write nothing"
    );
    assert!(matches!(
        k.tokens
            .revoke("alice", record("a", epoch()).id, Some("bad\u{0}reason"))
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        k.tokens
            .rotate("alice", record("a", epoch()).id, Duration::seconds(-1))
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        k.tokens.purge(Duration::seconds(-1)).await,
        Err(Error::Invalid(_))
    ));
}

/// Tokens work until `expires_at` and fail from then on, as the clock says.
pub async fn expiry_follows_the_clock<S: TokenStore>(store: S) {
    let k = kit(store);
    let (day, _) = k
        .issue(NewToken::new("alice", "d").expires(Expiry::InDays(1)))
        .await;
    let (hour, _) = k
        .issue(NewToken::new("alice", "h").expires(Expiry::After(Duration::hours(1))))
        .await;
    let at = epoch() + Duration::minutes(90);
    let (exact, rec) = k
        .issue(NewToken::new("alice", "a").expires(Expiry::At(at)))
        .await;
    assert_eq!(rec.expires_at, Some(at));
    let (year, _) = k.issue(NewToken::new("alice", "y")).await;

    k.clock.advance(Duration::minutes(59));
    for t in [&day, &hour, &exact, &year] {
        k.tokens.verify(t).await.expect("not yet expired");
    }
    k.clock.advance(Duration::minutes(1));
    assert!(
        matches!(k.tokens.verify(&hour).await, Err(AuthError::Expired { .. })),
        "expiry is inclusive"
    );
    k.clock.advance(Duration::minutes(30));
    assert!(matches!(
        k.tokens.verify(&exact).await,
        Err(AuthError::Expired { .. })
    ));
    k.clock
        .set(epoch() + Duration::days(1) - Duration::seconds(1));
    k.tokens.verify(&day).await.expect("one second left");
    k.clock.advance(Duration::seconds(1));
    let err = k.tokens.verify(&day).await.expect_err("expired");
    assert!(
        matches!(err, AuthError::Expired { .. }) && err.status() == 401,
        "{err:?}"
    );
    k.clock.set(epoch() + Duration::days(365));
    assert!(
        matches!(k.tokens.verify(&year).await, Err(AuthError::Expired { .. })),
        "the default lifetime is 365 days"
    );
}

/// Day counts are bounded by the policy; "never" only where the policy allows it.
pub async fn lifetime_policy_is_enforced<S: TokenStore>(store: S) {
    let k = kit_with(
        store,
        TokenPolicy::default().allow_never(true).max_lifetime(None),
    );
    let (never, rec) = k
        .issue(NewToken::new("alice", "forever").expires(Expiry::Never))
        .await;
    assert_eq!(rec.expires_at, None);
    let (long, rec2) = k
        .issue(NewToken::new("alice", "long").expires(Expiry::InDays(3650)))
        .await;
    assert_eq!(rec2.expires_at, Some(epoch() + Duration::days(3650)));
    k.clock.advance(Duration::days(3000));
    k.tokens.verify(&never).await.expect("never expires");
    k.tokens
        .verify(&long)
        .await
        .expect("ten-year token still valid");
    k.clock.advance(Duration::days(650));
    assert!(matches!(
        k.tokens.verify(&long).await,
        Err(AuthError::Expired { .. })
    ));
    k.tokens.verify(&never).await.expect("never expires");
    let err = k
        .tokens
        .issue(NewToken::new("alice", "x").expires(Expiry::InDays(0)))
        .await
        .expect_err("0 days");
    assert!(err.validation().is_some_and(|v| v.has("expires_in_days")));
}

/// Revoke one token by id: immediate, recorded, owner-scoped and reported when repeated.
pub async fn revoke_by_id<S: TokenStore>(store: S) {
    let k = kit(store);
    let (a1, r1) = k.issue(NewToken::new("alice", "one")).await;
    let (a2, _) = k.issue(NewToken::new("alice", "two")).await;
    k.tokens.verify(&a1).await.expect("valid before");

    let err = k
        .tokens
        .revoke("mallory", r1.id, None)
        .await
        .expect_err("not mallory's");
    assert!(
        matches!(err, Error::NotFound),
        "another owner's id is not found: {err:?}"
    );
    k.tokens
        .verify(&a1)
        .await
        .expect("still valid after a foreign revoke");
    let unknown = k
        .tokens
        .revoke("alice", record("a", epoch()).id, None)
        .await;
    assert!(matches!(unknown, Err(Error::NotFound)));

    k.clock.advance(Duration::seconds(10));
    k.tokens
        .revoke("alice", r1.id, Some("  leaked  "))
        .await
        .expect("revoke");
    let err = k.tokens.verify(&a1).await.expect_err("revoked");
    assert!(
        matches!(err, AuthError::Revoked { revoked_at } if revoked_at == epoch() + Duration::seconds(10)),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);
    k.tokens
        .verify(&a2)
        .await
        .expect("the owner's other token still works");

    let stored = k.store().get(&r1.id).await.expect("get").expect("kept");
    assert_eq!(stored.revoked_at, Some(epoch() + Duration::seconds(10)));
    assert_eq!(stored.revocation_reason.as_deref(), Some("leaked"));

    k.clock.advance(Duration::seconds(10));
    let again = k
        .tokens
        .revoke("alice", r1.id, Some("again"))
        .await
        .expect_err("already");
    assert!(
        matches!(again, Error::AlreadyRevoked { revoked_at } if revoked_at == epoch() + Duration::seconds(10))
    );
    let stored = k.store().get(&r1.id).await.expect("get").expect("kept");
    assert_eq!(
        stored.revocation_reason.as_deref(),
        Some("leaked"),
        "the first revocation stands"
    );
}

/// Revoke the token in use: only that token, and it fails from the next request on.
pub async fn revoke_the_presented_token<S: TokenStore>(store: S) {
    let k = kit(store);
    let (a1, r1) = k.issue(NewToken::new("alice", "one")).await;
    let (a2, _) = k.issue(NewToken::new("alice", "two")).await;
    let who = k
        .tokens
        .revoke_presented(&a1, None)
        .await
        .expect("revoke itself");
    assert_eq!(who.token_id(), r1.id);
    assert!(matches!(
        k.tokens.verify(&a1).await,
        Err(AuthError::Revoked { .. })
    ));
    k.tokens
        .verify(&a2)
        .await
        .expect("other tokens keep working");
    let err = k
        .tokens
        .revoke_presented(&a1, None)
        .await
        .expect_err("gone");
    assert_eq!(
        err.status(),
        401,
        "a revoked token cannot authenticate a revoke: {err:?}"
    );
    let err = k
        .tokens
        .revoke_presented("garbage", None)
        .await
        .expect_err("garbage");
    assert_eq!(err.status(), 401);
}

/// Revoke all of an owner's tokens (optionally one tenant's) in one call.
pub async fn revoke_all_of_an_owner<S: TokenStore>(store: S) {
    let k = kit(store);
    let mut alice = Vec::new();
    for i in 0..3 {
        alice.push(
            k.issue(NewToken::new("alice", format!("a{i}")).tenant("t1"))
                .await
                .0,
        );
    }
    let (other_tenant, _) = k.issue(NewToken::new("alice", "t2").tenant("t2")).await;
    let (bob, _) = k.issue(NewToken::new("bob", "b")).await;
    let (_, done) = k.issue(NewToken::new("alice", "already")).await;
    k.tokens
        .revoke("alice", done.id, None)
        .await
        .expect("revoke");

    assert_eq!(
        k.tokens
            .revoke_all("alice", Some("t1"), Some("offboarding"))
            .await
            .expect("revoke all"),
        3
    );
    k.tokens
        .verify(&other_tenant)
        .await
        .expect("other tenant untouched");
    assert_eq!(
        k.tokens
            .revoke_all("alice", None, None)
            .await
            .expect("revoke all"),
        1
    );
    assert_eq!(
        k.tokens
            .revoke_all("alice", None, None)
            .await
            .expect("revoke all"),
        0
    );
    for t in alice.iter().chain([&other_tenant]) {
        assert!(matches!(
            k.tokens.verify(t).await,
            Err(AuthError::Revoked { .. })
        ));
    }
    k.tokens
        .verify(&bob)
        .await
        .expect("another owner's token is untouched");
    let done = k.store().get(&done.id).await.expect("get").expect("kept");
    assert_eq!(
        done.revocation_reason, None,
        "an earlier revocation is not overwritten"
    );
}

/// Nothing brings a revoked token back.
pub async fn revocation_cannot_be_undone<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "one")).await;
    k.tokens
        .revoke("alice", rec.id, None)
        .await
        .expect("revoke");
    let later = epoch() + Duration::days(1);
    assert!(
        !k.store()
            .shorten_expiry(&rec.id, later)
            .await
            .expect("shorten")
    );
    k.store()
        .record_last_use(&rec.id, later)
        .await
        .expect("last use");
    assert!(matches!(
        k.tokens.rotate("alice", rec.id, Duration::ZERO).await,
        Err(Error::NotActive)
    ));
    assert_eq!(
        k.store()
            .revoke_all("alice", None, later, None)
            .await
            .expect("revoke all"),
        0
    );
    let stored = k.store().get(&rec.id).await.expect("get").expect("kept");
    assert_eq!(stored.revoked_at, Some(epoch()));
    assert!(matches!(
        k.tokens.verify(&plain).await,
        Err(AuthError::Revoked { .. })
    ));
}

/// 1 000 verifications inside one interval write last use at most once; it stays fresh to
/// within the interval.
pub async fn last_use_is_written_once_per_interval<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "busy")).await;
    let interval = k.tokens.last_use_interval();
    for _ in 0..1000 {
        k.tokens.verify(&plain).await.expect("verify");
        k.clock.advance(Duration::milliseconds(10)); // 10 s in all, inside 60 s
    }
    assert_eq!(
        k.calls.record_last_use.load(Ordering::SeqCst),
        1,
        "one write for 1 000 verifies"
    );
    assert_eq!(
        k.calls.get.load(Ordering::SeqCst),
        1000,
        "one read per verify"
    );
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(stored.last_used_at, Some(epoch()));

    k.clock.set(epoch() + interval - Duration::milliseconds(1));
    k.tokens.verify(&plain).await.expect("verify");
    assert_eq!(k.calls.record_last_use.load(Ordering::SeqCst), 1);
    k.clock.set(epoch() + interval);
    k.tokens.verify(&plain).await.expect("verify");
    assert_eq!(
        k.calls.record_last_use.load(Ordering::SeqCst),
        2,
        "a write once the interval passed"
    );
    let stored = k.store().get(&rec.id).await.expect("get").expect("exists");
    assert_eq!(stored.last_used_at, Some(epoch() + interval));
}

/// `record_last_use` never moves time backwards.
pub async fn last_use_only_moves_forward<S: TokenStore>(store: S) {
    let r = record("alice", epoch());
    store.insert(&r).await.expect("insert");
    let t1 = epoch() + Duration::minutes(5);
    assert!(store.record_last_use(&r.id, t1).await.expect("write"));
    assert!(!store.record_last_use(&r.id, epoch()).await.expect("older"));
    assert!(!store.record_last_use(&r.id, t1).await.expect("same"));
    assert_eq!(
        store
            .get(&r.id)
            .await
            .expect("get")
            .expect("exists")
            .last_used_at,
        Some(t1)
    );
    assert!(
        !store
            .record_last_use(&record("x", epoch()).id, t1)
            .await
            .expect("unknown id")
    );
}

/// Required scopes and tenants are enforced, with 403s.
pub async fn scopes_and_tenant_are_enforced<S: TokenStore>(store: S) {
    let k = kit(store);
    let (reader, _) = k
        .issue(
            NewToken::new("alice", "r")
                .tenant("biz_1")
                .scopes(["profile:read", "tokens:read"]),
        )
        .await;
    let (plain, _) = k.issue(NewToken::new("alice", "none")).await;
    k.tokens
        .verify_with(
            &reader,
            &Requirements::scopes(&["tokens:read"]).tenant(Some("biz_1")),
        )
        .await
        .expect("has the scope and the tenant");
    match k
        .tokens
        .verify_with(
            &reader,
            &Requirements::scopes(&["tokens:read", "tokens:write", "x"]),
        )
        .await
    {
        Err(e @ AuthError::InsufficientScope { .. }) => {
            assert_eq!(e.status(), 403);
            let AuthError::InsufficientScope { missing } = e else {
                unreachable!()
            };
            assert_eq!(missing, ["tokens:write", "x"]);
        }
        other => panic!("expected insufficient scope, got {other:?}"),
    }
    let err = k
        .tokens
        .verify_with(&reader, &Requirements::NONE.tenant(Some("biz_2")))
        .await
        .expect_err("other tenant");
    assert!(matches!(err, AuthError::WrongTenant) && err.status() == 403);
    let err = k
        .tokens
        .verify_with(&plain, &Requirements::NONE.tenant(Some("biz_1")))
        .await
        .expect_err("no tenant");
    assert!(matches!(err, AuthError::WrongTenant));
    k.tokens.verify(&plain).await.expect("no requirements");
}

/// Listing: the owner's own tokens, newest first, paged, active only unless asked, with a total.
pub async fn listing_is_paged_newest_first_and_private<S: TokenStore>(store: S) {
    let k = kit(store);
    let mut ids = Vec::new();
    for i in 0..25 {
        let tenant = if i % 5 == 0 { "t2" } else { "t1" };
        ids.push(
            k.issue(NewToken::new("alice", format!("tok{i:02}")).tenant(tenant))
                .await
                .1
                .id,
        );
        k.clock.advance(Duration::seconds(1));
    }
    for i in 0..3 {
        k.issue(NewToken::new("bob", format!("bob{i}"))).await;
    }
    ids.reverse(); // newest first

    let page1 = k
        .tokens
        .list(&ListRequest::new("alice").per_page(10))
        .await
        .expect("list");
    assert_eq!(page1.meta.total, 25);
    assert_eq!(
        page1.data.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[..10]
    );
    let page3 = k
        .tokens
        .list(&ListRequest::new("alice").per_page(10).page(3))
        .await
        .expect("list");
    assert_eq!(
        page3.data.iter().map(|t| t.id).collect::<Vec<_>>(),
        ids[20..]
    );
    let page4 = k
        .tokens
        .list(&ListRequest::new("alice").per_page(10).page(4))
        .await
        .expect("list");
    assert!(page4.data.is_empty() && page4.meta.total == 25);
    let huge = k
        .tokens
        .list(&ListRequest::new("alice").per_page(100).page(u32::MAX))
        .await
        .expect("list");
    assert!(huge.data.is_empty());

    let bob = k.tokens.list(&ListRequest::new("bob")).await.expect("list");
    assert_eq!(bob.meta.total, 3);
    assert!(
        bob.data.iter().all(|t| &*t.owner == "bob"),
        "only the owner's tokens"
    );
    assert_eq!(
        k.tokens
            .list(&ListRequest::new("nobody"))
            .await
            .expect("list")
            .meta
            .total,
        0
    );
    let t2 = k
        .tokens
        .list(&ListRequest::new("alice").tenant("t2"))
        .await
        .expect("list");
    assert_eq!(t2.meta.total, 5);
    assert!(t2.data.iter().all(|t| t.tenant_id.as_deref() == Some("t2")));

    k.tokens
        .revoke("alice", ids[0], Some("r"))
        .await
        .expect("revoke");
    let (_, short) = k
        .issue(NewToken::new("alice", "short").expires(Expiry::After(Duration::seconds(5))))
        .await;
    k.clock.advance(Duration::seconds(5));
    let active = k
        .tokens
        .list(&ListRequest::new("alice").per_page(100))
        .await
        .expect("list");
    assert_eq!(
        active.meta.total, 24,
        "revoked and expired tokens are hidden by default"
    );
    assert!(
        active
            .data
            .iter()
            .all(|t| t.id != ids[0] && t.id != short.id)
    );
    let all = k
        .tokens
        .list(
            &ListRequest::new("alice")
                .per_page(100)
                .include_inactive(true),
        )
        .await
        .expect("list");
    assert_eq!(all.meta.total, 26);
    assert_eq!(all.data[0].id, short.id, "newest first");
    assert_eq!(
        all.data
            .iter()
            .find(|t| t.id == ids[0])
            .and_then(|t| t.revocation_reason.as_deref()),
        Some("r")
    );

    for (page, per_page) in [(0, 10), (1, 0), (1, 101)] {
        let err = k
            .tokens
            .list(&ListRequest::new("alice").page(page).per_page(per_page))
            .await
            .expect_err("bad paging");
        assert_eq!(err.status(), 422, "page {page}, per_page {per_page}");
    }
}

/// Rotation issues a like-for-like replacement; the old token lives only through the grace.
pub async fn rotation_with_and_without_grace<S: TokenStore>(store: S) {
    let k = kit(store);
    let (old, rec) = k
        .issue(
            NewToken::new("alice", "ci")
                .tenant("t1")
                .description("d")
                .scopes(["tokens:read"])
                .expires(Expiry::InDays(30)),
        )
        .await;
    k.clock.advance(Duration::days(1));
    assert!(matches!(
        k.tokens.rotate("mallory", rec.id, Duration::ZERO).await,
        Err(Error::NotFound)
    ));
    let new = k
        .tokens
        .rotate("alice", rec.id, Duration::hours(1))
        .await
        .expect("rotate");
    let n = &new.record;
    assert_ne!(n.id, rec.id);
    assert_eq!(
        (&n.owner, &n.tenant, &n.name, &n.description, &n.scopes),
        (
            &rec.owner,
            &rec.tenant,
            &rec.name,
            &rec.description,
            &rec.scopes
        )
    );
    assert_eq!(
        n.expires_at,
        Some(k.tokens.now() + Duration::days(30)),
        "the same lifetime, from now"
    );
    k.tokens
        .verify(new.plaintext.expose_secret())
        .await
        .expect("the new token works");
    k.tokens
        .verify(&old)
        .await
        .expect("the old token works during the grace");
    k.clock.advance(Duration::hours(1));
    assert!(
        matches!(k.tokens.verify(&old).await, Err(AuthError::Expired { .. })),
        "the old token ends with the grace"
    );
    k.tokens
        .verify(new.plaintext.expose_secret())
        .await
        .expect("the new token still works");

    let newer = k
        .tokens
        .rotate("alice", new.record.id, Duration::ZERO)
        .await
        .expect("rotate now");
    assert!(matches!(
        k.tokens.verify(new.plaintext.expose_secret()).await,
        Err(AuthError::Revoked { .. })
    ));
    let stored = k
        .store()
        .get(&new.record.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(stored.revocation_reason.as_deref(), Some("rotated"));
    k.tokens
        .verify(newer.plaintext.expose_secret())
        .await
        .expect("works");
    assert!(
        matches!(
            k.tokens.rotate("alice", rec.id, Duration::ZERO).await,
            Err(Error::NotActive)
        ),
        "an expired token cannot be rotated"
    );
}

/// `shorten_expiry` only ever brings expiry earlier, and leaves revoked tokens alone.
pub async fn shorten_expiry_only_moves_earlier<S: TokenStore>(store: S) {
    let mut r = record("alice", epoch());
    r.expires_at = Some(epoch() + Duration::days(10));
    store.insert(&r).await.expect("insert");
    assert!(
        !store
            .shorten_expiry(&r.id, epoch() + Duration::days(11))
            .await
            .expect("later")
    );
    assert!(
        store
            .shorten_expiry(&r.id, epoch() + Duration::days(2))
            .await
            .expect("earlier")
    );
    assert_eq!(
        store
            .get(&r.id)
            .await
            .expect("get")
            .expect("exists")
            .expires_at,
        Some(epoch() + Duration::days(2))
    );
    let never = record("alice", epoch());
    store.insert(&never).await.expect("insert");
    assert!(
        store
            .shorten_expiry(&never.id, epoch() + Duration::days(1))
            .await
            .expect("from never")
    );
    assert!(
        !store
            .shorten_expiry(&record("x", epoch()).id, epoch())
            .await
            .expect("unknown")
    );
}

/// Purge deletes only records revoked or expired before the retention, and counts them.
pub async fn purge_removes_only_long_dead_records<S: TokenStore>(store: S) {
    let k = kit(store);
    let (_, old_revoked) = k.issue(NewToken::new("alice", "r")).await;
    let (_, old_expired) = k
        .issue(NewToken::new("alice", "e").expires(Expiry::InDays(1)))
        .await;
    let (live, live_rec) = k.issue(NewToken::new("alice", "live")).await;
    k.tokens
        .revoke("alice", old_revoked.id, None)
        .await
        .expect("revoke");
    k.clock.advance(Duration::days(40));
    let (_, new_revoked) = k.issue(NewToken::new("alice", "nr")).await;
    k.tokens
        .revoke("alice", new_revoked.id, None)
        .await
        .expect("revoke");
    assert_eq!(k.tokens.purge(Duration::days(30)).await.expect("purge"), 2);
    assert!(k.store().get(&old_revoked.id).await.expect("get").is_none());
    assert!(k.store().get(&old_expired.id).await.expect("get").is_none());
    assert!(
        k.store().get(&new_revoked.id).await.expect("get").is_some(),
        "inside retention"
    );
    assert!(k.store().get(&live_rec.id).await.expect("get").is_some());
    k.tokens
        .verify(&live)
        .await
        .expect("live tokens are untouched");
    assert_eq!(k.tokens.purge(Duration::days(30)).await.expect("purge"), 0);
    let all = k
        .tokens
        .list(&ListRequest::new("alice").include_inactive(true))
        .await
        .expect("list");
    assert_eq!(
        all.meta.total, 2,
        "the purged records are gone from listings too"
    );
}

/// 8 tasks verify while another revokes: once `revoke` returns, no verification that starts
/// later succeeds.
pub async fn verifies_racing_a_revoke<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "raced")).await;
    let revoked = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (tokens, plain, revoked, stop) = (
            k.tokens.clone(),
            plain.clone(),
            revoked.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut ok_after, mut ok, mut n) = (0u32, 0u32, 0u32);
            while !stop.load(Ordering::SeqCst) && n < 100_000 {
                let started_after_revoke = revoked.load(Ordering::SeqCst);
                let result = tokens.verify(&plain).await;
                match result {
                    Ok(_) if started_after_revoke => ok_after += 1,
                    Ok(_) => ok += 1,
                    Err(AuthError::Revoked { .. }) => {}
                    Err(e) => panic!("unexpected error while racing: {e:?}"),
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            (ok, ok_after)
        }));
    }
    // Let the verifiers get going, then revoke.
    while k.calls.get.load(Ordering::SeqCst) < 50 {
        tokio::task::yield_now().await;
    }
    k.tokens
        .revoke("alice", rec.id, None)
        .await
        .expect("revoke");
    revoked.store(true, Ordering::SeqCst);
    let after = k.calls.get.load(Ordering::SeqCst);
    while k.calls.get.load(Ordering::SeqCst) < after + 50 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut successes = 0;
    for t in tasks {
        let (ok, ok_after) = t.await.expect("verifier task");
        assert_eq!(
            ok_after, 0,
            "a verification that started after revoke returned succeeded"
        );
        successes += ok;
    }
    assert!(
        successes > 0,
        "the verifiers should have succeeded before the revoke"
    );
}

/// Tokens issued concurrently are all kept, distinct, listable and valid.
pub async fn concurrent_issues_are_all_kept<S: TokenStore>(store: S) {
    let k = kit(store);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let tokens = k.tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..25 {
                let issued = tokens
                    .issue(NewToken::new("alice", format!("t{t}-{i}")))
                    .await
                    .expect("issue");
                out.push(issued.plaintext.expose_secret().to_owned());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("issuer task"));
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200);
    let listed = k
        .tokens
        .list(&ListRequest::new("alice").per_page(100))
        .await
        .expect("list");
    assert_eq!(listed.meta.total, 200);
    for t in &all {
        k.tokens
            .verify(t)
            .await
            .expect("every issued token verifies");
    }
}
