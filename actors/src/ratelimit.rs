//! Per-user token buckets for danmaku (docs/protocol.md §7.9): every session of a
//! user on this node draws on one budget.
//!
//! Time comes from `tokio::time::Instant`, so tests run it on a paused clock.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use tokio::time::Instant;

/// Buckets kept before idle (full) ones are purged.
const PURGE_ABOVE: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by user: `rate` sends per `window`, bursting up to `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    window: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `rate` sends per `window` per user.
    pub fn new(rate: u32, window: Duration) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            window: window.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn per_sec(&self) -> f64 {
        self.rate / self.window.as_secs_f64()
    }

    /// Takes one token for `user`: `Ok(())`, or `Err(retry_after)` with the time
    /// until the next token.
    pub fn check(&self, user: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let per_sec = self.per_sec();
        let mut map = self.buckets.lock();
        if map.len() > PURGE_ABOVE {
            let rate = self.rate;
            map.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_sec < rate
            });
        }
        let bucket = map.entry(user.to_string()).or_insert(Bucket {
            tokens: self.rate,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.rate);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_sec;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn five_per_ten_seconds_then_refills() {
        let limiter = RateLimiter::new(5, Duration::from_secs(10));
        for _ in 0..5 {
            assert!(limiter.check("u").is_ok());
        }
        let wait = limiter.check("u").expect_err("sixth is limited");
        assert!(
            wait <= Duration::from_secs(2) && wait > Duration::from_millis(1900),
            "{wait:?}"
        );
        // Other users have their own budget.
        assert!(limiter.check("v").is_ok());
        tokio::time::advance(wait).await;
        assert!(limiter.check("u").is_ok());
        assert!(limiter.check("u").is_err());
    }
}
