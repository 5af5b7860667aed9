//! What each web integration adds: one authenticated request through the framework's own
//! test service (axum's `Router`, actix-web's `test::init_service`, a tower stack) against
//! the same handler without authentication, beside `verify` called directly.
//!
//! ```text
//! cargo bench --all-features --bench web
//! ```
//!
//! `web/<framework>` − `web/<framework>_no_auth` is what authenticating costs in that
//! framework; compare it with `web/verify`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use api_tokens::{ApiTokens, MemoryStore, NewToken};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Tokens = ApiTokens<MemoryStore>;

fn setup(rt: &tokio::runtime::Runtime) -> (Tokens, String) {
    rt.block_on(async {
        let tokens = ApiTokens::new(MemoryStore::new(), "dz").unwrap();
        let issued = tokens.issue(NewToken::new("u1", "bench")).await.unwrap();
        tokens
            .verify(issued.plaintext.expose_secret())
            .await
            .unwrap();
        let header = format!("Bearer {}", issued.plaintext.expose_secret());
        (tokens, header)
    })
}

fn verify(c: &mut Criterion, rt: &tokio::runtime::Runtime, tokens: &Tokens, header: &str) {
    let token = header.trim_start_matches("Bearer ");
    c.bench_function("web/verify", |b| {
        b.iter(|| {
            rt.block_on(tokens.verify(std::hint::black_box(token)))
                .is_ok()
        })
    });
}

fn axum(c: &mut Criterion, rt: &tokio::runtime::Runtime, tokens: &Tokens, header: &str) {
    use api_tokens::axum::Authenticated;
    use axum::{Router, body::Body, routing::get};

    async fn with_auth(auth: Authenticated<MemoryStore>) -> String {
        auth.owner().to_owned()
    }
    async fn without_auth() -> String {
        "u1".to_owned()
    }
    let authed = Router::new()
        .route("/me", get(with_auth))
        .with_state(tokens.clone());
    let plain = Router::new().route("/me", get(without_auth));
    let request = || {
        http::Request::get("/me")
            .header("authorization", header)
            .body(Body::empty())
            .unwrap()
    };
    assert!(
        rt.block_on(authed.clone().oneshot(request()))
            .unwrap()
            .status()
            .is_success()
    );
    c.bench_function("web/axum", |b| {
        b.iter(|| rt.block_on(authed.clone().oneshot(request())).unwrap())
    });
    c.bench_function("web/axum_no_auth", |b| {
        b.iter(|| rt.block_on(plain.clone().oneshot(request())).unwrap())
    });
}

fn tower(c: &mut Criterion, rt: &tokio::runtime::Runtime, tokens: &Tokens, header: &str) {
    use api_tokens::tower::AuthLayer;

    async fn handler(_: http::Request<String>) -> Result<http::Response<String>, Infallible> {
        Ok(http::Response::new("u1".to_owned()))
    }
    let authed = ServiceBuilder::new()
        .layer(AuthLayer::new(tokens.clone()))
        .service(service_fn(handler));
    let plain = ServiceBuilder::new().service(service_fn(handler));
    let request = || {
        http::Request::get("/me")
            .header("authorization", header)
            .body(String::new())
            .unwrap()
    };
    assert!(
        rt.block_on(authed.clone().oneshot(request()))
            .unwrap()
            .status()
            .is_success()
    );
    c.bench_function("web/tower", |b| {
        b.iter(|| rt.block_on(authed.clone().oneshot(request())).unwrap())
    });
    c.bench_function("web/tower_no_auth", |b| {
        b.iter(|| {
            let mut plain = plain;
            rt.block_on(async { plain.ready().await.unwrap().call(request()).await.unwrap() })
        })
    });
}

fn actix(c: &mut Criterion, tokens: &Tokens, header: &str) {
    use actix_web::{App, test, web};
    use api_tokens::actix::Authenticated;

    async fn with_auth(auth: Authenticated<MemoryStore>) -> String {
        auth.owner().to_owned()
    }
    async fn without_auth() -> String {
        "u1".to_owned()
    }
    let system = actix_web::rt::System::new();
    let (authed, plain) = system.block_on(async {
        let authed = test::init_service(
            App::new()
                .app_data(web::Data::new(tokens.clone()))
                .route("/me", web::get().to(with_auth)),
        )
        .await;
        let plain = test::init_service(App::new().route("/me", web::get().to(without_auth))).await;
        (authed, plain)
    });
    let request = || {
        test::TestRequest::get()
            .uri("/me")
            .insert_header(("authorization", header))
            .to_request()
    };
    assert!(
        system
            .block_on(test::call_service(&authed, request()))
            .status()
            .is_success()
    );
    // One runtime entry per measurement, the loop inside it (actix's test service is not
    // `Send`, so it stays on this thread).
    let timed = |iters: u64, authenticated: bool| -> Duration {
        system.block_on(async {
            let started = Instant::now();
            for _ in 0..iters {
                let response = if authenticated {
                    test::call_service(&authed, request()).await
                } else {
                    test::call_service(&plain, request()).await
                };
                std::hint::black_box(response);
            }
            started.elapsed()
        })
    };
    c.bench_function("web/actix", |b| b.iter_custom(|iters| timed(iters, true)));
    c.bench_function("web/actix_no_auth", |b| {
        b.iter_custom(|iters| timed(iters, false))
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tokens, header) = setup(&rt);
    verify(c, &rt, &tokens, &header);
    axum(c, &rt, &tokens, &header);
    tower(c, &rt, &tokens, &header);
    actix(c, &tokens, &header);
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(group);
