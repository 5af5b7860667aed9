//! Bytes per token in `MemoryStore` at 1 000 000 tokens (10-character names, no description),
//! counted by a counting global allocator: bytes requested and not freed, so allocator
//! overhead and fragmentation are not included.
//!
//! ```text
//! cargo bench --bench memory
//! ```
//!
//! Then the same for a tenth as many tokens, each of its own owner (16-character owner ids).
//! Also counts the allocations one `issue` makes. `API_TOKENS_BENCH_TOKENS` sets the count.
//! Prints one line per measurement and checks that the tokens are all there and verify.

#[path = "support/ready.rs"]
mod ready;
use ready::ready;
use std::alloc::System;

use api_tokens::{ApiTokens, MemoryStore, NewToken};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes requested and not yet freed since `region` began. (`stats_alloc` already counts a
/// reallocation's growth or shrinkage in the allocated or freed bytes.)
fn live(region: &Region<'_, System>) -> isize {
    let s = region.change();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

fn main() {
    // A filter on the command line (`cargo bench --benches -- <filter>`) that names other
    // benchmarks skips this one.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| f.contains("memory/")) {
        return;
    }
    // `cargo test --benches` runs this too: keep it small there.
    let default = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        10_000
    };
    let n: usize = std::env::var("API_TOKENS_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let tokens = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    let region = Region::new(GLOBAL);
    let mut first = None;
    for i in 0..n {
        let issued = ready(tokens.issue(NewToken::new(
            format!("user_{}", i % 1000),
            format!("tok-{i:06}"),
        )))
        .unwrap();
        assert_eq!(issued.record.name.chars().count(), 10);
        if i == 0 {
            first = Some(issued.plaintext.expose_secret().to_owned());
        }
    }
    let first = first.expect("at least one token");
    let bytes = live(&region) - first.len() as isize;
    assert_eq!(tokens.store().len(), n, "every token is stored");
    ready(tokens.verify(&first)).expect("the first token verifies");
    println!(
        "memory/bytes_per_token: {:.1} bytes per token at {n} tokens ({} bytes live)",
        bytes as f64 / n as f64,
        bytes
    );

    // The same with every token its own owner's (a service whose users hold one token
    // each): what an owner's listing costs beside the token.
    let n_owners = n / 10;
    let tokens = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
    let region = Region::new(GLOBAL);
    for i in 0..n_owners {
        ready(tokens.issue(NewToken::new(format!("user_{i:07}"), format!("tok-{i:06}")))).unwrap();
    }
    let bytes = live(&region);
    assert_eq!(tokens.store().len(), n_owners, "every token is stored");
    println!(
        "memory/bytes_per_token_one_per_owner: {:.1} bytes per token at {n_owners} tokens of as many owners",
        bytes as f64 / n_owners as f64,
    );
    drop(tokens);

    // Allocations made by issuing alone: the requests are built before counting starts.
    let rounds = 10_000;
    let tokens = ApiTokens::new(MemoryStore::with_capacity(rounds), "dz").unwrap();
    let requests: Vec<_> = (0..rounds)
        .map(|i| NewToken::new(format!("user_{}", i % 1000), format!("tok-{i:06}")))
        .collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        ready(tokens.issue(request)).unwrap();
    }
    let allocations = region.change().allocations;
    assert_eq!(tokens.store().len(), rounds);
    println!(
        "memory/allocations_per_issue: {:.2} allocations per issued token ({rounds} issued)",
        allocations as f64 / rounds as f64
    );
}
