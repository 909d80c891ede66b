//! Who sends what when in a `live` run: the open-loop schedule of danmaku (a steady
//! rate plus bursts), which sender sends each, and which senders hold roles.
//!
//! Item `i` of the merged schedule (in intended-time order) goes to room
//! `i mod rooms` and is sent by sender `i mod senders`, so every sender and every
//! room gets an even share of the steady load and of each burst. Senders hold roles
//! in blocks: the first are `system`, the next `paid`, then `vip`, the rest none;
//! a sender's items carry its role's `prio`, so the share of items of a `prio` is
//! the share of senders holding it.

use std::time::Duration;

use serde::Serialize;

use crate::token::Role;

/// `count` danmaku sent evenly within one second, starting `at` into the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Burst {
    /// Seconds into the traffic.
    pub at_s: f64,
    /// Items sent within that second.
    pub count: u32,
}

impl Burst {
    /// The burst's second, µs into the traffic: `[start, end)`.
    pub(crate) fn window_us(&self) -> (u64, u64) {
        let start = (self.at_s * 1e6) as u64;
        (start, start + 1_000_000)
    }
}

/// Shares of the senders that hold each role (each in 0..=1, together at most 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RoleShares {
    /// Senders whose items are `system`.
    pub system: f64,
    /// Senders whose items are `paid`.
    pub paid: f64,
    /// Senders whose items are `vip`.
    pub vip: f64,
}

impl RoleShares {
    /// Whether any sender holds a role.
    pub fn any(&self) -> bool {
        self.system > 0.0 || self.paid > 0.0 || self.vip > 0.0
    }

    /// The role of each of `senders` senders: blocks of `system`, `paid`, `vip`,
    /// then none. A positive share gets at least one sender.
    pub(crate) fn assign(&self, senders: u32) -> Vec<Option<Role>> {
        let count = |share: f64| -> usize {
            if share <= 0.0 {
                0
            } else {
                ((share * f64::from(senders)).round() as usize).max(1)
            }
        };
        let mut roles = Vec::with_capacity(senders as usize);
        for (role, share) in [
            (Role::System, self.system),
            (Role::Paid, self.paid),
            (Role::Vip, self.vip),
        ] {
            roles.extend(std::iter::repeat_n(Some(role), count(share)));
        }
        roles.resize(senders as usize, None);
        roles
    }
}

/// One danmaku to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Send {
    /// µs into the traffic when it is meant to go out.
    pub(crate) at_us: u64,
    /// Index of the sender.
    pub(crate) sender: u32,
    /// Index of the room.
    pub(crate) room: u32,
}

/// The whole run's danmaku, in intended-time order: `rate` per second for
/// `duration`, plus each burst.
pub(crate) fn schedule(
    rate: f64,
    duration: Duration,
    bursts: &[Burst],
    senders: u32,
    rooms: u32,
) -> Vec<Send> {
    let steady = (rate * duration.as_secs_f64()).floor() as u64;
    let mut times: Vec<u64> = (0..steady)
        .map(|i| (i as f64 * 1e6 / rate).ceil() as u64)
        .collect();
    for burst in bursts {
        let (start, _) = burst.window_us();
        let n = u64::from(burst.count);
        times.extend((0..n).map(|i| start + i * 1_000_000 / n.max(1)));
    }
    times.sort_unstable();
    let (senders, rooms) = (u64::from(senders.max(1)), u64::from(rooms.max(1)));
    times
        .into_iter()
        .enumerate()
        .map(|(i, at_us)| Send {
            at_us,
            sender: (i as u64 % senders) as u32,
            room: (i as u64 % rooms) as u32,
        })
        .collect()
}

/// Whether an item meant for `at_us` into the traffic belongs to a burst.
pub(crate) fn in_burst(bursts: &[Burst], at_us: u64) -> bool {
    bursts.iter().any(|b| {
        let (start, end) = b.window_us();
        (start..end).contains(&at_us)
    })
}
