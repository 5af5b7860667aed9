//! Login and password-confirmation limits, on `governor` (GCRA: each attempt is checked and
//! counted in one atomic step, so parallel attempts cannot outrun the limit).
//!
//! Limits are keyed on what an attacker cannot choose for a victim:
//! - a login is counted against the client's address (any email), against its network
//!   (IPv4 /24, IPv6 /48: one operator's many addresses share it), against the email from
//!   that address, and, loosely, against the email from everywhere;
//! - a password confirmation by a token holder (revoking) is counted against the token's
//!   branch: the token just below a login that it descends from (or the login token
//!   itself), shared by every token created from it, from any address. Never against the
//!   email's login limits: failed logins, which anyone can send for any email, never stop
//!   a token holder from revoking a leaked token, and a thief holding a leaked token can
//!   neither guess the password faster by changing address or minting tokens, nor use up
//!   the confirmations of the login that created the leaked token.
//!
//! Keys are 64-bit keyed hashes, so a limiter holds at most `LIMITER_MAX_KEYS` small
//! entries whatever clients send; beyond that, new keys share one bucket until the sweep
//! (every 10 s) drops the keys that are back to a full allowance. The network limit bounds
//! how fast one operator can mint new keys (300 a minute by default), so filling a limiter
//! takes a large botnet; the log says when one is full.

use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use api_tokens::TokenId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::config::LoginLimits;

/// An attempt over a limit: which limit, and when to try again.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    /// The limiter's name, as in the metrics.
    pub limiter: &'static str,
    /// Whole seconds until an attempt is allowed again (at least 1).
    pub retry_after_secs: u64,
}

/// One keyed limit.
struct Keyed {
    name: &'static str,
    limiter: DefaultKeyedRateLimiter<u64>,
    max_keys: usize,
}

impl Keyed {
    fn new(name: &'static str, per_minute: u32, max_keys: usize) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            name,
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            max_keys,
        }
    }

    fn check(&self, key: u64, clock: &DefaultClock) -> Result<(), Limited> {
        // Full: every new key shares bucket 0 until the sweep makes room.
        let key = if self.limiter.len() >= self.max_keys {
            metrics::counter!("limiter_full_total", "limiter" => self.name).increment(1);
            tracing::warn!(
                limiter = self.name,
                max_keys = self.max_keys,
                "a limiter is full (LIMITER_MAX_KEYS); new keys share one bucket until the sweep"
            );
            0
        } else {
            key
        };
        self.limiter.check_key(&key).map_err(|not_until| Limited {
            limiter: self.name,
            retry_after_secs: not_until
                .wait_time_from(clock.now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64,
        })
    }
}

/// The server's limiters.
pub struct Limiters {
    per_address: Keyed,
    per_network: Keyed,
    per_account_address: Keyed,
    per_account: Keyed,
    confirm: Keyed,
    hasher: RandomState,
    clock: DefaultClock,
}

impl Limiters {
    /// Limiters with the configured allowances.
    pub fn new(limits: &LoginLimits) -> Self {
        let max = limits.max_keys;
        Self {
            per_address: Keyed::new("login_address", limits.per_address, max),
            per_network: Keyed::new("login_network", limits.per_network, max),
            per_account_address: Keyed::new(
                "login_account_address",
                limits.per_account_address,
                max,
            ),
            per_account: Keyed::new("login_account", limits.per_account, max),
            confirm: Keyed::new("confirm_branch", limits.confirm_per_token, max),
            hasher: RandomState::new(),
            clock: DefaultClock::default(),
        }
    }

    fn key(&self, parts: impl Hash) -> u64 {
        // Never 0, the shared overflow bucket.
        self.hasher.hash_one(parts) | 1
    }

    /// Count a login attempt for `email` from `address`, or say which limit it is over.
    pub fn login(&self, email: &str, address: IpAddr) -> Result<(), Limited> {
        self.per_network
            .check(self.key(("network", wide_network(address))), &self.clock)?;
        let address = network(address);
        self.per_address
            .check(self.key(("address", address)), &self.clock)?;
        self.per_account_address
            .check(self.key(("account_address", email, address)), &self.clock)?;
        self.per_account
            .check(self.key(("account", email)), &self.clock)
    }

    /// Count a password confirmation by a token of `branch` (see the module's docs).
    pub fn confirm(&self, branch: TokenId) -> Result<(), Limited> {
        self.confirm
            .check(self.key(("confirm", branch)), &self.clock)
    }

    /// Drop the keys back at a full allowance; returns the keys each limiter still holds.
    pub fn sweep(&self) -> [(&'static str, usize); 5] {
        self.all().map(|k| {
            k.limiter.retain_recent();
            k.limiter.shrink_to_fit();
            (k.name, k.limiter.len())
        })
    }

    /// The keys each limiter holds.
    pub fn keys(&self) -> [(&'static str, usize); 5] {
        self.all().map(|k| (k.name, k.limiter.len()))
    }

    fn all(&self) -> [&Keyed; 5] {
        [
            &self.per_address,
            &self.per_network,
            &self.per_account_address,
            &self.per_account,
            &self.confirm,
        ]
    }

    /// Sweep every `every` for as long as the limiters live.
    pub fn sweep_every(self: &std::sync::Arc<Self>, every: Duration) {
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiters) = weak.upgrade() else {
                    return;
                };
                for (name, keys) in limiters.sweep() {
                    metrics::gauge!("limiter_keys", "limiter" => name).set(keys as f64);
                }
            }
        });
    }
}

/// The network an address stands for: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation; counting single IPv6 addresses would give an attacker 2^64 fresh keys).
pub fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The wider network an address belongs to: IPv4 /24, IPv6 /48 (a site's allocation).
fn wide_network(address: IpAddr) -> IpAddr {
    match network(address) {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 80) - 1)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per: u32, max_keys: usize) -> LoginLimits {
        LoginLimits {
            per_address: 1000,
            per_network: 1000,
            per_account_address: per,
            per_account: 1000,
            confirm_per_token: per,
            max_keys,
        }
    }

    #[test]
    fn parallel_attempts_cannot_outrun_the_limit() {
        let limiters = std::sync::Arc::new(Limiters::new(&limits(5, 100)));
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..24)
                .map(|_| s.spawn(|| limiters.login("bob@example.com", address).is_ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(passed, 5);
    }

    #[test]
    fn the_key_count_is_bounded() {
        let limiters = Limiters::new(&limits(5, 50));
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..1_000 {
            let _ = limiters.login(&format!("user{i}@example.com"), address);
        }
        for (name, keys) in limiters.keys() {
            assert!(keys <= 51, "{name} holds {keys} keys");
        }
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(network(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
        let d: IpAddr = "2001:db8:0:ffff::1".parse().unwrap();
        let e: IpAddr = "2001:db8:1::1".parse().unwrap();
        assert_eq!(wide_network(a), wide_network(d));
        assert_ne!(wide_network(a), wide_network(e));
        let v4: IpAddr = "192.0.2.200".parse().unwrap();
        assert_eq!(wide_network(v4), "192.0.2.0".parse::<IpAddr>().unwrap());
    }
}
