//! The token format: generating, parsing and displaying API tokens.
//!
//! A token is `{prefix}_{id}{secret}{checksum}`:
//!
//! | part       | encoding        | length (default)        |
//! |------------|-----------------|-------------------------|
//! | `prefix`   | as configured   | 1–32 characters         |
//! | `_`        | literal         | 1                       |
//! | `id`       | lowercase hex   | 32 (16 random bytes)    |
//! | `secret`   | lowercase hex   | 64 (32 random bytes)    |
//! | `checksum` | lowercase hex   | 8 (CRC32 of all before) |
//!
//! Every character is in `[A-Za-z0-9_]`, so a double-click selects the whole token and it
//! needs no escaping in a header, a URL or a shell. The checksum lets
//! [`TokenFormat::parse`] reject typos and garbage before any storage is touched, and lets a
//! secret scanner confirm a match offline.

mod encoding;
mod format;
mod fresh_id;
mod id;
mod id_hasher;
mod secret;

pub use format::TokenFormat;
pub use id::TokenId;
pub(crate) use id::display_prefix;
pub(crate) use id_hasher::IdHasher;
pub use secret::{PlaintextToken, Token};
