//! Expiry, as the clock says, within the lifetime policy.

use time::Duration;

use crate::testkit::fixtures::{epoch, kit, kit_with};
use crate::{AuthError, Expiry, NewToken, TokenPolicy, TokenStore};

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
