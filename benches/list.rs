//! Listing one owner's tokens on the memory store, a page at a time: what a page costs as
//! the owner's tokens grow (100, 10 000, 100 000), for the first page and a page in the
//! middle, with a third of the tokens revoked. A page should cost O(page + log n), so the
//! three sizes should cost about the same.
//!
//! ```text
//! cargo bench --bench list
//! ```

#[path = "support/ready.rs"]
mod ready;
use ready::ready;
use std::hint::black_box;
use std::time::Duration;

use api_tokens::{ApiTokens, ListRequest, MemoryStore, NewToken};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// An owner with `n` tokens, a third of them revoked, plus other owners' tokens.
fn owner_with(n: usize) -> ApiTokens<MemoryStore> {
    let tokens = ApiTokens::new(MemoryStore::with_capacity(n + 1000), "dz").unwrap();
    for i in 0..n {
        let issued = ready(tokens.issue(NewToken::new("alice", format!("t{i}")))).unwrap();
        if i % 3 == 0 {
            ready(tokens.revoke("alice", issued.record.id, None)).unwrap();
        }
    }
    for i in 0..1000 {
        ready(tokens.issue(NewToken::new(format!("user_{i}"), "other"))).unwrap();
    }
    tokens
}

fn list(c: &mut Criterion) {
    let mut group = c.benchmark_group("list");
    for n in [100usize, 10_000, 100_000] {
        let tokens = owner_with(n);
        let active = (n - n.div_ceil(3)) as u64;
        let first = ListRequest::new("alice").per_page(1);
        let page = ready(tokens.list(&first)).unwrap();
        assert_eq!(
            (page.data.len(), page.meta.total),
            (1, active),
            "the first page"
        );
        group.bench_with_input(BenchmarkId::new("memory_first_page", n), &n, |b, _| {
            b.iter(|| black_box(ready(tokens.list(black_box(&first))).unwrap()))
        });
        let middle = ListRequest::new("alice")
            .per_page(20)
            .page((active / 40).max(1) as u32);
        assert_eq!(
            ready(tokens.list(&middle)).unwrap().data.len(),
            20.min(active as usize)
        );
        group.bench_with_input(BenchmarkId::new("memory_middle_page", n), &n, |b, _| {
            b.iter(|| black_box(ready(tokens.list(black_box(&middle))).unwrap()))
        });
    }
    group.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = list
}
criterion_main!(group);
