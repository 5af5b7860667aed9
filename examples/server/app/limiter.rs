//! Failed password attempts per email within the last minute.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

/// Failed logins per email per minute before 429.
pub const MAX_FAILED_LOGINS: usize = 5;

/// Failed password attempts per email within the last minute.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    const WINDOW: StdDuration = StdDuration::from_secs(60);

    /// `Some(seconds to wait)` if `key` has used up its attempts.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let recent = map.get_mut(key)?;
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Self::WINDOW)
        {
            recent.pop_front();
        }
        (recent.len() >= MAX_FAILED_LOGINS).then(|| {
            let oldest = recent.front().copied().unwrap_or(now);
            (Self::WINDOW - now.duration_since(oldest)).as_secs().max(1)
        })
    }

    pub fn failed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, v| {
                v.back()
                    .is_some_and(|t| now.duration_since(*t) < Self::WINDOW)
            });
        }
        map.entry(key.to_owned()).or_default().push_back(now);
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
