//! The TCP proxy in front of the test PostgreSQL server.

use std::str::FromStr;

use api_tokens::sqlx::postgres::PgConnectOptions;

pub use super::tcp_proxy::Proxy;
use super::url;

/// A proxy in front of the server of `API_TOKENS_TEST_POSTGRES_URL`.
pub async fn proxy_to_server() -> Proxy {
    let options = PgConnectOptions::from_str(&url()).unwrap();
    let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    Proxy::start(target).await
}
