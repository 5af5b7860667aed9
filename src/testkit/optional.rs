//! For a store that claims every optional operation, as the crate's own stores do: a check
//! that none of them answers `Unsupported`. Not a conformance case: the suite accepts a
//! store without them (its cases for them pass when the store says it cannot).

use time::Duration;

use crate::testkit::fixtures::kit_with;
use crate::{
    Error, ExpiringRequest, NewToken, StoreErrorKind, TokenPolicy, TokenStore, UsageLimit,
};

/// Panics with the operation's name if `result` is the store saying it cannot.
fn supported<T>(operation: &str, result: Result<T, Error>) -> T {
    match result {
        Err(Error::Store(e)) if e.kind() == StoreErrorKind::Unsupported => {
            panic!("`TokenStore::{operation}` is unsupported: {e}")
        }
        Err(e) => panic!("`TokenStore::{operation}` failed: {e}"),
        Ok(value) => value,
    }
}

/// Every optional operation of [`TokenStore`] works on `store`: a capped insert and
/// rotation (`insert_capped`, `rotate_capped`), a token created by another
/// (`insert_child`), the expiry listing (`list_expiring`) and a counted use
/// (`consume_use`).
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// api_tokens::testkit::every_optional_operation_is_supported(api_tokens::MemoryStore::new())
///     .await;
/// # });
/// ```
pub async fn every_optional_operation_is_supported<S: TokenStore>(store: S) {
    let k = kit_with(store, TokenPolicy::default().max_active_per_owner(Some(10)));
    let parent = supported(
        "insert_capped",
        k.tokens
            .issue(NewToken::new("alice", "parent").scopes(["a"]))
            .await,
    );
    let who = k
        .tokens
        .verify(parent.plaintext.expose_secret())
        .await
        .expect("the parent verifies");
    supported(
        "insert_child",
        k.tokens
            .issue(NewToken::child_of(&who, "child").scopes(["a"]))
            .await,
    );
    let successor = supported(
        "rotate_capped",
        k.tokens
            .rotate("alice", parent.record.id, Duration::ZERO)
            .await,
    );
    let expiring = supported(
        "list_expiring",
        k.tokens
            .list_expiring(&ExpiringRequest::within(Duration::days(366)))
            .await,
    );
    assert!(
        expiring.data.iter().any(|t| t.id == successor.record.id),
        "the successor is listed as expiring within 366 days"
    );
    let limited = k
        .tokens
        .issue(NewToken::new("bob", "limited").usage(UsageLimit::new(2).expect("a limit")))
        .await
        .expect("issue");
    supported(
        "consume_use",
        k.tokens
            .verify(limited.plaintext.expose_secret())
            .await
            .map_err(Error::from),
    );
}
