//! [design]: crate::_documentation::design
//! [compare]: crate::_documentation::compare
//! [changelog]: crate::_documentation::changelog
//! [store-guide]: crate::store#implementing-a-store
// The README is the crate's documentation. Its examples use every feature, so it is
// rendered (and its examples compiled and run) when all of them are on, as on docs.rs;
// otherwise a short introduction stands in, rather than examples compiled to nothing.
#![cfg_attr(
    all(feature = "actix", feature = "axum", feature = "cache", feature = "postgres", feature = "sqlite", feature = "testkit", feature = "tower"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(
    not(all(feature = "actix", feature = "axum", feature = "cache", feature = "postgres", feature = "sqlite", feature = "testkit", feature = "tower")),
    doc = include_str!("../docs/intro.md")
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The `sqlx` this crate was built with, so you can name the exact version of its pools.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;

// Layers, bottom to top: clock and limits; hash; error; validate and header; token;
// record; store and ratelimit; service; the framework-neutral web layer; the integrations and testkit. A module imports only from the
// layers below it (tests/layers.rs checks).
pub mod _documentation;
#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod clock;
mod error;
mod hash;
mod header;
pub mod limits;
mod ratelimit;
mod record;
mod service;
pub mod store;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod token;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod validate;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    AuthError, ConfigError, Error, FieldError, ParseError, RandomError, StoreError, StoreErrorKind,
    ValidationErrors,
};
pub use hash::TokenHash;
pub use header::presented_token;
#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub use ratelimit::memory::MemoryRateLimiter;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use ratelimit::redis::{RedisFailure, RedisRateLimiter};
pub use ratelimit::{RateDecision, RateFuture, RateKey, RateLimitError, RateLimiter};
pub use record::{
    CellMoved, IpAllowlist, Metadata, RateCell, RateLimit, RecordRef, Refill, RefillInterval,
    Scopes, TokenInfo, TokenRecord, UsageLimit,
};
#[cfg(feature = "audit")]
#[cfg_attr(docsrs, doc(cfg(feature = "audit")))]
pub use service::ChannelSink;
pub use service::{
    ApiTokens, ApiTokensBuilder, AuditEvent, AuditKind, AuditSink, AuditVerified, ExpiringRequest,
    Expiry, Issued, LastUseFailure, LeakOutcome, LeakReport, ListRequest, NewToken, Page, PageMeta,
    Principal, PrincipalScopes, Requirements, TokenEdit, TokenPolicy, TrustedProxies,
};
#[cfg(all(feature = "cache", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "cache", feature = "postgres"))))]
pub use store::cached::PgInvalidations;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use store::cached::{CacheStats, CachedStore, CachedStoreBuilder, InvalidationBus};
pub use store::dynamic::DynTokenStore;
pub use store::memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::sqlite::SqliteStore;
pub use store::token_store::TokenStore;
pub use token::{PlaintextToken, Token, TokenFormat, TokenId};
