//! `[live]`: live rooms and danmaku (docs/protocol.md §7.9).

use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;

/// The longest slow mode, in seconds (one day): in `[live] slow_mode_s` and in an
/// operator's per-room setting alike.
pub const MAX_SLOW_MODE_S: u32 = 86_400;

/// `[live]`: batching, rate limit and queues of live rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// A room sends a `live_batch` at most this often, in milliseconds. Default 200.
    pub window_ms: u64,
    /// A batch closes early once it holds this many items. Default 50.
    pub max_batch: u32,
    /// Danmaku a user may send per `rate_window_s`, all sessions together. Default 5.
    pub rate_per_user: u32,
    /// Length of the rate-limit window, in seconds. Default 10.
    pub rate_window_s: u32,
    /// Items a room keeps for `live_joined.recent`. Default 20; 0 sends none.
    pub recent: u32,
    /// Batches queued per viewer before its oldest ordinary ones are dropped.
    /// Default 64.
    pub viewer_queue: u32,
    /// Items per second a room delivers at most; beyond it `normal` items are
    /// sampled away (`paid`/`system` never are). Default 200.
    pub budget_per_s: u32,
    /// A viewer whose oldest undelivered batch is older than this, in milliseconds,
    /// is disconnected as too slow. Default 5000.
    pub max_lag_ms: u64,
    /// Slow mode of every room that has no operator setting of its own: a user
    /// may have one danmaku accepted per this many seconds in a room (`paid` and
    /// `system` senders are exempt). Default 0: off. At most [`MAX_SLOW_MODE_S`].
    pub slow_mode_s: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            window_ms: 200,
            max_batch: 50,
            rate_per_user: 5,
            rate_window_s: 10,
            recent: 20,
            viewer_queue: 64,
            budget_per_s: 200,
            max_lag_ms: 5_000,
            slow_mode_s: 0,
        }
    }
}

impl LiveConfig {
    /// `window_ms` as a [`Duration`].
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// `rate_window_s` as a [`Duration`].
    pub fn rate_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.rate_window_s))
    }

    /// `slow_mode_s` as a [`Duration`] (zero: off).
    pub fn slow_mode(&self) -> Duration {
        Duration::from_secs(u64::from(self.slow_mode_s))
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        let at_least_one = [
            ("live.window_ms", self.window_ms),
            ("live.max_batch", u64::from(self.max_batch)),
            ("live.rate_per_user", u64::from(self.rate_per_user)),
            ("live.rate_window_s", u64::from(self.rate_window_s)),
            ("live.viewer_queue", u64::from(self.viewer_queue)),
            ("live.budget_per_s", u64::from(self.budget_per_s)),
            ("live.max_lag_ms", self.max_lag_ms),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                problems.push(key, "must be at least 1");
            }
        }
        if self.slow_mode_s > MAX_SLOW_MODE_S {
            problems.push(
                "live.slow_mode_s",
                format!(
                    "is {}, more than a day ({MAX_SLOW_MODE_S}); 0 turns slow mode off",
                    self.slow_mode_s
                ),
            );
        }
    }
}
