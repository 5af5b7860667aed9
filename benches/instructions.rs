//! Instructions per verification, counted by callgrind rather than timed, so the figures
//! do not drift with the machine's load.
//!
//! ```text
//! cargo bench --bench instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured_*' --callgrind-out-file=/dev/null \
//!     target/release/deps/instructions-<hash> <case>
//! ```
//!
//! `scripts/instructions.sh` does both and prints one line per case. Each case runs
//! `ROUNDS` verifications inside a function named `measured_<case>`; callgrind counts only
//! inside it (`--toggle-collect`), so setup is not counted. Without valgrind the binary just
//! checks that every case does what it claims (`cargo test --benches` runs it that way).

#[path = "support/ready.rs"]
mod ready;
use ready::ready;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use api_tokens::{ApiTokens, DynTokenStore, MemoryStore, NewToken};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[path = "support/awaited.rs"]
mod awaited;

use awaited::Awaited;

/// Verifications per case.
const ROUNDS: usize = 10_000;
/// Tokens in each store: instruction counts barely depend on it (cache misses are not
/// instructions), so it is small enough for valgrind.
const TOKENS: usize = 10_000;

struct Tokens<St: api_tokens::TokenStore> {
    tokens: ApiTokens<St>,
    presented: Vec<String>,
}

struct Memory {
    concrete: Tokens<Arc<MemoryStore>>,
    erased: Tokens<DynTokenStore>,
    awaited: Tokens<Awaited>,
    awaited_erased: Tokens<DynTokenStore>,
}

fn memory() -> Memory {
    let store = Arc::new(MemoryStore::new());
    let tokens = ApiTokens::new(Arc::clone(&store), "dz").unwrap();
    let presented: Vec<String> = (0..TOKENS)
        .map(|i| {
            let new = NewToken::new(format!("user_{}", i % 100), format!("tok-{i:06}"));
            let issued = ready(tokens.issue(new)).unwrap();
            issued.plaintext.expose_secret().to_owned()
        })
        .collect();
    for t in &presented {
        ready(tokens.verify(t)).expect("a valid token verifies"); // last use is now fresh
    }
    fn with<St: api_tokens::TokenStore>(tokens: ApiTokens<St>, presented: &[String]) -> Tokens<St> {
        Tokens {
            tokens,
            presented: presented.to_vec(),
        }
    }
    Memory {
        erased: with(
            ApiTokens::new(DynTokenStore::new(Arc::clone(&store)), "dz").unwrap(),
            &presented,
        ),
        awaited: with(
            ApiTokens::new(Awaited(Arc::clone(&store)), "dz").unwrap(),
            &presented,
        ),
        awaited_erased: with(
            ApiTokens::new(DynTokenStore::new(Awaited(Arc::clone(&store))), "dz").unwrap(),
            &presented,
        ),
        concrete: with(tokens, &presented),
    }
}

/// Verify `ROUNDS` times. `tag` differs per caller, so the optimiser cannot fold two
/// `measured_*` functions of the same type into one symbol.
fn verify_all<St: api_tokens::TokenStore>(t: &Tokens<St>, tag: usize) -> usize {
    black_box(tag);
    let mut ok = 0;
    for i in 0..ROUNDS {
        ok += usize::from(ready(t.tokens.verify(black_box(&t.presented[i % TOKENS]))).is_ok());
    }
    ok
}

#[inline(never)]
fn measured_memory(t: &Tokens<Arc<MemoryStore>>) -> usize {
    verify_all(t, 1)
}

/// `measured_memory` with every token rate limited (a limit never reached), counted by
/// `MemoryRateLimiter`: what a limit adds (`verify/memory_rate_limited`).
#[cfg(feature = "rate-limit")]
#[inline(never)]
fn measured_memory_rate_limited(t: &Tokens<MemoryStore>) -> usize {
    verify_all(t, 5)
}

/// A store of `TOKENS` tokens, each limited to a million verifications a second, with a
/// `MemoryRateLimiter` that has seen each once.
#[cfg(feature = "rate-limit")]
fn rate_limited() -> Tokens<MemoryStore> {
    let limit = api_tokens::RateLimit::new(1_000_000, 1).unwrap();
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .rate_limiter(api_tokens::MemoryRateLimiter::new())
        .build()
        .unwrap();
    let presented = (0..TOKENS)
        .map(|i| {
            let new = NewToken::new(format!("user_{}", i % 100), format!("tok-{i:06}"));
            let issued = ready(tokens.issue(new.rate_limit(limit))).unwrap();
            issued.plaintext.expose_secret().to_owned()
        })
        .collect::<Vec<_>>();
    for t in &presented {
        ready(tokens.verify(t)).expect("a limited token verifies within its limit");
    }
    Tokens { tokens, presented }
}

#[inline(never)]
fn measured_memory_dyn(t: &Tokens<DynTokenStore>) -> usize {
    verify_all(t, 2)
}

#[inline(never)]
fn measured_memory_awaited(t: &Tokens<Awaited>) -> usize {
    verify_all(t, 3)
}

#[inline(never)]
fn measured_memory_awaited_dyn(t: &Tokens<DynTokenStore>) -> usize {
    verify_all(t, 4)
}

/// Issue `ROUNDS` tokens (1 000 owners, as in `issue/memory`) into a store that has room.
#[inline(never)]
fn measured_issue(tokens: &ApiTokens<MemoryStore>, requests: Vec<NewToken>) -> usize {
    let mut ok = 0;
    for request in requests {
        ok += usize::from(ready(tokens.issue(black_box(request))).is_ok());
    }
    ok
}

/// The floor of issuing: 32 random bytes from the operating system, and their SHA-256
/// (`issue/floor`; the system call's own instructions are the kernel's, not counted).
#[inline(never)]
fn measured_issue_floor() -> usize {
    let mut ok = 0;
    for _ in 0..ROUNDS {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let digest: [u8; 32] = Sha256::digest(black_box(secret)).into();
        black_box(digest);
        ok += 1;
    }
    ok
}

/// The floor's table: id → SHA-256 of the secret.
type FloorMap = HashMap<[u8; 16], [u8; 32]>;
/// What the floor is presented: id and secret.
type FloorToken = ([u8; 16], [u8; 32]);

/// The floor: a std `HashMap<[u8; 16], [u8; 32]>`, a lookup, SHA-256 and `ct_eq`.
#[inline(never)]
fn measured_floor(map: &FloorMap, presented: &[FloorToken]) -> usize {
    let mut ok = 0;
    for i in 0..ROUNDS {
        let (id, secret) = black_box(&presented[i % presented.len()]);
        let digest: [u8; 32] = Sha256::digest(secret).into();
        ok += usize::from(map.get(id).is_some_and(|h| bool::from(h.ct_eq(&digest))));
    }
    ok
}

fn floor() -> (FloorMap, Vec<FloorToken>) {
    let mut map = HashMap::with_capacity(TOKENS);
    let mut presented = Vec::with_capacity(TOKENS);
    for _ in 0..TOKENS {
        let mut id = [0u8; 16];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).unwrap();
        getrandom::fill(&mut secret).unwrap();
        map.insert(id, Sha256::digest(secret).into());
        presented.push((id, secret));
    }
    (map, presented)
}

fn main() {
    let cases: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = cases.is_empty();
    let wants = |name: &str| all || cases.iter().any(|c| c == name);
    if wants("floor") {
        let (map, presented) = floor();
        assert_eq!(
            measured_floor(&map, &presented),
            ROUNDS,
            "the floor finds every entry"
        );
    }
    if wants("issue_floor") {
        assert_eq!(measured_issue_floor(), ROUNDS);
    }
    if wants("issue") {
        let tokens = ApiTokens::new(MemoryStore::with_capacity(ROUNDS), "dz").unwrap();
        let requests = (0..ROUNDS)
            .map(|i| NewToken::new(format!("user_{}", i % 1000), format!("tok-{i:06}")))
            .collect();
        assert_eq!(
            measured_issue(&tokens, requests),
            ROUNDS,
            "every token is issued"
        );
    }
    #[cfg(feature = "rate-limit")]
    if wants("memory_rate_limited") {
        let t = rate_limited();
        assert_eq!(
            measured_memory_rate_limited(&t),
            ROUNDS,
            "memory_rate_limited: every token verifies within its limit"
        );
    }
    if [
        "memory",
        "memory_dyn",
        "memory_awaited",
        "memory_awaited_dyn",
    ]
    .iter()
    .any(|c| wants(c))
    {
        let m = memory();
        let cases: [(&str, &dyn Fn() -> usize); 4] = [
            ("memory", &|| measured_memory(&m.concrete)),
            ("memory_dyn", &|| measured_memory_dyn(&m.erased)),
            ("memory_awaited", &|| measured_memory_awaited(&m.awaited)),
            ("memory_awaited_dyn", &|| {
                measured_memory_awaited_dyn(&m.awaited_erased)
            }),
        ];
        for (name, run) in cases {
            if wants(name) {
                assert_eq!(run(), ROUNDS, "{name}: every token verifies");
            }
        }
    }
}
