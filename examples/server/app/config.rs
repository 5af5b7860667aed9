//! Every setting of the server, read from the environment once at startup. A setting that
//! is present but unusable stops the server with a message naming it; an absent one takes
//! the default documented here and in the README.

use std::fmt;
use std::time::Duration;

use api_tokens::{LastUseFailure, RedisFailure};
use axum::http::HeaderName;
use ipnet::IpNet;

use super::github_keys::GithubKeys;

/// Connections being refused at once (answered 503 and closed); each holds a descriptor
/// for up to a second.
pub const MAX_REFUSING: usize = 64;

/// How deep tokens created by tokens may nest: a login token, a token it created, and so
/// on, at most this many levels below the login.
pub const MAX_TOKEN_NESTING: usize = 4;

/// The server's configuration. Its `Debug` leaves out the passwords in `DEMO_USERS` and the
/// database URL (which may hold one).
#[derive(Clone)]
pub struct Config {
    /// `BIND`: the address to listen on.
    pub bind: String,
    /// `DATABASE_URL`: `sqlite://PATH` or `postgres://…`; `None` for the demo database.
    pub database_url: Option<String>,
    /// `DATABASE_CREATE`: create a missing SQLite file.
    pub database_create: Option<bool>,
    /// `DATABASE_MAX_CONNECTIONS`: the PostgreSQL pool's size.
    pub database_max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`: how long a request waits for a pooled connection.
    pub database_acquire_timeout: Duration,
    /// `DATABASE_STARTUP_TIMEOUT_SECS`: how long startup retries an unreachable database.
    pub database_startup_timeout: Duration,
    /// `STORE_DEADLINE_MS`: the deadline of every store operation (`None`: the store's).
    pub store_deadline: Option<Duration>,
    /// `LAST_USE_FAILURE`: `fail` (the default) or `serve` when last use cannot be written.
    pub last_use_failure: LastUseFailure,
    /// `TOKEN_CACHE`: `on` to verify through a `CachedStore` (on PostgreSQL invalidated
    /// across instances by LISTEN/NOTIFY), `off` (the default) to read the store each time.
    pub token_cache: bool,
    /// `TOKEN_PREFIX`: the tokens' prefix.
    pub token_prefix: String,
    /// `DEMO_USERS`: `email:password:tenant,…` (`None`: the built-in demo user).
    pub demo_users: Option<String>,
    /// Connection and request limits.
    pub limits: Limits,
    /// Login and password-confirmation limits.
    pub login: LoginLimits,
    /// `CLIENT_IP_HEADER`: take the client's address from this header (an
    /// `X-Forwarded-For`-style list), when the TCP peer is one of `trusted_proxies`;
    /// `None`: the TCP peer.
    pub client_ip_header: Option<HeaderName>,
    /// `TRUSTED_PROXIES`: the proxies (CIDR ranges) whose `CLIENT_IP_HEADER` is believed;
    /// required with it.
    pub trusted_proxies: Vec<IpNet>,
    /// `HEALTH_BIND`: a second address serving only `/healthz`, `/readyz` and `/metrics`,
    /// outside the connection cap (`None`: they are served on `BIND` only).
    pub health_bind: Option<String>,
    /// `LOG_FORMAT`: `text` or `json`.
    pub log_json: bool,
    /// `ALLOW_NEVER_EXPIRING`: `true` to let a token be created with `expires_in_days: null`
    /// (never expires); `false` (the default) answers 422 to it.
    pub allow_never_expiring: bool,
    /// `TOKEN_IDLE_DAYS`: a token unused for this many days stops verifying (`None`, the
    /// default: no idle expiry).
    pub idle_days: Option<i64>,
    /// `TOKEN_DESCRIPTION_CHARS`: how long a description must be when one is given,
    /// `MIN-MAX` in characters (`3-255`, as one token API asks); `None`, the default: 0 to
    /// 1 024.
    pub description_chars: Option<(usize, usize)>,
    /// `SECRET_SCANNING_KEYS`: a file of GitHub's secret-scanning public keys (the JSON of
    /// `https://api.github.com/meta/public_keys/secret_scanning`); without it,
    /// `POST /api/v1/secret-scanning` is not offered.
    pub secret_scanning_keys: Option<GithubKeys>,
    /// `REDIS_URL`: count rate limits on this Redis, shared by every instance (`None`: in
    /// the process).
    pub redis_url: Option<String>,
    /// `REDIS_FAILURE`: `refuse` (the default: 503) or `allow` (unlimited) when Redis does
    /// not answer.
    pub redis_failure: RedisFailure,
    /// `REDIS_DEADLINE_MS`: how long a rate-limit check waits for Redis (default 250 ms,
    /// 1–10 000) before `REDIS_FAILURE` applies.
    pub redis_deadline: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &redacted(self.database_url.is_some()))
            .field("database_create", &self.database_create)
            .field("database_max_connections", &self.database_max_connections)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("database_startup_timeout", &self.database_startup_timeout)
            .field("store_deadline", &self.store_deadline)
            .field("last_use_failure", &self.last_use_failure)
            .field("token_cache", &self.token_cache)
            .field("token_prefix", &self.token_prefix)
            .field("demo_users", &redacted(self.demo_users.is_some()))
            .field("limits", &self.limits)
            .field("login", &self.login)
            .field("client_ip_header", &self.client_ip_header)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("health_bind", &self.health_bind)
            .field("log_json", &self.log_json)
            .field("allow_never_expiring", &self.allow_never_expiring)
            .field("idle_days", &self.idle_days)
            .field("description_chars", &self.description_chars)
            .field("secret_scanning_keys", &self.secret_scanning_keys)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("redis_failure", &self.redis_failure)
            .field("redis_deadline", &self.redis_deadline)
            .finish()
    }
}

/// Deadlines and caps on connections and requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `HEADER_READ_TIMEOUT_MS`: a request's headers must arrive within this, counted from
    /// the connection's start or the previous response; so it also closes idle keep-alive
    /// connections.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS`: a request's whole body must arrive within this (408).
    pub body_read_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: a request must be answered within this (503).
    pub request_timeout: Duration,
    /// `MAX_CONNECTIONS`: open connections beyond this are answered 503 and closed.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_ADDRESS`: open connections from one client address (IPv6: one
    /// /64) beyond this are answered 503 and closed.
    pub max_connections_per_address: usize,
    /// `MAX_IN_FLIGHT`: requests being handled at once beyond this are answered 503.
    pub max_in_flight: usize,
    /// `SHUTDOWN_TIMEOUT_MS`: how long SIGTERM waits for requests in progress.
    pub shutdown_timeout: Duration,
    /// `PASSWORD_HASHERS`: passwords checked at once (each holds Argon2's 19 MiB).
    pub password_hashers: usize,
    /// `PASSWORD_QUEUE_TIMEOUT_MS`: how long a login waits for a hasher before 503.
    pub password_queue_timeout: Duration,
}

/// How many login and password-confirmation attempts are allowed per minute, and how many
/// keys each limiter remembers.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// `LOGIN_ATTEMPTS_PER_ADDRESS`: logins per client address (IPv6: per /64), any email.
    pub per_address: u32,
    /// `LOGIN_ATTEMPTS_PER_NETWORK`: logins per network (IPv4: /24, IPv6: /48), any email,
    /// so that one operator's many addresses share an allowance.
    pub per_network: u32,
    /// `LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS`: logins for one email from one address.
    pub per_account_address: u32,
    /// `LOGIN_ATTEMPTS_PER_ACCOUNT`: logins for one email from all addresses together.
    pub per_account: u32,
    /// `CONFIRM_ATTEMPTS_PER_TOKEN`: password confirmations a minute by one login token and
    /// every token created from it, from any address.
    pub confirm_per_token: u32,
    /// `LIMITER_MAX_KEYS`: keys each limiter remembers; beyond, new keys share one bucket.
    pub max_keys: usize,
}

impl Config {
    /// The configuration in this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration that `lookup` gives (a test passes its own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let database_max_connections = number(&get, "DATABASE_MAX_CONNECTIONS", 10)?;
        let limits = Limits {
            header_read_timeout: millis(&get, "HEADER_READ_TIMEOUT_MS", 10_000)?,
            body_read_timeout: millis(&get, "BODY_READ_TIMEOUT_MS", 10_000)?,
            request_timeout: millis(&get, "REQUEST_TIMEOUT_MS", 30_000)?,
            max_connections: number(
                &get,
                "MAX_CONNECTIONS",
                default_max_connections(database_max_connections as usize),
            )?,
            max_connections_per_address: number(&get, "MAX_CONNECTIONS_PER_ADDRESS", 256)?,
            max_in_flight: number(&get, "MAX_IN_FLIGHT", 512)?,
            shutdown_timeout: millis(&get, "SHUTDOWN_TIMEOUT_MS", 10_000)?,
            // At most 4 by default: each holds 19 MiB.
            password_hashers: number(&get, "PASSWORD_HASHERS", cores.min(4))?,
            password_queue_timeout: millis(&get, "PASSWORD_QUEUE_TIMEOUT_MS", 2_000)?,
        };
        let login = LoginLimits {
            per_address: number(&get, "LOGIN_ATTEMPTS_PER_ADDRESS", 30)?,
            per_network: number(&get, "LOGIN_ATTEMPTS_PER_NETWORK", 300)?,
            per_account_address: number(&get, "LOGIN_ATTEMPTS_PER_ACCOUNT_ADDRESS", 5)?,
            per_account: number(&get, "LOGIN_ATTEMPTS_PER_ACCOUNT", 100)?,
            confirm_per_token: number(&get, "CONFIRM_ATTEMPTS_PER_TOKEN", 5)?,
            max_keys: number(&get, "LIMITER_MAX_KEYS", 100_000)?,
        };
        let database_create = match get("DATABASE_CREATE").as_deref() {
            None => None,
            Some("true" | "1") => Some(true),
            Some("false" | "0") => Some(false),
            Some(other) => {
                return Err(format!(
                    "DATABASE_CREATE must be true or false, not {other:?}"
                ));
            }
        };
        let last_use_failure = match get("LAST_USE_FAILURE").as_deref() {
            None | Some("fail") => LastUseFailure::FailRequest,
            Some("serve") => LastUseFailure::ServeRequest,
            Some(other) => {
                return Err(format!(
                    "LAST_USE_FAILURE must be fail or serve, not {other:?}"
                ));
            }
        };
        let token_cache = match get("TOKEN_CACHE").as_deref() {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => return Err(format!("TOKEN_CACHE must be on or off, not {other:?}")),
        };
        let log_json = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(format!("LOG_FORMAT must be text or json, not {other:?}")),
        };
        let client_ip_header = match get("CLIENT_IP_HEADER") {
            None => None,
            Some(name) => Some(
                HeaderName::try_from(name.trim())
                    .map_err(|_| format!("CLIENT_IP_HEADER must be a header name, not {name:?}"))?,
            ),
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            format!("TRUSTED_PROXIES must list addresses or CIDR ranges, not {s:?}")
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if client_ip_header.is_some() && trusted_proxies.is_empty() {
            return Err(
                "CLIENT_IP_HEADER needs TRUSTED_PROXIES: the proxies whose header is \
                        believed (a client that reaches the server directly could set it)"
                    .into(),
            );
        }
        let allow_never_expiring = match get("ALLOW_NEVER_EXPIRING").as_deref() {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(format!(
                    "ALLOW_NEVER_EXPIRING must be true or false, not {other:?}"
                ));
            }
        };
        let idle_days = match get("TOKEN_IDLE_DAYS") {
            None => None,
            Some(value) => match number(&get, "TOKEN_IDLE_DAYS", 1_i64)? {
                days @ 1..=36_500 => Some(days),
                _ => {
                    return Err(format!(
                        "TOKEN_IDLE_DAYS must be 1 to 36500 days, not {value:?}"
                    ));
                }
            },
        };
        let description_chars = match get("TOKEN_DESCRIPTION_CHARS") {
            None => None,
            Some(value) => Some(description_chars(&value)?),
        };
        let redis_failure = match get("REDIS_FAILURE").as_deref() {
            None | Some("refuse") => RedisFailure::Refuse,
            Some("allow") => RedisFailure::Allow,
            Some(other) => {
                return Err(format!(
                    "REDIS_FAILURE must be refuse or allow, not {other:?}"
                ));
            }
        };
        let redis_deadline = match millis(&get, "REDIS_DEADLINE_MS", 250)? {
            ms if (1..=10_000).contains(&ms.as_millis()) => ms,
            _ => return Err("REDIS_DEADLINE_MS must be 1 to 10000 milliseconds".into()),
        };
        let store_deadline = match get("STORE_DEADLINE_MS") {
            None => None,
            Some(_) => Some(millis(&get, "STORE_DEADLINE_MS", 0)?),
        };
        Ok(Self {
            bind: get("BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: get("DATABASE_URL"),
            database_create,
            database_max_connections,
            database_acquire_timeout: millis(&get, "DATABASE_ACQUIRE_TIMEOUT_MS", 5_000)?,
            database_startup_timeout: Duration::from_secs(number(
                &get,
                "DATABASE_STARTUP_TIMEOUT_SECS",
                60,
            )?),
            store_deadline,
            last_use_failure,
            token_cache,
            token_prefix: get("TOKEN_PREFIX").unwrap_or_else(|| "api_prod".into()),
            demo_users: get("DEMO_USERS"),
            limits,
            login,
            client_ip_header,
            trusted_proxies,
            health_bind: get("HEALTH_BIND"),
            log_json,
            allow_never_expiring,
            idle_days,
            description_chars,
            redis_url: get("REDIS_URL"),
            redis_failure,
            redis_deadline,
            secret_scanning_keys: get("SECRET_SCANNING_KEYS")
                .map(|path| GithubKeys::load(path.trim()))
                .transpose()?,
        })
    }
}

/// A whole number of at least 1 from `name`, or `default`.
fn number<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match get(name) {
        None => Ok(default),
        Some(value) => match value.trim().parse::<T>() {
            Ok(n) if n >= T::from(1) => Ok(n),
            _ => Err(format!(
                "{name} must be a whole number of 1 or more, not {value:?}"
            )),
        },
    }
}

/// `MIN-MAX` description lengths, within what the library allows.
fn description_chars(value: &str) -> Result<(usize, usize), String> {
    let max_allowed = api_tokens::limits::MAX_DESCRIPTION_CHARS;
    let bounds = value
        .split_once('-')
        .and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)));
    match bounds {
        Some((lo, hi)) if lo <= hi && hi >= 1 && hi <= max_allowed => Ok((lo, hi)),
        _ => Err(format!(
            "TOKEN_DESCRIPTION_CHARS must be MIN-MAX characters (such as 3-255), with MIN \
             at most MAX and MAX from 1 to {max_allowed}, not {value:?}"
        )),
    }
}

/// A duration in milliseconds (at least 1) from `name`, or `default` milliseconds.
fn millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<Duration, String> {
    number(get, name, default).map(Duration::from_millis)
}

/// Connections this process can hold open: its file-descriptor limit less room for the
/// database pool, the connections being refused, log files and the listeners, at most
/// 4 096.
fn default_max_connections(pool: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let reserved = 64 + MAX_REFUSING as u64 + pool as u64;
        let usable = limit.saturating_sub(reserved).max(16);
        usize::try_from(usable).unwrap_or(usize::MAX).min(4_096)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pool;
        1_024
    }
}
