//! Usage limits under contention on PostgreSQL: sixteen tasks racing for the last 100 uses
//! of a token, in 100 trials; exactly 100 verifications succeed each time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use api_tokens::{ApiTokens, AuthError, NewToken, PostgresStore, UsageLimit};

mod common;

use common::{pool_for, rand_u32, run_schema, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(api_tokens_postgres_tests),
    ignore = "set API_TOKENS_TEST_POSTGRES_URL to run the PostgreSQL suite"
)]
async fn sixteen_tasks_racing_for_the_last_hundred_uses_get_exactly_a_hundred() {
    let pool = pool_for(&url(), "api_tokens_usage", 16).await;
    let table = format!("{}.usage_{:08x}", run_schema(), rand_u32());
    let store = PostgresStore::with_table(pool, &table).unwrap();
    store.migrate().await.unwrap();
    let tokens = ApiTokens::new(store, "dz").unwrap();
    let trials = 100;
    for trial in 0..trials {
        let issued = tokens
            .issue(NewToken::new("alice", "metered").usage(UsageLimit::new(100).unwrap()))
            .await
            .unwrap();
        let token = Arc::new(issued.plaintext.expose_secret().to_owned());
        let succeeded = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (tokens, token, succeeded) =
                (tokens.clone(), Arc::clone(&token), Arc::clone(&succeeded));
            tasks.push(tokio::spawn(async move {
                loop {
                    match tokens.verify(&token).await {
                        Ok(_) => {
                            succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(AuthError::UsageExceeded) => return,
                        Err(e) => panic!("trial {trial}: {e:?}"),
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(succeeded.load(Ordering::Relaxed), 100, "trial {trial}");
        let left = tokens.get("alice", issued.record.id).await.unwrap().usage;
        assert_eq!(left.map(|u| u.remaining), Some(0), "trial {trial}");
    }
    println!(
        "usage contention on PostgreSQL: {trials} trials, exactly 100 of 16 racing tasks' verifications each"
    );
}
