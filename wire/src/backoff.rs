//! The one retry rule of client and node: the wait before retry `n` (1, 2, ...)
//! doubles from `first` up to `max`, and is then spread with "equal jitter" —
//! half of it fixed, the other half scaled by a random unit in [0, 1) — so that
//! the many parties that lost the same thing at the same moment (clients of a
//! dead node, nodes redialing one peer, owners racing for one seq block) do not
//! come back in lockstep, while none retries sooner than half the ceiling.
//!
//! [`Backoff::delay`] takes the unit as an argument, so the rule is a pure
//! function that tests pin down; [`Backoff::random_delay`] draws it.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Doubling from `first` up to `max`, with equal jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry.
    pub first: Duration,
    /// The largest ceiling.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `first` up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The ceiling of retry `n` (1-based; 0 counts as 1): `first · 2^(n-1)`, at
    /// most `max`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The wait before retry `n`, with `unit` in [0, 1) (clamped) as its random
    /// part: between half the ceiling and the ceiling.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        equal_jitter(self.ceiling(n), unit)
    }

    /// [`Backoff::delay`] with a random unit.
    pub fn random_delay(&self, n: u32) -> Duration {
        self.delay(n, random_unit())
    }
}

/// Half of `ceiling` fixed, half scaled by `unit` in [0, 1) (clamped): the
/// jitter of [`Backoff`], for a caller that got its ceiling elsewhere.
pub fn equal_jitter(ceiling: Duration, unit: f64) -> Duration {
    let half = ceiling / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// A random number in [0, 1). `RandomState` is seeded afresh per instance, from
/// the process's random keys: enough to tell racing tasks and processes apart,
/// with no generator to carry around.
pub fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(0u8) >> 11;
    // 53 random bits over 2^53: exactly representable, and below 1.
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let b = Backoff::new(MS(100), MS(5_000));
        assert_eq!(b.ceiling(0), MS(100));
        assert_eq!(b.ceiling(1), MS(100));
        assert_eq!(b.ceiling(2), MS(200));
        assert_eq!(b.ceiling(4), MS(800));
        assert_eq!(b.ceiling(7), MS(5_000));
        assert_eq!(b.ceiling(u32::MAX), MS(5_000));
    }

    #[test]
    fn the_delay_is_between_half_the_ceiling_and_the_ceiling() {
        let b = Backoff::new(MS(100), MS(5_000));
        assert_eq!(b.delay(1, 0.0), MS(50));
        assert_eq!(b.delay(3, 0.5), MS(300));
        assert_eq!(b.delay(11, 1.0), MS(5_000));
        assert_eq!(b.delay(2, -3.0), MS(100), "clamped");
        assert_eq!(b.delay(2, 7.0), MS(200), "clamped");
        for _ in 0..1_000 {
            let d = b.random_delay(3);
            assert!(d >= MS(200) && d < MS(400), "{d:?}");
        }
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let units: Vec<f64> = (0..1_000).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let low = units.iter().filter(|u| **u < 0.5).count();
        assert!((300..700).contains(&low), "{low} of 1000 below 0.5");
    }
}
