//! Two issuers sharing one store: each sees only its own tokens.

use std::sync::Arc;

use time::Duration;

use crate::testkit::fixtures::{kit, reissue};
use crate::{ApiTokens, AuthError, Error, ListRequest, NewToken, TokenStore};

/// A token of `kit_test`, rewritten with the prefix `kit_live` and a recomputed checksum,
/// is refused by `kit_live` (and the reverse), though both share the store; and neither
/// issuer reads, lists, rotates or revokes the other's tokens.
pub async fn another_issuers_token_is_refused<S: TokenStore>(store: S) {
    let store = Arc::new(store);
    let test = kit(Arc::clone(&store));
    let live = ApiTokens::builder(Arc::clone(&store), "kit_live")
        .clock(test.clock.clone())
        .build()
        .expect("a valid configuration");
    let (test_token, test_rec) = test.issue(NewToken::new("alice", "test")).await;
    let live_issued = live
        .issue(NewToken::new("alice", "live"))
        .await
        .expect("issue");
    let live_token = live_issued.plaintext.expose_secret();

    let forged = reissue(&test_token, "kit_test", "kit_live");
    assert!(
        live.format().parse(&forged).is_ok(),
        "the forged token is well-formed for kit_live"
    );
    assert!(
        matches!(live.verify(&forged).await, Err(AuthError::Invalid)),
        "kit_live accepted a kit_test token"
    );
    let forged = reissue(live_token, "kit_live", "kit_test");
    assert!(
        matches!(test.tokens.verify(&forged).await, Err(AuthError::Invalid)),
        "kit_test accepted a kit_live token"
    );
    test.tokens
        .verify(&test_token)
        .await
        .expect("its own token");
    live.verify(live_token).await.expect("its own token");

    assert!(matches!(
        live.get("alice", test_rec.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        live.revoke("alice", test_rec.id, None).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        live.rotate("alice", test_rec.id, Duration::ZERO).await,
        Err(Error::NotFound)
    ));
    let listed = live.list(&ListRequest::new("alice")).await.expect("list");
    assert_eq!(listed.meta.total, 1, "only kit_live's own token");
    assert_eq!(
        live.revoke_all("alice", None, None)
            .await
            .expect("revoke all"),
        1
    );
    test.tokens
        .verify(&test_token)
        .await
        .expect("kit_live's revoke-all left kit_test's token alone");
}
