//! The limits and defaults the crate enforces, in one place.
//!
//! ```
//! use api_tokens::limits;
//!
//! assert_eq!(limits::MAX_NAME_CHARS, 255);
//! assert_eq!(limits::DEFAULT_PER_PAGE, 20);
//! ```

use time::Duration;

/// Bytes in a [`TokenId`](crate::TokenId).
pub const TOKEN_ID_BYTES: usize = 16;
/// Fewest secret bytes a [`TokenFormat`](crate::TokenFormat) accepts (128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// Most secret bytes a [`TokenFormat`](crate::TokenFormat) accepts (512 bits).
pub const MAX_SECRET_BYTES: usize = 64;
/// Secret bytes of a default [`TokenFormat`](crate::TokenFormat) (256 bits).
pub const DEFAULT_SECRET_BYTES: usize = 32;
/// Longest prefix a [`TokenFormat`](crate::TokenFormat) accepts.
pub const MAX_PREFIX_LEN: usize = 32;
/// Longest input [`TokenFormat::parse`](crate::TokenFormat::parse) looks at; anything
/// longer is rejected at once.
pub const MAX_TOKEN_LEN: usize = 256;
/// Bytes in a [`TokenHash`](crate::TokenHash) (SHA-256).
pub const HASH_BYTES: usize = 32;

/// Longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest token description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest owner or tenant id, in characters.
pub const MAX_PRINCIPAL_CHARS: usize = 255;
/// Longest revocation reason, in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// Longest scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 128;
/// Most scopes on one token.
pub const MAX_SCOPES: usize = 64;

/// Largest token metadata, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Deepest nesting of token metadata (the object itself is level 1).
pub const MAX_METADATA_DEPTH: usize = 5;
/// Most CIDR ranges in one token's IP allowlist.
pub const MAX_ALLOWED_IPS: usize = 64;

/// Most tokens on one page of a listing.
pub const MAX_PER_PAGE: u32 = 100;
/// Tokens on a page of a listing unless asked otherwise.
pub const DEFAULT_PER_PAGE: u32 = 20;

/// Longest part of a SQL table name (`table` or each part of `schema.table`), in
/// characters, for the SQL stores.
pub const MAX_TABLE_NAME_CHARS: usize = 48;

/// How close to a token's expiry verification stops trusting the clock's cheap, possibly
/// coarse reading ([`Clock::recent_unix_nanos`](crate::Clock::recent_unix_nanos), which
/// lags by one timer tick at most, 1–10 ms) and reads the precise time instead.
pub const PRECISE_CLOCK_WITHIN: Duration = Duration::seconds(1);

/// How often, at most, a token's last use is written unless configured
/// ([`ApiTokensBuilder::last_use_interval`](crate::ApiTokensBuilder::last_use_interval)).
pub const DEFAULT_LAST_USE_INTERVAL: Duration = Duration::seconds(60);

/// The most uses a token may be given ([`UsageLimit`](crate::UsageLimit)), or refilled with.
pub const MAX_USES: u64 = 1_000_000_000_000;
/// The most requests a [`RateLimit`](crate::RateLimit) may allow per window.
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// The longest window of a [`RateLimit`](crate::RateLimit): a day.
pub const MAX_RATE_WINDOW_SECONDS: u32 = 86_400;
