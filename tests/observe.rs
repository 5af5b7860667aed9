//! What the service tells the outside: audit events through a `ChannelSink`, and `metrics`
//! counters (through a debugging recorder). The `tracing` output is checked in
//! `tests/tracing_output.rs`, a binary of its own (a subscriber set for one test must not
//! race other tests' first use of the same call sites).

mod observe_support;

use api_tokens::{
    ApiTokens, AuditKind, AuditVerified, AuthError, ChannelSink, MemoryStore, NewToken,
};
use observe_support::{clock, exercise};

#[tokio::test(flavor = "current_thread")]
async fn audit_events_cover_every_operation_and_failure_and_never_a_secret() {
    let clock = clock();
    let (sink, mut events) = ChannelSink::new(1024);
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(clock.clone())
        .audit(sink.clone())
        .audit_verified(AuditVerified::All)
        .build()
        .unwrap();
    let secrets = exercise(&tokens, &clock).await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let kinds: Vec<AuditKind> = seen.iter().map(|e| e.kind).collect();
    for kind in [
        AuditKind::Issued,
        AuditKind::Verified,
        AuditKind::VerifyFailed,
        AuditKind::Suspended,
        AuditKind::Resumed,
        AuditKind::Rotated,
        AuditKind::Revoked,
        AuditKind::RevokedAll,
        AuditKind::Purged,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} missing from {kinds:?}");
    }
    let codes: Vec<&str> = seen.iter().filter_map(|e| e.code).collect();
    for code in [
        "insufficient_scope",
        "invalid",
        "malformed",
        "suspended",
        "revoked",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    let failed_with_id = seen
        .iter()
        .find(|e| e.kind == AuditKind::VerifyFailed && e.code == Some("invalid"))
        .unwrap();
    assert!(
        failed_with_id.token_id.is_some(),
        "a well-formed token's id is kept"
    );
    let revoked = seen.iter().find(|e| e.kind == AuditKind::Revoked).unwrap();
    assert_eq!(revoked.reason.as_deref(), Some("done"));
    let all = format!("{seen:?}{}", serde_json::to_string(&seen).unwrap());
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()), "a token in the audit trail");
        assert!(
            !all.contains(&secret[secret.len() - 40..]),
            "a secret in the audit trail"
        );
    }
    assert_eq!(sink.dropped(), 0);

    // Sampling off (the default): successes are not audited.
    let (sink, mut events) = ChannelSink::new(16);
    let quiet = ApiTokens::builder(MemoryStore::new(), "dz")
        .audit(sink)
        .build()
        .unwrap();
    let issued = quiet.issue(NewToken::new("bob", "ci")).await.unwrap();
    quiet
        .verify(issued.plaintext.expose_secret())
        .await
        .unwrap();
    assert_eq!(events.try_recv().unwrap().kind, AuditKind::Issued);
    assert!(events.try_recv().is_err(), "no event for a success");
}

#[test]
fn metrics_count_outcomes_operations_and_latency() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
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
            exercise(&tokens, &clock).await;
            assert!(matches!(
                tokens.verify("nope").await,
                Err(AuthError::Malformed(_))
            ));
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let count = |name: &str, label: (&str, &str)| -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1)
            })
            .map(|(.., value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(count("api_tokens_verify_total", ("outcome", "ok")), 1);
    assert_eq!(
        count("api_tokens_verify_total", ("outcome", "malformed")),
        2
    );
    assert_eq!(
        count("api_tokens_verify_total", ("outcome", "insufficient_scope")),
        1
    );
    // Two issued by the service, one by the stranger's.
    assert_eq!(
        count("api_tokens_operations_total", ("operation", "issue")),
        3
    );
    assert!(
        snapshot
            .iter()
            .any(|(key, ..)| key.key().name() == "api_tokens_store_duration_seconds")
    );
}
