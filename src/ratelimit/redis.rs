//! [`RedisRateLimiter`]: rate limits shared by every instance, on Redis.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

use super::{RateDecision, RateFuture, RateKey, RateLimitError, RateLimiter};
use crate::record::RateLimit;

/// GCRA in one call, on the server's clock (`TIME`): the key holds the theoretical arrival
/// time (microseconds) of the next request, and expires when the count is full again.
/// Returns `{allowed (1/0), remaining, retry after (µs, -1 if allowed), reset after (µs)}`.
const GCRA: &str = r"
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ttl = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], new_tat, 'PX', ttl)
local remaining = math.floor((now - allow_at) / emission)
return {1, remaining, -1, new_tat - now}
";

/// What a [`RedisRateLimiter`] does when Redis does not answer within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisFailure {
    /// Refuse the request: [`AuthError::RateLimiterUnavailable`](crate::AuthError::RateLimiterUnavailable)
    /// (503 with `Retry-After: 1`). The default: a limit that cannot be checked is not
    /// waived.
    #[default]
    Refuse,
    /// Let the request through unlimited (and count it in the metrics), for a service that
    /// prefers availability to its limits.
    Allow,
}

/// Rate limits counted on a Redis server that every instance shares: one `EVALSHA` of a
/// GCRA script per check (the script is atomic on the server, so racing instances never
/// both get the last place), on Redis's own clock, so the instances' clocks do not matter.
/// Each key expires once its count is full again, so Redis holds only the keys in use.
///
/// When Redis does not answer within the [deadline](Self::deadline) (default 50 ms), the
/// check fails the way [`RedisFailure`] says (default: refuse).
///
/// ```no_run
/// use api_tokens::{ApiTokens, MemoryStore, RedisFailure, RedisRateLimiter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RedisRateLimiter::connect("redis://127.0.0.1:6379")
///     .await?
///     .on_failure(RedisFailure::Refuse);
/// let tokens = ApiTokens::builder(MemoryStore::new(), "dz").rate_limiter(limiter).build()?;
/// # let _ = tokens;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    deadline: Duration,
    failure: RedisFailure,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("deadline", &self.deadline)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Connect to the Redis at `url` (`redis://host:port/db`); the connection reconnects by
    /// itself when it is lost.
    pub async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url)
            .map_err(|e| RateLimitError(format!("REDIS url is not usable: {e}")))?;
        let connection =
            tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
                .await
                .map_err(|_| RateLimitError("Redis did not answer within 5 s".into()))?
                .map_err(|e| RateLimitError(format!("cannot connect to Redis: {e}")))?;
        Ok(Self::new(connection))
    }

    /// Count on this connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            script: Script::new(GCRA),
            prefix: "api_tokens:rl:".into(),
            deadline: Duration::from_millis(50),
            failure: RedisFailure::Refuse,
        }
    }

    /// What to do when Redis does not answer in time (default [`RedisFailure::Refuse`]).
    pub fn on_failure(mut self, failure: RedisFailure) -> Self {
        self.failure = failure;
        self
    }

    /// How long a check may wait for Redis (default 50 ms).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The prefix of every key it writes (default `api_tokens:rl:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// One `PING` round trip on the limiter's connection (for health checks, and as the
    /// floor a check is measured against).
    pub async fn ping(&self) -> Result<(), RateLimitError> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.deadline, connection.ping::<String>())
            .await
            .map_err(|_| RateLimitError("Redis did not answer in time".into()))?
            .map(drop)
            .map_err(|e| RateLimitError(format!("Redis failed: {e}")))
    }

    async fn decide(
        &self,
        key: &RateKey<'_>,
        limit: RateLimit,
    ) -> Result<RateDecision, RateLimitError> {
        // Rounded up: a shorter interval would let more through than the limit.
        let emission = limit.emission_interval().as_nanos().div_ceil(1_000).max(1) as u64;
        let mut connection = self.connection.clone();
        let mut call = self.script.key(format!("{}{}", self.prefix, key.name()));
        call.arg(emission).arg(limit.limit());
        let answer: Result<(i64, i64, i64, i64), _> =
            tokio::time::timeout(self.deadline, call.invoke_async(&mut connection))
                .await
                .map_err(|_| RateLimitError("Redis did not answer in time".into()))?;
        let (allowed, remaining, retry, reset) =
            answer.map_err(|e| RateLimitError(format!("Redis failed: {e}")))?;
        let micros = |us: i64| Duration::from_micros(us.max(0) as u64);
        Ok(RateDecision {
            allowed: allowed == 1,
            limit: limit.limit(),
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            window_seconds: limit.per_seconds(),
            reset_after: micros(reset),
            retry_after: (allowed != 1).then(|| micros(retry)),
        })
    }
}

impl RateLimiter for RedisRateLimiter {
    fn check<'a>(&'a self, key: &'a RateKey<'a>, limit: RateLimit) -> RateFuture<'a> {
        Box::pin(async move {
            match self.decide(key, limit).await {
                Ok(decision) => Ok(decision),
                Err(e) if self.failure == RedisFailure::Allow => {
                    #[cfg(feature = "metrics")]
                    metrics::counter!("api_tokens_rate_limiter_errors_total").increment(1);
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %e, "api_tokens: Redis did not answer; the request goes through unlimited (RedisFailure::Allow)");
                    let _ = e;
                    Ok(RateDecision {
                        allowed: true,
                        limit: limit.limit(),
                        remaining: limit.limit(),
                        window_seconds: limit.per_seconds(),
                        reset_after: Duration::ZERO,
                        retry_after: None,
                    })
                }
                Err(e) => Err(e),
            }
        })
    }
}
