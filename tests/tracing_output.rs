//! The `tracing` output of every operation and failed verification, captured at `TRACE`:
//! it names operations, outcomes, token ids, owners and store latency, and never a token
//! or its secret. A binary of its own: the subscriber is set for this one test, and no
//! other test may touch the call sites first.

mod observe_support;

use api_tokens::{ApiTokens, MemoryStore};
use observe_support::{Captured, clock, exercise};

#[test]
fn tracing_output_names_tokens_and_outcomes_but_never_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let secrets = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = clock();
            let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
                .clock(clock.clone())
                .build()
                .unwrap();
            exercise(&tokens, &clock).await
        })
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "operation=\"issue\"",
        "operation=\"rotate\"",
        "operation=\"revoke_all\"",
        "store_ms=",
        "outcome=\"ok\"",
        "outcome=\"insufficient_scope\"",
        "outcome=\"suspended\"",
        "token_id=",
        "owner=\"alice\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a token in the trace");
        assert!(
            !text.contains(&secret[secret.len() - 40..]),
            "a secret in the trace"
        );
    }
}
