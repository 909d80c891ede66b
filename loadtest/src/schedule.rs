//! The open-loop schedule: event `i` (a send, a connect) is *meant* to happen at
//! `i / rate` seconds after the start, whatever happened to the earlier ones.
//!
//! Latency is measured from that intended time. A closed loop (send, wait for the
//! ack, send again) lets a slow server slow the load down and hides the queueing it
//! causes ("coordinated omission"); here a stall shows as latency of every message
//! that should have gone out during it.

use std::time::Duration;

/// `total` events at `rate` per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpenLoop {
    /// Events per second.
    rate: f64,
    /// Events in the whole run.
    total: u64,
}

impl OpenLoop {
    /// `rate` events per second for `duration` (at least one event).
    pub(crate) fn for_duration(rate: f64, duration: Duration) -> Self {
        let total = (rate * duration.as_secs_f64()).floor().max(1.0) as u64;
        Self { rate, total }
    }

    /// Exactly `total` events at `rate` per second.
    pub(crate) fn with_total(rate: f64, total: u64) -> Self {
        Self { rate, total }
    }

    /// Events in the run.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// When event `i` is meant to happen, µs after the start.
    pub(crate) fn intended_us(&self, i: u64) -> u64 {
        (i as f64 * 1e6 / self.rate).ceil() as u64
    }

    /// How many events are due `elapsed_us` after the start: those with an intended
    /// time at or before it.
    pub(crate) fn due(&self, elapsed_us: u64) -> u64 {
        // Half a µs absorbs the rounding up of `intended_us`, so an event is due at
        // its own intended time.
        let due = ((elapsed_us as f64 + 0.5) * self.rate / 1e6).floor() as u64 + 1;
        due.min(self.total)
    }
}

/// Whether a user's `k`-th send goes to its group, spreading a `fraction` of its
/// sends evenly (and deterministically) over the run.
pub(crate) fn to_group(k: u64, fraction: f64) -> bool {
    let f = fraction.clamp(0.0, 1.0);
    ((k + 1) as f64 * f).floor() > (k as f64 * f).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_due_at_their_intended_times() {
        let s = OpenLoop::for_duration(1000.0, Duration::from_secs(2));
        assert_eq!(s.total(), 2000);
        assert_eq!(s.intended_us(0), 0);
        assert_eq!(s.intended_us(1), 1000);
        assert_eq!(s.intended_us(1500), 1_500_000);
        assert_eq!(s.due(0), 1);
        assert_eq!(s.due(999), 1);
        assert_eq!(s.due(1000), 2);
        assert_eq!(s.due(10_000_000), 2000, "never more than the total");
        for rate in [1000.0, 3.0, 7.3, 20_000.0] {
            let s = OpenLoop::with_total(rate, 100_000);
            for i in [0, 1, 17, 1999, 99_999] {
                assert!(
                    s.due(s.intended_us(i)) > i,
                    "event {i} is due at its own time"
                );
                assert!(s.due(s.intended_us(i).saturating_sub(2)) <= i.max(1));
            }
        }
        assert_eq!(
            OpenLoop::for_duration(0.1, Duration::from_secs(1)).total(),
            1
        );
        assert_eq!(OpenLoop::with_total(5.0, 3).total(), 3);
    }

    #[test]
    fn group_sends_are_spread_by_fraction() {
        let count = |f| (0..1000).filter(|&k| to_group(k, f)).count();
        assert_eq!(count(0.0), 0);
        assert_eq!(count(1.0), 1000);
        assert_eq!(count(0.25), 250);
        assert_eq!(
            (0..4).map(|k| to_group(k, 0.5)).collect::<Vec<_>>(),
            [false, true, false, true]
        );
    }
}
