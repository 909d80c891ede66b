//! Heartbeat: when to ping, which interval to announce, when a silent connection is
//! dead (PROTOCOL.md §4.11).
//!
//! Two parts, split along the seam an adaptive heartbeat needs:
//!
//! - a [`HeartbeatPolicy`] decides the interval. Today it is [`FixedInterval`]; an
//!   adaptive policy that probes the NAT idle timeout (grow after successes, back off
//!   after a dead connection, then hold a stable value per network) implements the
//!   same trait and learns from the same callbacks (`on_welcome`, `on_pong`, `on_dead`).
//! - the [`Heartbeat`] tracker is the mechanism: given the current instant it says
//!   whether to ping now, wait, or give the connection up. It never sleeps or touches
//!   a socket, so it is tested with plain instants.
//!
//! A connection is dead when nothing at all (pong or any other frame) arrived for two
//! intervals: with a ping every interval, a live node answers well within that.

use std::time::Duration;

use chorus_wire::HeartbeatInfo;
use tokio::time::Instant;

/// Decides the heartbeat interval, and learns from how connections fare with it.
pub(crate) trait HeartbeatPolicy: Send + 'static {
    /// The interval to ping at, and to announce in `ping.interval_s`.
    fn interval(&self) -> Duration;
    /// A connection was established; `info` holds the node's bounds.
    fn on_welcome(&mut self, _info: &HeartbeatInfo) {}
    /// A heartbeat ping was answered after `rtt`.
    fn on_pong(&mut self, _rtt: Duration) {}
    /// A connection was given up for silence at the current interval.
    fn on_dead(&mut self) {}
}

/// The configured interval, always.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedInterval(pub(crate) Duration);

impl HeartbeatPolicy for FixedInterval {
    fn interval(&self) -> Duration {
        self.0
    }
}

/// What the connection should do about its heartbeat now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing arrived for two intervals: drop the connection and reconnect.
    Dead,
    /// Send `ping` announcing this interval (whole seconds, at least 1).
    Ping {
        /// The value of `ping.interval_s`.
        interval_s: u32,
    },
    /// Nothing to do before [`Heartbeat::wake_at`].
    Wait,
}

/// The per-client heartbeat state: one policy, reset on every connection.
pub(crate) struct Heartbeat {
    policy: Box<dyn HeartbeatPolicy>,
    /// When the current connection last delivered a frame; silence is measured from here.
    last_rx: Instant,
    /// When the next ping is due.
    next_ping: Instant,
}

impl Heartbeat {
    /// A tracker driven by `policy`.
    pub(crate) fn new(policy: Box<dyn HeartbeatPolicy>, now: Instant) -> Self {
        Self {
            policy,
            last_rx: now,
            next_ping: now,
        }
    }

    /// A connection was established: the first ping (which announces the interval)
    /// is due at once.
    pub(crate) fn start(&mut self, now: Instant, info: &HeartbeatInfo) {
        self.policy.on_welcome(info);
        self.last_rx = now;
        self.next_ping = now;
    }

    /// A frame arrived, or the client was busy delivering one (a consumer that is slow
    /// to take events must not make the node look silent).
    pub(crate) fn on_activity(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// A heartbeat ping was answered.
    pub(crate) fn on_pong(&mut self, rtt: Duration) {
        self.policy.on_pong(rtt);
    }

    /// The interval to announce, in whole seconds rounded up, at least 1.
    pub(crate) fn interval_s(&self) -> u32 {
        let interval = self.policy.interval();
        let secs = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
        u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
    }

    fn dead_at(&self) -> Instant {
        self.last_rx + self.policy.interval().saturating_mul(2)
    }

    /// When [`tick`](Self::tick) has something to do next.
    pub(crate) fn wake_at(&self) -> Instant {
        self.next_ping.min(self.dead_at())
    }

    /// What to do at `now`. A `Ping` schedules the next one.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        if now >= self.dead_at() {
            self.policy.on_dead();
            return Tick::Dead;
        }
        if now >= self.next_ping {
            self.next_ping = now + self.policy.interval();
            return Tick::Ping {
                interval_s: self.interval_s(),
            };
        }
        Tick::Wait
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const INFO: HeartbeatInfo = HeartbeatInfo {
        min_s: 5,
        max_s: 300,
        idle_timeout_s: 605,
    };

    fn fixed(ms: u64) -> Box<dyn HeartbeatPolicy> {
        Box::new(FixedInterval(Duration::from_millis(ms)))
    }

    #[test]
    fn pings_at_once_then_every_interval() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(fixed(30_000), t0);
        hb.start(t0, &INFO);
        assert_eq!(hb.tick(t0), Tick::Ping { interval_s: 30 });
        assert_eq!(hb.tick(t0), Tick::Wait);
        assert_eq!(hb.wake_at(), t0 + Duration::from_secs(30));
        hb.on_activity(t0 + Duration::from_secs(29));
        assert_eq!(
            hb.tick(t0 + Duration::from_secs(30)),
            Tick::Ping { interval_s: 30 }
        );
        assert_eq!(hb.wake_at(), t0 + Duration::from_secs(60));
    }

    #[test]
    fn silence_for_two_intervals_is_death() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(fixed(1_000), t0);
        hb.start(t0, &INFO);
        let _ = hb.tick(t0);
        let _ = hb.tick(t0 + Duration::from_millis(1_000));
        assert_eq!(hb.wake_at(), t0 + Duration::from_millis(2_000));
        assert_eq!(hb.tick(t0 + Duration::from_millis(1_999)), Tick::Wait);
        assert_eq!(hb.tick(t0 + Duration::from_millis(2_000)), Tick::Dead);
    }

    #[test]
    fn any_frame_keeps_the_connection_alive() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(fixed(1_000), t0);
        hb.start(t0, &INFO);
        hb.on_activity(t0 + Duration::from_millis(1_500));
        assert_ne!(hb.tick(t0 + Duration::from_millis(3_000)), Tick::Dead);
        assert_eq!(hb.tick(t0 + Duration::from_millis(3_500)), Tick::Dead);
    }

    #[test]
    fn announced_interval_rounds_up_to_whole_seconds() {
        let t0 = Instant::now();
        assert_eq!(Heartbeat::new(fixed(200), t0).interval_s(), 1);
        assert_eq!(Heartbeat::new(fixed(1_500), t0).interval_s(), 2);
        assert_eq!(Heartbeat::new(fixed(45_000), t0).interval_s(), 45);
    }

    /// A policy that records its callbacks, as an adaptive one would consume them.
    struct Recording(Arc<Mutex<Vec<&'static str>>>);

    impl HeartbeatPolicy for Recording {
        fn interval(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn on_welcome(&mut self, _info: &HeartbeatInfo) {
            self.0.lock().expect("test lock").push("welcome");
        }
        fn on_pong(&mut self, _rtt: Duration) {
            self.0.lock().expect("test lock").push("pong");
        }
        fn on_dead(&mut self) {
            self.0.lock().expect("test lock").push("dead");
        }
    }

    #[test]
    fn the_policy_hears_about_every_outcome() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(Box::new(Recording(log.clone())), t0);
        hb.start(t0, &INFO);
        hb.on_pong(Duration::from_millis(3));
        assert_eq!(hb.tick(t0 + Duration::from_secs(20)), Tick::Dead);
        assert_eq!(*log.lock().expect("test lock"), ["welcome", "pong", "dead"]);
    }
}
