//! Many tasks at once: revocation is seen at once, concurrent issues are all kept, and a
//! listing is one snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::testkit::fixtures::kit;
use crate::{AuthError, ListRequest, NewToken, TokenStore};

/// 8 tasks verify while another revokes: once `revoke` returns, no verification that starts
/// later succeeds.
pub async fn verifies_racing_a_revoke<S: TokenStore>(store: S) {
    let k = kit(store);
    let (plain, rec) = k.issue(NewToken::new("alice", "raced")).await;
    let revoked = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (tokens, plain, revoked, stop) = (
            k.tokens.clone(),
            plain.clone(),
            revoked.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut ok_after, mut ok, mut n) = (0u32, 0u32, 0u32);
            while !stop.load(Ordering::SeqCst) && n < 100_000 {
                let started_after_revoke = revoked.load(Ordering::SeqCst);
                let result = tokens.verify(&plain).await;
                match result {
                    Ok(_) if started_after_revoke => ok_after += 1,
                    Ok(_) => ok += 1,
                    Err(AuthError::Revoked { .. }) => {}
                    Err(e) => panic!("unexpected error while racing: {e:?}"),
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            (ok, ok_after)
        }));
    }
    // Let the verifiers get going, then revoke.
    while k.calls.get.load(Ordering::SeqCst) < 50 {
        tokio::task::yield_now().await;
    }
    k.tokens
        .revoke("alice", rec.id, None)
        .await
        .expect("revoke");
    revoked.store(true, Ordering::SeqCst);
    let after = k.calls.get.load(Ordering::SeqCst);
    while k.calls.get.load(Ordering::SeqCst) < after + 50 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut successes = 0;
    for t in tasks {
        let (ok, ok_after) = t.await.expect("verifier task");
        assert_eq!(
            ok_after, 0,
            "a verification that started after revoke returned succeeded"
        );
        successes += ok;
    }
    assert!(
        successes > 0,
        "the verifiers should have succeeded before the revoke"
    );
}

/// Tokens issued concurrently are all kept, distinct, listable and valid.
pub async fn concurrent_issues_are_all_kept<S: TokenStore>(store: S) {
    let k = kit(store);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let tokens = k.tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..25 {
                let issued = tokens
                    .issue(NewToken::new("alice", format!("t{t}-{i}")))
                    .await
                    .expect("issue");
                out.push(issued.plaintext.expose_secret().to_owned());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("issuer task"));
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200);
    let listed = k
        .tokens
        .list(&ListRequest::new("alice").per_page(100))
        .await
        .expect("list");
    assert_eq!(listed.meta.total, 200);
    for t in &all {
        k.tokens
            .verify(t)
            .await
            .expect("every issued token verifies");
    }
}

/// A page and its total come from one moment: while other tasks issue, every listing whose
/// page holds everything (fewer tokens than a page) reports as many tokens as it returns.
pub async fn list_pages_agree_with_their_totals<S: TokenStore>(store: S) {
    let k = kit(store);
    let done = Arc::new(AtomicBool::new(false));
    let issuer = {
        let (tokens, done) = (k.tokens.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                tokens
                    .issue(NewToken::new("alice", format!("t{i}")))
                    .await
                    .expect("issue");
                tokio::task::yield_now().await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut listings = 0u32;
    while !done.load(Ordering::SeqCst) || listings < 10 {
        let page = k
            .tokens
            .list(&ListRequest::new("alice").per_page(100))
            .await
            .expect("list");
        assert_eq!(
            page.data.len() as u64,
            page.meta.total,
            "a listing's page and total disagree: they were read at different moments"
        );
        listings += 1;
        tokio::task::yield_now().await;
    }
    issuer.await.expect("issuer task");
}
