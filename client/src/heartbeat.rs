//! Heartbeat: when to ping, which interval to announce, when a silent connection is
//! dead (docs/protocol.md §7.11), and the adaptive heartbeat that learns how long the
//! network's NAT keeps an idle connection.
//!
//! Two parts, split along the seam the adaptive heartbeat plugs into:
//!
//! - a `HeartbeatPolicy` decides the interval and learns from each heartbeat's
//!   outcome: `Fixed` (the configured interval, always) or `Adaptive` (probes the NAT
//!   idle timeout as WeChat's Mars does — see `probe` for the state machine and
//!   `docs/heartbeat.md` for the reasoning). The adaptive policy keeps one
//!   [`Record`] per network in a [`HeartbeatStore`].
//! - the `Heartbeat` tracker is the mechanism: given the current instant it says
//!   whether to ping now, wait, or give the connection up, and it tells the policy
//!   how long the link had been quiet before each ping that was answered or lost.
//!   It never sleeps or touches a socket, so it is tested on a paused clock.
//!
//! A connection is dead when nothing at all (pong or any other frame) arrived for two
//! intervals, or, when the policy has a pong timeout, when a heartbeat ping went that
//! long without an answer while nothing else arrived either.
//!
//! The node's bounds from `welcome` apply to every policy: the announced
//! `interval_s` is clamped to [`min_s`, `max_s`] (what the node goes by anyway), and
//! the client never pings less often than `max_s`, after which the node would close
//! the connection for silence. Pinging more often than `min_s` is allowed (the node
//! merely assumes `min_s`), which lets tests run the adaptive heartbeat on short
//! intervals against a real node.
//!
//! Modules: `probe` (the learner: [`AdaptiveParams`], [`Record`], [`Phase`]),
//! `adaptive` (the policy, [`AdaptiveHeartbeat`]), `store` ([`HeartbeatStore`],
//! [`MemoryStore`]).

mod adaptive;
mod probe;
mod store;

use std::time::Duration;

use chorus_wire::HeartbeatInfo;
use tokio::time::Instant;

pub use adaptive::AdaptiveHeartbeat;
pub(crate) use adaptive::NetworkSwitch;
pub use probe::{AdaptiveParams, Phase, Record};
pub use store::{HeartbeatStore, MemoryStore};

/// Decides the heartbeat interval, and learns from how heartbeats fare with it.
pub(crate) trait HeartbeatPolicy: Send + 'static {
    /// The interval to ping at (before the node's ceiling).
    fn interval(&self) -> Duration;
    /// How long a heartbeat ping may go unanswered; `None`: only two silent
    /// intervals make a connection dead.
    fn pong_timeout(&self) -> Option<Duration> {
        None
    }
    /// Called before each heartbeat decision, to pick up outside changes.
    fn poll(&mut self) {}
    /// A connection was established; `info` holds the node's bounds.
    fn on_welcome(&mut self, _info: &HeartbeatInfo) {}
    /// A heartbeat ping sent after `quiet` of silence on the link was answered.
    fn on_alive(&mut self, _quiet: Duration) {}
    /// A heartbeat ping sent after `quiet` of silence was never answered: the
    /// connection was given up or lost.
    fn on_dead(&mut self, _quiet: Duration) {}
}

/// The configured interval, always.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed(pub(crate) Duration);

impl HeartbeatPolicy for Fixed {
    fn interval(&self) -> Duration {
        self.0
    }
}

/// The heartbeat a client configured (`ClientConfig::adaptive_heartbeat`, else
/// `ping_interval`; none when neither is set), and the switch of its network
/// when it is adaptive.
pub(crate) fn configured(
    adaptive: Option<&AdaptiveHeartbeat>,
    ping_interval: Option<Duration>,
    now: Instant,
) -> (Option<Heartbeat>, Option<NetworkSwitch>) {
    if let Some(adaptive) = adaptive {
        let (policy, switch) = adaptive::Adaptive::new(adaptive);
        return (Some(Heartbeat::new(Box::new(policy), now)), Some(switch));
    }
    let fixed = ping_interval.map(|i| Heartbeat::new(Box::new(Fixed(i)), now));
    (fixed, None)
}

/// What the connection should do about its heartbeat now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// The node went silent: drop the connection and reconnect.
    Dead,
    /// Send `ping` announcing this interval (whole seconds, at least 1).
    Ping {
        /// The value of `ping.interval_s`.
        interval_s: u32,
    },
    /// Nothing to do before [`Heartbeat::wake_at`].
    Wait,
}

/// A heartbeat ping waiting for its pong.
#[derive(Debug, Clone, Copy)]
struct Awaiting {
    sent: Instant,
    /// Silence on the link when it left: the idle time it tests.
    quiet: Duration,
}

/// The per-client heartbeat state: one policy, reset on every connection.
pub(crate) struct Heartbeat {
    policy: Box<dyn HeartbeatPolicy>,
    /// The current connection's `welcome.heartbeat`, once there is one.
    bounds: Option<HeartbeatInfo>,
    /// When the current connection last delivered a frame; silence is measured from here.
    last_rx: Instant,
    /// When the last heartbeat ping left; the next is due one (current) interval
    /// later, so an interval that grows between two pings is the gap actually tried.
    last_ping: Option<Instant>,
    /// The heartbeat ping not answered yet. Kept across a lost connection: if the
    /// connection broke while it was out, the next `start` reports it lost.
    awaiting: Option<Awaiting>,
}

impl Heartbeat {
    /// A tracker driven by `policy`.
    pub(crate) fn new(policy: Box<dyn HeartbeatPolicy>, now: Instant) -> Self {
        Self {
            policy,
            bounds: None,
            last_rx: now,
            last_ping: None,
            awaiting: None,
        }
    }

    /// A connection was established: the first ping (which announces the interval)
    /// is due at once. A heartbeat still unanswered when the previous connection
    /// broke (a NAT that resets instead of dropping) counts as lost.
    pub(crate) fn start(&mut self, now: Instant, info: &HeartbeatInfo) {
        if let Some(lost) = self.awaiting.take() {
            self.policy.on_dead(lost.quiet);
        }
        self.policy.on_welcome(info);
        self.bounds = Some(*info);
        self.last_rx = now;
        self.last_ping = None;
    }

    /// A frame arrived, or the client was busy delivering one (a consumer that is slow
    /// to take events must not make the node look silent).
    pub(crate) fn on_activity(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// A heartbeat ping was answered. (The round trip plays no part: the evidence is
    /// the silence before the ping.)
    pub(crate) fn on_pong(&mut self, _rtt: Duration) {
        if let Some(answered) = self.awaiting.take() {
            self.policy.on_alive(answered.quiet);
        }
    }

    /// The interval pinged at: the policy's, at most the node's `max_s`, and never
    /// zero.
    fn interval(&self) -> Duration {
        let wanted = self.policy.interval().max(Duration::from_millis(1));
        match self.bounds {
            Some(b) => wanted.min(Duration::from_secs(u64::from(b.max_s.max(1)))),
            None => wanted,
        }
    }

    /// The interval to announce: whole seconds rounded up, clamped to the node's
    /// [`min_s`, `max_s`], at least 1.
    pub(crate) fn interval_s(&self) -> u32 {
        let interval = self.interval();
        let secs = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
        let secs = u32::try_from(secs).unwrap_or(u32::MAX);
        let secs = match self.bounds {
            // Not `clamp`: a node could announce min_s > max_s.
            Some(b) => secs.max(b.min_s).min(b.max_s),
            None => secs,
        };
        secs.max(1)
    }

    fn next_ping(&self) -> Instant {
        self.last_ping
            .map_or(self.last_rx, |sent| sent + self.interval())
    }

    fn dead_at(&self) -> Instant {
        let silence = self.last_rx + self.interval().saturating_mul(2);
        match (self.awaiting, self.policy.pong_timeout()) {
            (Some(ping), Some(timeout)) => silence.min(ping.sent.max(self.last_rx) + timeout),
            _ => silence,
        }
    }

    /// When [`tick`](Self::tick) has something to do next.
    pub(crate) fn wake_at(&self) -> Instant {
        self.next_ping().min(self.dead_at())
    }

    /// What to do at `now`. A `Ping` schedules the next one.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let dead_at = self.dead_at();
        if now >= dead_at {
            // A tick long overdue means this process was not running (a suspended
            // app): the silence says nothing about the network.
            let on_time = now < dead_at + self.interval();
            if let Some(lost) = self.awaiting.take()
                && on_time
            {
                self.policy.on_dead(lost.quiet);
            }
            return Tick::Dead;
        }
        self.policy.poll();
        if now >= self.next_ping() {
            self.awaiting = Some(Awaiting {
                sent: now,
                quiet: now.saturating_duration_since(self.last_rx),
            });
            self.last_ping = Some(now);
            return Tick::Ping {
                interval_s: self.interval_s(),
            };
        }
        Tick::Wait
    }
}

#[cfg(test)]
mod tests;
