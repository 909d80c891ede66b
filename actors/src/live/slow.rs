//! Slow mode: at most one accepted danmaku per user per interval in a room.
//!
//! ```text
//! operator ── set_slow_mode ──► store (room_settings) ──► LiveRoomMsg::SlowMode ──► LiveRoom
//!                                      ▲                                               │
//!                                      └──────── read when the room starts ────────────┘
//! ```
//!
//! The LiveRoom entity is the one authority of its room cluster-wide, so the gate
//! lives there: every session of a user, on any node, meets the same [`SlowMode`].
//! The interval is the operator's setting of the room if one is stored, else
//! `[live] slow_mode_s`. The setting is written to the store before the running
//! room is told, so a room that moves (drain, failover) or restarts picks it up
//! when it starts. The per-user times are memory only: after a move each user may
//! send once at once.
//!
//! `paid` and `system` items are exempt, as they are from the delivery budget.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chorus_store::{RoomSettings, StoreResult};
use chorus_wire::{ConvId, Prio};
use tokio::time::Instant;

use super::LiveRoomMsg;
use crate::region::ShardRegion;

#[cfg(test)]
mod tests;

/// The per-user gate of one room.
///
/// Time comes from `tokio::time::Instant`, so tests run it on a paused clock.
/// Each check is O(1) amortised: acceptances are remembered in time order, and
/// those older than the interval are purged from the front as time passes, so
/// the memory held is one entry per user accepted within the last interval.
#[derive(Debug, Default)]
pub struct SlowMode {
    /// Zero: off, nothing is remembered.
    interval: Duration,
    /// Each user's last accepted danmaku.
    last: HashMap<String, Instant>,
    /// The same acceptances in time order, for purging the expired ones without
    /// scanning `last`.
    order: VecDeque<(Instant, String)>,
}

impl SlowMode {
    /// A gate of `interval` (zero: off).
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            ..Self::default()
        }
    }

    /// The interval; zero when off.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Changes the interval, effective from the next check. Times of earlier
    /// acceptances are kept while slow mode stays on; turning it off forgets them.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
        if interval.is_zero() {
            self.last = HashMap::new();
            self.order = VecDeque::new();
        }
    }

    /// Users remembered (for tests and bounds).
    pub fn tracked(&self) -> usize {
        self.last.len()
    }

    /// Admits a danmaku of `user` with `prio` now: `Ok(())` records it, `Err`
    /// carries how long until the user may send again (at least 1 ms).
    pub fn check(&mut self, user: &str, prio: Prio) -> Result<(), Duration> {
        if self.interval.is_zero() || matches!(prio, Prio::Paid | Prio::System) {
            return Ok(());
        }
        let now = Instant::now();
        self.purge(now);
        if let Some(at) = self.last.get(user) {
            let waited = now.duration_since(*at);
            if waited < self.interval {
                return Err((self.interval - waited).max(Duration::from_millis(1)));
            }
        }
        self.last.insert(user.to_string(), now);
        self.order.push_back((now, user.to_string()));
        Ok(())
    }

    /// Forgets acceptances a whole interval old.
    fn purge(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < self.interval {
                break;
            }
            if let Some((at, user)) = self.order.pop_front() {
                // A later acceptance of the same user (possible after the interval
                // shrank) has its own entry; only the matching one goes.
                if self.last.get(&user) == Some(&at) {
                    self.last.remove(&user);
                }
            }
        }
    }
}

/// `retry_after_ms` for a wait: whole milliseconds rounded up, at least 1.
pub(crate) fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The room's interval: the operator's `seconds` if set, else the configured one.
pub(crate) fn interval(seconds: Option<u32>, default: Duration) -> Duration {
    seconds.map_or(default, |s| Duration::from_secs(u64::from(s)))
}

/// Sets the slow mode of live room `room` (the id without `live:`, already
/// validated): `Some(seconds)` (0: off) or `None` to follow `[live] slow_mode_s`
/// again. Written to the store first, so that it survives the room moving or
/// restarting, then told to the room wherever it runs. Returns the room's
/// settings as stored.
pub async fn set_slow_mode(
    region: &ShardRegion,
    room: &str,
    seconds: Option<u32>,
) -> StoreResult<RoomSettings> {
    let store = region.store();
    let mut settings = store.room_settings(room).await?;
    settings.slow_mode_s = seconds;
    store.set_room_settings(room, &settings).await?;
    region.tell_live_room(
        &ConvId::Live(room.to_string()),
        LiveRoomMsg::SlowMode { seconds },
    );
    Ok(settings)
}
