//! `[heartbeat]`: bounds of the client's announced heartbeat interval
//! (docs/protocol.md §7.11).

use serde::Deserialize;

use crate::error::Problems;

/// Smallest accepted `heartbeat.min_s`.
pub const MIN_HEARTBEAT_S: u32 = 5;

/// Seconds of slack added to every idle timeout, for network delay.
pub const IDLE_GRACE_S: u32 = 5;

/// `[heartbeat]`: the announced interval is clamped to `[min_s, max_s]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// Shortest interval a client may announce, in seconds. Default 30, at least 5.
    pub min_s: u32,
    /// Longest interval a client may announce, in seconds; also the interval assumed
    /// before the first announcement. Default 600, at least `min_s`.
    pub max_s: u32,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            min_s: 30,
            max_s: 600,
        }
    }
}

impl HeartbeatConfig {
    /// The interval the server goes by for a client that announced `interval_s`:
    /// clamped to `[min_s, max_s]`.
    pub fn announced_interval_s(&self, interval_s: u32) -> u32 {
        // Not `clamp`: that panics when min_s > max_s, and an unvalidated config
        // must not crash the node.
        interval_s.max(self.min_s).min(self.max_s)
    }

    /// How long a connection that announced `interval_s` may stay silent before it
    /// is closed: `ceil(1.5 × interval) + 5` seconds of the clamped interval, which
    /// lies in the `1.5×–2× + 5 s` window the protocol allows.
    pub fn idle_timeout_s(&self, interval_s: u32) -> u32 {
        let interval = u64::from(self.announced_interval_s(interval_s));
        let timeout = interval + interval.div_ceil(2) + u64::from(IDLE_GRACE_S);
        u32::try_from(timeout).unwrap_or(u32::MAX)
    }

    /// The idle timeout before any announcement, sent as `welcome.idle_timeout_s`:
    /// the timeout for an interval of `max_s`.
    pub fn welcome_idle_timeout_s(&self) -> u32 {
        self.idle_timeout_s(self.max_s)
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        if self.min_s < MIN_HEARTBEAT_S {
            problems.push(
                "heartbeat.min_s",
                format!("is {}; it must be at least {MIN_HEARTBEAT_S}", self.min_s),
            );
        }
        if self.min_s > self.max_s {
            problems.push(
                "heartbeat.max_s",
                format!(
                    "is {}; it must be at least heartbeat.min_s ({})",
                    self.max_s, self.min_s
                ),
            );
        }
    }
}
