//! What `tests/observe.rs` and `tests/tracing_output.rs` share: a writer that keeps what it
//! is given, a manual clock, and a run through every operation and every kind of failed
//! verification.
#![allow(dead_code)] // each test file uses part of this

use std::io::Write;
use std::sync::{Arc, Mutex};

use api_tokens::{ApiTokens, ManualClock, MemoryStore, NewToken, Requirements};
use time::{Duration, OffsetDateTime};

/// Everything written, kept.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn clock() -> ManualClock {
    ManualClock::new(OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap())
}

/// Every operation, and failed verifications of every kind, under one sink.
pub async fn exercise(tokens: &ApiTokens<MemoryStore>, clock: &ManualClock) -> Vec<String> {
    let issued = tokens
        .issue(NewToken::new("alice", "ci").scopes(["a"]))
        .await
        .unwrap();
    let t = issued.plaintext.expose_secret().to_owned();
    let id = issued.record.id;
    tokens.verify(&t).await.unwrap();
    let _ = tokens.verify_with(&t, &Requirements::scopes(&["b"])).await;
    // Well formed (another service's, same prefix), but not this store's: `invalid`.
    let elsewhere = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    let stranger = elsewhere.issue(NewToken::new("eve", "x")).await.unwrap();
    let _ = tokens.verify(stranger.plaintext.expose_secret()).await;
    let _ = tokens.verify("not a token").await;
    tokens.suspend("alice", id).await.unwrap();
    let _ = tokens.verify(&t).await;
    tokens.resume("alice", id).await.unwrap();
    let next = tokens.rotate("alice", id, Duration::ZERO).await.unwrap();
    let n = next.plaintext.expose_secret().to_owned();
    let _ = tokens.verify(&t).await;
    tokens
        .revoke("alice", next.record.id, Some("done"))
        .await
        .unwrap();
    tokens.issue(NewToken::new("alice", "x")).await.unwrap();
    tokens.revoke_all("alice", None, Some("all")).await.unwrap();
    clock.advance(Duration::days(400));
    tokens.purge(Duration::days(1)).await.unwrap();
    vec![t, n]
}
