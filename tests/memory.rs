//! The conformance suite against `MemoryStore`, alone, behind an `Arc`, and type-erased as a
//! `DynTokenStore`.

use std::sync::Arc;

use api_tokens::{DynTokenStore, MemoryStore};

api_tokens::conformance_tests!(async { MemoryStore::new() });

mod arc {
    use super::*;
    api_tokens::conformance_tests!(async { Arc::new(MemoryStore::new()) });
}

mod dynamic {
    use super::*;
    api_tokens::conformance_tests!(async { DynTokenStore::new(MemoryStore::new()) });
}

/// The memory store, and the wrappers over it, do every optional operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_optional_operation_is_supported() {
    use api_tokens::testkit::every_optional_operation_is_supported as check;
    check(MemoryStore::new()).await;
    check(Arc::new(MemoryStore::new())).await;
    check(DynTokenStore::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_every_case() {
    api_tokens::testkit::run_all(|| async { MemoryStore::new() }).await;
}
