//! What the memory-store benchmarks share: running a future that never waits, and how many
//! tokens to store.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// How many of the stored tokens the benchmarks present, in rotation.
#[allow(dead_code)] // not every benchmark presents tokens in rotation
pub const PRESENTED: usize = 1 << 16;

/// How many tokens to store: `API_TOKENS_BENCH_TOKENS`, or a million.
#[allow(dead_code)] // not every benchmark stores a million
pub fn store_size() -> usize {
    std::env::var("API_TOKENS_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Run a future that never waits (the memory store's and limiter's futures are ready at
/// once), without a runtime, so the runtime's cost is not measured.
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store and limiter never wait"),
    }
}
