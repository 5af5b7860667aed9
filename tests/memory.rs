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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_runs_every_case() {
    api_tokens::testkit::run_all(|| async { MemoryStore::new() }).await;
}
