//! What every handler can reach.

use std::sync::Arc;

use api_tokens::{
    ApiTokens, AuditSink, DynTokenStore, IpAllowlist, MemoryRateLimiter, RedisRateLimiter,
    TokenPolicy, TrustedProxies,
};
use axum::extract::FromRef;

use super::config::Config;
use super::limiter::Limiters;
use super::passwords::Passwords;
use super::users::Users;

/// The token cache's gauges for `/metrics`: a name and a value each.
pub type CacheMetrics = Arc<dyn Fn() -> Vec<(&'static str, f64)> + Send + Sync>;

/// The application state: the token service, the users, the limiters and password checkers,
/// and the configuration. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The token service, over whichever store the configuration chose.
    pub tokens: ApiTokens<DynTokenStore>,
    /// Who can log in.
    pub users: Arc<Users>,
    /// Login and password-confirmation limits.
    pub limiters: Arc<Limiters>,
    /// The password checkers for logins.
    pub passwords: Arc<Passwords>,
    /// One password checker of its own for confirmations (revoking), so that a flood of
    /// logins, which anyone can send, never keeps a token holder from revoking.
    pub confirm_passwords: Arc<Passwords>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The last readiness probe (`/readyz`).
    pub readiness: Arc<super::routes::Readiness>,
    /// Gauges of the token cache for `/metrics`, when `TOKEN_CACHE=on`.
    pub cache_metrics: Option<CacheMetrics>,
    /// The audit trail, when the database keeps one.
    pub audit: Option<super::audit::AuditLog>,
}

impl AppState {
    /// The state for `tokens` and `users` under `config`; starts the limiters' sweep, so
    /// call it inside the runtime.
    pub fn new(tokens: ApiTokens<DynTokenStore>, users: Arc<Users>, config: Config) -> Self {
        super::observe::recorder();
        let limiters = Arc::new(Limiters::new(&config.login));
        limiters.sweep_every(std::time::Duration::from_secs(10));
        Self {
            tokens,
            users,
            limiters,
            passwords: Arc::new(Passwords::new(
                config.limits.password_hashers,
                config.limits.password_queue_timeout,
            )),
            confirm_passwords: Arc::new(Passwords::new(1, config.limits.password_queue_timeout)),
            config: Arc::new(config),
            readiness: Arc::default(),
            cache_metrics: None,
            audit: None,
        }
    }

    /// Show the audit trail in `log` at `GET /api/v1/audit`.
    pub fn with_audit(mut self, log: super::audit::AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Report the token cache's gauges (what `metrics` returns) at `/metrics`.
    pub fn with_cache_metrics(mut self, metrics: CacheMetrics) -> Self {
        self.cache_metrics = Some(metrics);
        self
    }
}

/// Lets the crate's extractors find the token service in this state.
impl FromRef<AppState> for ApiTokens<DynTokenStore> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

/// The token service over `store` as `config` sets it up: the prefix, the lifetime and idle
/// rules, what a failed last-use write does, the trusted proxies (whose forwarded address
/// IP allowlists check, the same address the login limits count), the rate limiter (on
/// Redis with `REDIS_URL`, in the process otherwise), and the audit sink, if given.
pub async fn token_service(
    store: DynTokenStore,
    config: &Config,
    audit: Option<impl AuditSink>,
) -> Result<ApiTokens<DynTokenStore>, String> {
    let mut policy = TokenPolicy::default()
        .idle_timeout(config.idle_days.map(time::Duration::days))
        .allow_never(config.allow_never_expiring)
        // A never-expiring token made from a login must outlive the login (it still dies
        // when the login is revoked).
        .children_may_outlive_creators(config.allow_never_expiring);
    if config.allow_never_expiring {
        policy = policy.max_lifetime(None);
    }
    if let Some((min, max)) = config.description_chars {
        policy = policy.description_chars(min, max);
    }
    let mut tokens = ApiTokens::builder(store, &config.token_prefix)
        .policy(policy)
        .last_use_failure(config.last_use_failure);
    if let Some(header) = &config.client_ip_header {
        let proxies = IpAllowlist::parse(config.trusted_proxies.iter().map(|n| n.to_string()))
            .map_err(|e| format!("TRUSTED_PROXIES: {e}"))?;
        tokens = tokens.trusted_proxies(TrustedProxies::new(header.as_str(), proxies));
    }
    tokens = match &config.redis_url {
        Some(url) => {
            let limiter = RedisRateLimiter::connect(url)
                .await
                .map_err(|e| format!("REDIS_URL: {e}"))?
                .on_failure(config.redis_failure)
                .deadline(config.redis_deadline);
            tokens.rate_limiter(limiter)
        }
        None => tokens.rate_limiter(MemoryRateLimiter::new()),
    };
    if let Some(sink) = audit {
        tokens = tokens.audit(sink);
    }
    tokens.build().map_err(|e| e.to_string())
}
