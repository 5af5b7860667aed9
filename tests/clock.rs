//! Verification reads the clock's cheap reading (`Clock::recent_unix_nanos`, which may lag)
//! and the precise time only near an expiry: expiry must stay exact however the cheap
//! reading lags (within the contract of less than a second), and never come late.

use api_tokens::{ApiTokens, AuthError, Clock, Expiry, ManualClock, MemoryStore, NewToken};
use time::{Duration, OffsetDateTime, macros::datetime};

/// A clock whose cheap reading lags `lag` behind its precise time, as a coarse kernel
/// clock does just before a tick.
#[derive(Clone)]
struct Lagging {
    clock: ManualClock,
    lag: Duration,
}

impl Clock for Lagging {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    fn recent_unix_nanos(&self) -> i128 {
        (self.clock.now() - self.lag).unix_timestamp_nanos()
    }
}

fn tokens(lag: Duration) -> (ApiTokens<MemoryStore>, ManualClock) {
    let clock = ManualClock::new(datetime!(2026-06-01 12:00 UTC));
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(Lagging {
            clock: clock.clone(),
            lag,
        })
        .build()
        .expect("a valid configuration");
    (tokens, clock)
}

#[tokio::test]
async fn expiry_is_exact_to_the_microsecond_whatever_the_cheap_reading_lags() {
    for lag in [
        Duration::ZERO,
        Duration::microseconds(1),
        Duration::milliseconds(4),
        Duration::milliseconds(999),
    ] {
        let (tokens, clock) = tokens(lag);
        let expires = clock.now() + Duration::minutes(10);
        let issued = tokens
            .issue(NewToken::new("alice", "ci").expires(Expiry::At(expires)))
            .await
            .expect("issued");
        let plain = issued.plaintext.expose_secret();

        clock.set(expires - Duration::microseconds(1));
        tokens
            .verify(plain)
            .await
            .unwrap_or_else(|e| panic!("lag {lag}: a microsecond before expiry: {e}"));

        clock.set(expires);
        assert!(
            matches!(tokens.verify(plain).await, Err(AuthError::Expired { .. })),
            "lag {lag}: at the instant of expiry the token is refused"
        );
        clock.set(expires + lag / 2);
        assert!(
            matches!(tokens.verify(plain).await, Err(AuthError::Expired { .. })),
            "lag {lag}: while the cheap reading still shows a time before expiry"
        );
    }
}

#[tokio::test]
async fn last_use_is_written_at_the_precise_time_at_most_once_an_interval() {
    let lag = Duration::milliseconds(4);
    let (tokens, clock) = tokens(lag);
    let issued = tokens
        .issue(NewToken::new("alice", "ci"))
        .await
        .expect("issued");
    let plain = issued.plaintext.expose_secret();
    let id = issued.record.id;
    tokens.verify(plain).await.expect("verifies");
    let first = clock.now();
    let used = |t: &ApiTokens<MemoryStore>| {
        let t = t.clone();
        async move { t.get("alice", id).await.expect("get").last_used_at }
    };
    assert_eq!(
        used(&tokens).await,
        Some(first),
        "written at the precise time"
    );

    // Within the interval by the cheap reading: not written again.
    clock.advance(tokens.last_use_interval());
    tokens.verify(plain).await.expect("verifies");
    assert_eq!(used(&tokens).await, Some(first));

    // Once the cheap reading has passed the interval too: written, at the precise time.
    clock.advance(lag);
    tokens.verify(plain).await.expect("verifies");
    assert_eq!(used(&tokens).await, Some(clock.now()));
}
