//! Selects, at build time, whether this package's own PostgreSQL and Redis tests run: they
//! are compiled as `#[ignore]`d, so the test summary counts them as ignored and never as
//! passed, unless `API_TOKENS_TEST_POSTGRES_URL` (or `API_TOKENS_TEST_REDIS_URL`) is set.
//! `.ci/run` always sets both, and fails if a server is unreachable. The cfg affects only this package's tests.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(api_tokens_postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(api_tokens_redis_tests)");
    println!("cargo::rerun-if-env-changed=API_TOKENS_TEST_REDIS_URL");
    if std::env::var("API_TOKENS_TEST_REDIS_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=api_tokens_redis_tests");
    }
    println!("cargo::rerun-if-env-changed=API_TOKENS_TEST_POSTGRES_URL");
    if std::env::var("API_TOKENS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=api_tokens_postgres_tests");
    }
}
