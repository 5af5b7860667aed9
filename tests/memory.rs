//! The conformance suite against `MemoryStore`, alone and behind an `Arc`.

use std::sync::Arc;

use api_tokens::MemoryStore;

api_tokens::conformance_tests!(async { MemoryStore::new() });

mod arc {
    use super::*;
    api_tokens::conformance_tests!(async { Arc::new(MemoryStore::new()) });
}

#[tokio::test]
async fn run_all_runs_every_case() {
    api_tokens::testkit::run_all(|| async { MemoryStore::new() }).await;
}
