//! The [`Board`] every task of a `live` run reports to: the run's clock, counters
//! the progress line reads, what each room accepted (from the senders' acks), how
//! much each room's viewers have accounted for, and the latency recorders.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use parking_lot::Mutex;

use chorus_wire::Prio;
use tokio::time::Instant;

use super::plan::{Burst, in_burst};
use crate::latency::{Latency, Timeline};

/// Seconds of per-second delivery counts kept; later arrivals count in the last.
const MAX_SECONDS: usize = 3600;

/// What one room accepted, from the senders' acks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Items acked.
    pub(crate) total: u64,
    /// Items acked by `prio`: normal, vip, paid, system.
    pub(crate) by_prio: [u64; 4],
    /// Sum of the seqs of the acked `paid`/`system` items: with their count, what
    /// every viewer's own sum must match.
    pub(crate) must_keep_seq_sum: u64,
}

impl Accepted {
    /// `paid` and `system` items: never dropped.
    pub(crate) fn must_keep(&self) -> u64 {
        self.by_prio[2] + self.by_prio[3]
    }
}

/// The index of a `prio` in [`Accepted::by_prio`].
pub(crate) fn prio_index(prio: Prio) -> usize {
    match prio {
        Prio::Normal => 0,
        Prio::Vip => 1,
        Prio::Paid => 2,
        Prio::System => 3,
    }
}

/// Whether items of `prio` may never be sampled away.
pub(crate) fn must_keep(prio: Prio) -> bool {
    matches!(prio, Prio::Paid | Prio::System)
}

/// How far one room's viewers have got.
#[derive(Debug, Default)]
pub(crate) struct RoomProgress {
    /// Viewers joined and still connected.
    pub(crate) live: AtomicU64,
    /// Σ (delivered + dropped) over those viewers.
    pub(crate) accounted: AtomicU64,
}

/// Latencies of a run, behind one lock (taken once per batch, by sampled viewers).
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Intended send → the item in a sampled viewer's `live_batch`.
    pub(crate) visible: Latency,
    /// The same, for items meant to be sent within a burst's second.
    pub(crate) visible_burst: Latency,
    /// The same, for `paid`/`system` items.
    pub(crate) visible_must_keep: Latency,
    /// `visible` by intended second of the traffic.
    pub(crate) visible_timeline: Timeline,
    /// Intended send → `ack` at the sender.
    pub(crate) ack: Latency,
    /// Failed sends by class.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Viewers that could not connect or join, by class.
    pub(crate) join_errors: BTreeMap<String, u64>,
    /// Accepted items per room.
    pub(crate) accepted: Vec<Accepted>,
}

/// What every task of one run shares.
#[derive(Debug)]
pub(crate) struct Board {
    /// Time zero of the run: every `*_us` is measured from here.
    base: Instant,
    /// When the traffic starts, µs since `base` (`u64::MAX` until it is set).
    traffic_start_us: AtomicU64,
    /// The bursts, to tell burst items' latency apart.
    bursts: Vec<Burst>,
    /// Viewers that got `live_joined`.
    pub(crate) joined: AtomicU64,
    /// Viewers that could not connect or join.
    pub(crate) join_failed: AtomicU64,
    /// Joined viewers whose connection ended before the run did.
    pub(crate) disconnected: AtomicU64,
    /// Items received, summed over viewers.
    pub(crate) deliveries: AtomicU64,
    /// `live_batch` frames received, summed over viewers.
    pub(crate) batches: AtomicU64,
    /// Σ `dropped`, summed over viewers.
    pub(crate) dropped: AtomicU64,
    /// Danmaku started.
    pub(crate) sent: AtomicU64,
    /// Danmaku acked.
    pub(crate) acked: AtomicU64,
    /// Danmaku refused or failed.
    pub(crate) failed: AtomicU64,
    /// Items received per second since the traffic started, summed over viewers.
    per_second: Vec<AtomicU64>,
    /// Per room.
    pub(crate) rooms: Vec<RoomProgress>,
    recorder: Mutex<Recorder>,
}

impl Board {
    /// A board for `rooms` rooms, starting now.
    pub(crate) fn new(rooms: u32, bursts: Vec<Burst>, seconds: usize) -> Self {
        Self {
            base: Instant::now(),
            traffic_start_us: AtomicU64::new(u64::MAX),
            bursts,
            joined: AtomicU64::new(0),
            join_failed: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            per_second: (0..seconds.clamp(1, MAX_SECONDS))
                .map(|_| AtomicU64::new(0))
                .collect(),
            rooms: (0..rooms).map(|_| RoomProgress::default()).collect(),
            recorder: Mutex::new(Recorder {
                accepted: vec![Accepted::default(); rooms as usize],
                ..Recorder::default()
            }),
        }
    }

    /// µs since the run's start.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` after the run's start.
    pub(crate) fn at(&self, us: u64) -> Instant {
        self.base + Duration::from_micros(us)
    }

    /// Marks `us` (since the run's start) as the start of the traffic.
    pub(crate) fn set_traffic_start(&self, us: u64) {
        self.traffic_start_us.store(us, Ordering::Relaxed);
    }

    /// When the traffic starts, µs since the run's start.
    pub(crate) fn traffic_start_us(&self) -> u64 {
        self.traffic_start_us.load(Ordering::Relaxed)
    }

    /// Runs `f` on the recorder.
    pub(crate) fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> T) -> T {
        f(&mut self.recorder.lock())
    }

    /// Counts `items` received now (and `dropped` reported) by a viewer of `room`.
    pub(crate) fn on_batch(&self, room: u32, items: u64, dropped: u64, now_us: u64) {
        self.deliveries.fetch_add(items, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        let second = now_us.saturating_sub(self.traffic_start_us()) / 1_000_000;
        let last = self.per_second.len() - 1;
        let slot = usize::try_from(second).unwrap_or(last).min(last);
        self.per_second[slot].fetch_add(items, Ordering::Relaxed);
        if let Some(r) = self.rooms.get(room as usize) {
            r.accounted.fetch_add(items + dropped, Ordering::Relaxed);
        }
    }

    /// Records the send→visible latency of items received at `now_us`, given each
    /// one's intended send time (µs since the run's start) and `prio`.
    pub(crate) fn record_visible(&self, now_us: u64, items: &[(u64, Prio)]) {
        let start = self.traffic_start_us();
        self.record(|r| {
            for &(intended, prio) in items {
                let latency = now_us.saturating_sub(intended);
                let into_traffic = intended.saturating_sub(start);
                r.visible.record(latency);
                r.visible_timeline.record(into_traffic / 1_000_000, latency);
                if in_burst(&self.bursts, into_traffic) {
                    r.visible_burst.record(latency);
                }
                if must_keep(prio) {
                    r.visible_must_keep.record(latency);
                }
            }
        });
    }

    /// Items received in each second since the traffic started, up to `seconds`.
    pub(crate) fn per_second(&self, seconds: usize) -> Vec<u64> {
        self.per_second
            .iter()
            .take(seconds)
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Whether every connected viewer of every room has accounted for (received or
    /// been told `dropped` of) every item its room accepted.
    pub(crate) fn all_accounted(&self) -> bool {
        let accepted: Vec<u64> = self.record(|r| r.accepted.iter().map(|a| a.total).collect());
        self.rooms.iter().zip(accepted).all(|(room, accepted)| {
            room.accounted.load(Ordering::Relaxed) >= accepted * room.live.load(Ordering::Relaxed)
        })
    }
}
