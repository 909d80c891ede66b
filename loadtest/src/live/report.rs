//! The `live` report: what ran, the latencies and rates, the per-viewer delivery
//! check, the node's figures, and the plot.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::LiveConfig;
use super::board::{Accepted, Board};
use super::plan::{Burst, RoleShares};
use super::viewer::{End, Tally};
use crate::latency::{LatencySummary, TimelinePoint};
use crate::memory::RssSummary;
use crate::node_http::metric;
use crate::plot::{Chart, Plot, Series};
use crate::target::transport_name;
use crate::token::Role;
use chorus_wire::Prio;
use chorus_wire::identity::Roles;

/// Failures quoted in [`LiveCheck::samples`] at most.
const SAMPLES: usize = 10;

/// Counts by `prio` (or by role).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrioCounts {
    /// `normal` (no role).
    pub normal: u64,
    /// `vip`.
    pub vip: u64,
    /// `paid`.
    pub paid: u64,
    /// `system`.
    pub system: u64,
}

impl PrioCounts {
    fn from_array(a: [u64; 4]) -> Self {
        Self {
            normal: a[0],
            vip: a[1],
            paid: a[2],
            system: a[3],
        }
    }
}

/// Mean, smallest and largest of a per-viewer count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: u64,
    /// Largest.
    pub max: u64,
}

impl Spread {
    fn of(values: impl Iterator<Item = u64> + Clone) -> Self {
        let n = values.clone().count();
        if n == 0 {
            return Self::default();
        }
        Self {
            mean: values.clone().sum::<u64>() as f64 / n as f64,
            min: values.clone().min().unwrap_or(0),
            max: values.max().unwrap_or(0),
        }
    }
}

/// The per-viewer delivery check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiveCheck {
    /// Viewers that joined and stayed connected to the end: the ones checked.
    pub viewers_checked: u64,
    /// Of those, viewers with accepted = delivered + Σ `dropped` for their room.
    pub balanced: u64,
    /// Viewers for which it does not hold.
    pub unbalanced: u64,
    /// Viewers that received every `paid`/`system` item of their room (count and
    /// seq sum equal to the acked ones').
    pub paid_system_complete: u64,
    /// Viewers that missed (or got extra) `paid`/`system` items.
    pub paid_system_incomplete: u64,
    /// Items whose seq was not above the viewer's previous one, over all viewers.
    pub out_of_order: u64,
    /// Batches of a room the viewer had not joined.
    pub misrouted: u64,
    /// Viewers that could not connect or join.
    pub not_joined: u64,
    /// Joined viewers whose connection ended before the run did (a slow viewer cut
    /// off by the node, or a failure).
    pub disconnected: u64,
    /// Danmaku without an answer (their acceptance is unknown).
    pub unanswered: u64,
    /// Up to 10 failures, e.g. `"viewer 17 (room 0): accepted 500 ≠ delivered 300 + dropped 150"`.
    pub samples: Vec<String>,
}

impl LiveCheck {
    /// Whether every viewer joined, stayed, balanced and got every `paid`/`system`
    /// item, in seq order, and every danmaku was answered.
    pub fn passed(&self) -> bool {
        self.not_joined == 0
            && self.disconnected == 0
            && self.unbalanced == 0
            && self.paid_system_incomplete == 0
            && self.out_of_order == 0
            && self.misrouted == 0
            && self.unanswered == 0
    }

    pub(crate) fn compute(tallies: &[Tally], accepted: &[Accepted], unanswered: u64) -> Self {
        let mut c = Self {
            unanswered,
            ..Self::default()
        };
        for (i, t) in tallies.iter().enumerate() {
            match &t.end {
                Some(End::NotJoined(_)) => {
                    c.not_joined += 1;
                    continue;
                }
                Some(End::Disconnected) => {
                    c.disconnected += 1;
                    continue;
                }
                None => {}
            }
            c.viewers_checked += 1;
            c.out_of_order += t.out_of_order;
            c.misrouted += t.misrouted;
            let room = accepted.get(t.room as usize).copied().unwrap_or_default();
            if t.delivered + t.dropped == room.total {
                c.balanced += 1;
            } else {
                c.unbalanced += 1;
                if c.samples.len() < SAMPLES {
                    c.samples.push(format!(
                        "viewer {i} (room {}): accepted {} ≠ delivered {} + dropped {}",
                        t.room, room.total, t.delivered, t.dropped
                    ));
                }
            }
            if t.must_keep == room.must_keep() && t.must_keep_seq_sum == room.must_keep_seq_sum {
                c.paid_system_complete += 1;
            } else {
                c.paid_system_incomplete += 1;
                if c.samples.len() < SAMPLES {
                    c.samples.push(format!(
                        "viewer {i} (room {}): {} of {} paid/system items",
                        t.room,
                        t.must_keep,
                        room.must_keep()
                    ));
                }
            }
        }
        c
    }
}

/// What the node's `/metrics` said (differences over the run) and its memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeFigures {
    /// Resident memory before the viewers connected, bytes.
    pub rss_before_viewers_bytes: Option<u64>,
    /// Resident memory with every viewer joined, before the traffic, bytes.
    pub rss_with_viewers_bytes: Option<u64>,
    /// Resident memory every second from the traffic's start to the end of the
    /// settling (`start_bytes`, `end_bytes`, `max_bytes`, `timeline`).
    pub rss: RssSummary,
    /// `chorus_live_items_accepted_total` over the run.
    pub items_accepted: Option<f64>,
    /// `chorus_live_items_dropped_total`: items the rooms' budgets sampled away.
    pub items_dropped: Option<f64>,
    /// `chorus_live_batches_total`: batches the rooms closed.
    pub batches: Option<f64>,
    /// `chorus_live_item_deliveries_total`: items handed to viewers' lanes.
    pub item_deliveries: Option<f64>,
    /// `chorus_live_viewer_batches_dropped_total`: batches dropped from slow
    /// viewers' lanes.
    pub viewer_batches_dropped: Option<f64>,
    /// `chorus_live_slow_viewer_disconnects_total`: viewers cut off as too slow.
    pub slow_viewer_disconnects: Option<f64>,
}

impl NodeFigures {
    pub(crate) fn from_metrics(
        before: Option<&str>,
        after: Option<&str>,
        rss_before_viewers_bytes: Option<u64>,
        rss_with_viewers_bytes: Option<u64>,
        rss: RssSummary,
    ) -> Self {
        // A counter appears in /metrics at its first increment: absent means 0.
        let delta = |name: &str| -> Option<f64> {
            let after = metric(after?, name).unwrap_or(0.0);
            Some(after - before.and_then(|b| metric(b, name)).unwrap_or(0.0))
        };
        Self {
            rss_before_viewers_bytes,
            rss_with_viewers_bytes,
            rss,
            items_accepted: delta("chorus_live_items_accepted_total"),
            items_dropped: delta("chorus_live_items_dropped_total"),
            batches: delta("chorus_live_batches_total"),
            item_deliveries: delta("chorus_live_item_deliveries_total"),
            viewer_batches_dropped: delta("chorus_live_viewer_batches_dropped_total"),
            slow_viewer_disconnects: delta("chorus_live_slow_viewer_disconnects_total"),
        }
    }
}

/// The result of a `live` run.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// `"live"`.
    pub scenario: &'static str,
    /// Whether the delivery check passed.
    pub passed: bool,
    /// The run's tag (in its user ids and room ids `lt<tag>-room<r>`).
    pub tag: String,
    /// Transport of every connection.
    pub transport: &'static str,
    /// Viewers asked for.
    pub viewers: u32,
    /// Viewers that joined.
    pub joined: u64,
    /// Rooms.
    pub rooms: u32,
    /// Senders, by the role they hold.
    pub senders: PrioCounts,
    /// Role shares asked for.
    pub role_shares: RoleShares,
    /// Steady rate, items/s.
    pub target_rate: f64,
    /// Steady traffic time, s.
    pub duration_s: f64,
    /// Bursts.
    pub bursts: Vec<Burst>,
    /// Danmaku started.
    pub sent: u64,
    /// Danmaku acked: accepted into their room.
    pub accepted: u64,
    /// Accepted items by `prio`.
    pub accepted_by_prio: PrioCounts,
    /// Danmaku refused or failed.
    pub failed: u64,
    /// Failures by class (`rejected_rate_limited`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Viewers that could not connect or join, by class.
    pub join_errors: BTreeMap<String, u64>,
    /// From the first viewer's connect to the last join, s.
    pub join_s: f64,
    /// Source addresses of the viewers (empty: the kernel's choice).
    pub source_ips: Vec<String>,
    /// This process's open-file limit (after raising it).
    pub open_file_limit: u64,
    /// Viewers whose items' latencies were recorded.
    pub latency_viewers: u32,
    /// Intended send → `ack`.
    pub send_to_ack: LatencySummary,
    /// Intended send → the item in a (sampled) viewer's `live_batch`.
    pub send_to_visible: LatencySummary,
    /// The same for items meant to be sent within a burst's second.
    pub send_to_visible_burst: LatencySummary,
    /// The same for `paid`/`system` items.
    pub send_to_visible_paid_system: LatencySummary,
    /// Send→visible p50/p99 per second of intended send time.
    pub visible_timeline: Vec<TimelinePoint>,
    /// Items received, summed over every viewer.
    pub deliveries: u64,
    /// Items received per second of traffic, summed over viewers: the mean over
    /// the traffic's whole seconds.
    pub deliveries_per_s: f64,
    /// The busiest second's deliveries.
    pub peak_deliveries_per_s: u64,
    /// Items received in each second since the traffic started, summed over viewers.
    pub deliveries_timeline: Vec<u64>,
    /// `live_batch` frames received, summed over viewers.
    pub batches: u64,
    /// Batches per checked viewer.
    pub batches_per_viewer: Spread,
    /// Σ `dropped` over every viewer.
    pub dropped: u64,
    /// Σ `dropped` per checked viewer.
    pub dropped_per_viewer: Spread,
    /// Items received per checked viewer.
    pub delivered_per_viewer: Spread,
    /// From the traffic's start to the last send, s.
    pub send_s: f64,
    /// From the last send until every viewer had accounted for every accepted
    /// item (or the settle timeout), s.
    pub settle_s: f64,
    /// The per-viewer delivery check.
    pub check: LiveCheck,
    /// The node's figures.
    pub node: NodeFigures,
    /// Curves for the SVG plot.
    #[serde(skip)]
    pub plot: Plot,
}

/// Everything a run gathered, for [`build`].
pub(crate) struct Outcome<'a> {
    pub(crate) cfg: &'a LiveConfig,
    pub(crate) tag: String,
    pub(crate) board: &'a Board,
    pub(crate) tallies: Vec<Tally>,
    pub(crate) roles: &'a [Option<Role>],
    pub(crate) traffic_len: Duration,
    pub(crate) sent_by: Duration,
    pub(crate) settled_after: Duration,
    pub(crate) join_s: f64,
    pub(crate) sources: Vec<String>,
    pub(crate) open_file_limit: u64,
    pub(crate) sampled_viewers: u32,
    pub(crate) node: NodeFigures,
}

/// The report of a finished run.
pub(crate) fn build(o: Outcome<'_>) -> LiveReport {
    let cfg = o.cfg;
    let b = o.board;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (sent, acked, failed) = (load(&b.sent), load(&b.acked), load(&b.failed));
    let (accepted, errors, join_errors) =
        b.record(|r| (r.accepted.clone(), r.errors.clone(), r.join_errors.clone()));
    let unanswered =
        sent.saturating_sub(acked + failed) + errors.get("timeout").copied().unwrap_or(0);
    let check = LiveCheck::compute(&o.tallies, &accepted, unanswered);
    let checked = || o.tallies.iter().filter(|t| t.end.is_none());
    let mut by_prio = [0u64; 4];
    for a in &accepted {
        for (sum, n) in by_prio.iter_mut().zip(a.by_prio) {
            *sum += n;
        }
    }
    let mut senders = [0u64; 4];
    for role in o.roles {
        let i = match role.map_or(Prio::Normal, |role| Roles::NONE.with(role).prio()) {
            Prio::Normal => 0,
            Prio::Vip => 1,
            Prio::Paid => 2,
            Prio::System => 3,
        };
        senders[i] += 1;
    }
    // Whole seconds of traffic, plus the settling's, for the timeline.
    let traffic_seconds = (o.traffic_len.as_secs_f64().ceil() as usize).max(1);
    let timeline_seconds = (o.sent_by + o.settled_after).as_secs_f64().ceil() as usize + 1;
    let deliveries_timeline = b.per_second(timeline_seconds.max(traffic_seconds));
    let in_traffic: u64 = deliveries_timeline.iter().take(traffic_seconds).sum();
    let transport = transport_name(cfg.target.transport);
    b.record(|r| {
        let plot = plot(cfg, transport, r, &deliveries_timeline, &o.node.rss);
        LiveReport {
            scenario: "live",
            passed: check.passed(),
            tag: o.tag.clone(),
            transport,
            viewers: cfg.viewers,
            joined: load(&b.joined),
            rooms: cfg.rooms,
            senders: PrioCounts::from_array(senders),
            role_shares: cfg.roles,
            target_rate: cfg.rate,
            duration_s: cfg.duration.as_secs_f64(),
            bursts: cfg.bursts.clone(),
            sent,
            accepted: acked,
            accepted_by_prio: PrioCounts::from_array(by_prio),
            failed,
            errors,
            join_errors,
            join_s: o.join_s,
            source_ips: o.sources.clone(),
            open_file_limit: o.open_file_limit,
            latency_viewers: o.sampled_viewers,
            send_to_ack: r.ack.summary(),
            send_to_visible: r.visible.summary(),
            send_to_visible_burst: r.visible_burst.summary(),
            send_to_visible_paid_system: r.visible_must_keep.summary(),
            visible_timeline: r.visible_timeline.points(),
            deliveries: load(&b.deliveries),
            deliveries_per_s: in_traffic as f64 / traffic_seconds as f64,
            peak_deliveries_per_s: deliveries_timeline.iter().copied().max().unwrap_or(0),
            deliveries_timeline: deliveries_timeline.clone(),
            batches: load(&b.batches),
            batches_per_viewer: Spread::of(checked().map(|t| t.batches)),
            dropped: load(&b.dropped),
            dropped_per_viewer: Spread::of(checked().map(|t| t.dropped)),
            delivered_per_viewer: Spread::of(checked().map(|t| t.delivered)),
            send_s: o.sent_by.as_secs_f64(),
            settle_s: o.settled_after.as_secs_f64(),
            check: check.clone(),
            node: o.node.clone(),
            plot,
        }
    })
}

fn plot(
    cfg: &LiveConfig,
    transport: &str,
    r: &super::board::Recorder,
    deliveries: &[u64],
    rss: &RssSummary,
) -> Plot {
    let bursts: u32 = cfg.bursts.iter().map(|b| b.count).sum();
    let burst_note = if bursts > 0 {
        format!(", bursts of {bursts}")
    } else {
        String::new()
    };
    let per_second = Series {
        name: "item deliveries/s (millions)".into(),
        points: deliveries
            .iter()
            .enumerate()
            .map(|(s, &n)| (s as f64 + 0.5, n as f64 / 1e6))
            .collect(),
    };
    let memory = Series {
        name: "node RSS (MB)".into(),
        points: rss
            .timeline
            .iter()
            .map(|p| (p.second, p.bytes as f64 / 1e6))
            .collect(),
    };
    Plot {
        title: format!(
            "live: {} {transport} viewers in {} room(s), {} danmaku/s{burst_note}",
            cfg.viewers, cfg.rooms, cfg.rate
        ),
        charts: vec![
            Chart::distribution(
                [
                    r.visible.curve("send→visible"),
                    r.visible_burst.curve("send→visible, burst items"),
                    r.visible_must_keep.curve("send→visible, paid/system"),
                    r.ack.curve("send→ack"),
                ]
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect(),
            ),
            Chart::timeline(r.visible_timeline.series("send→visible").into()),
            Chart::over_time(
                "item deliveries per second, all viewers",
                "millions of items/s",
                vec![per_second],
            ),
            Chart::over_time("node memory", "resident memory (MB)", vec![memory]),
        ],
    }
}
