//! Selects, at build time, whether this package's own PostgreSQL tests run: they are
//! compiled as `#[ignore]`d (so the test summary shows them as ignored, never as passed)
//! unless `API_TOKENS_TEST_POSTGRES_URL` is set, or `CI=true` (where a missing server must
//! fail the run). Nothing here affects the library itself.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(api_tokens_postgres_tests)");
    println!("cargo::rerun-if-env-changed=API_TOKENS_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let configured =
        std::env::var("API_TOKENS_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if configured || ci {
        println!("cargo::rustc-cfg=api_tokens_postgres_tests");
    }
}
