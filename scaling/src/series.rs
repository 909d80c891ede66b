//! Load samples and the cluster's load series.
//!
//! Every node takes a [`LoadSample`] every sample interval; members gossip
//! their latest, and each node keeps the recent ones of every member. The
//! cluster's series of one [`Metric`] is the sum over members of each member's
//! sample in each interval, so any node that has heard the others can assemble
//! it: [`cluster_series`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node's load over one sample interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LoadSample {
    /// End of the interval, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Client connections open at the end.
    pub connections: u64,
    /// Messages accepted (acked) per second over the interval.
    pub msgs_per_s: f64,
    /// Danmaku accepted per second.
    pub danmaku_per_s: f64,
    /// Frames delivered to clients per second.
    pub deliveries_per_s: f64,
    /// CPU used by the node's process over the interval, in cores (1.0 = one
    /// core fully busy).
    pub cpu: f64,
}

/// The quantity a series is made of and capacity is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Open client connections.
    #[default]
    Connections,
    /// Accepted messages per second.
    MsgsPerS,
    /// Accepted danmaku per second.
    DanmakuPerS,
    /// Deliveries per second.
    DeliveriesPerS,
    /// CPU cores in use.
    Cpu,
}

impl Metric {
    /// Every metric, in the order of [`LoadSample`]'s fields.
    pub const ALL: [Metric; 5] = [
        Metric::Connections,
        Metric::MsgsPerS,
        Metric::DanmakuPerS,
        Metric::DeliveriesPerS,
        Metric::Cpu,
    ];

    /// The metric's name in configuration and output.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Connections => "connections",
            Metric::MsgsPerS => "msgs_per_s",
            Metric::DanmakuPerS => "danmaku_per_s",
            Metric::DeliveriesPerS => "deliveries_per_s",
            Metric::Cpu => "cpu",
        }
    }

    /// The metric named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// This metric's value in a sample; non-finite values count as zero, so a
    /// bad sample from a peer cannot poison the sum.
    pub fn of(self, s: &LoadSample) -> f64 {
        let v = match self {
            Metric::Connections => s.connections as f64,
            Metric::MsgsPerS => s.msgs_per_s,
            Metric::DanmakuPerS => s.danmaku_per_s,
            Metric::DeliveriesPerS => s.deliveries_per_s,
            Metric::Cpu => s.cpu,
        };
        if v.is_finite() { v.max(0.0) } else { 0.0 }
    }
}

/// One point of the cluster's series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// End of the interval, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The metric summed over the members that reported in the interval (a
    /// member silent in an interval counts with its previous sample).
    pub value: f64,
    /// Members that contributed.
    pub members: u32,
}

/// The cluster's series of `metric`, one point per `step_ms` interval, from
/// the samples of each member (any order). Intervals are aligned to multiples
/// of `step_ms`; a member's newest sample in an interval counts. A member
/// missing from an interval after its first sample — between two of its
/// samples, or in the newest intervals, which gossip may not have brought yet —
/// is carried forward for at most `carry` intervals, then counts as gone.
pub fn cluster_series<'a>(
    members: impl IntoIterator<Item = &'a [LoadSample]>,
    metric: Metric,
    step_ms: u64,
    carry: u32,
) -> Vec<Point> {
    let step = step_ms.max(1);
    let members: Vec<&[LoadSample]> = members.into_iter().collect();
    // The newest interval any member reached: others are carried up to it.
    let newest = members
        .iter()
        .flat_map(|m| m.iter().map(|s| s.at_ms.div_ceil(step)))
        .max()
        .unwrap_or(0);
    // interval → (sum, members)
    let mut buckets: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    for samples in members {
        // This member's newest sample per interval.
        let mut own: BTreeMap<u64, &LoadSample> = BTreeMap::new();
        for s in samples {
            let slot = s.at_ms.div_ceil(step);
            match own.get(&slot) {
                Some(prev) if prev.at_ms >= s.at_ms => {}
                _ => {
                    own.insert(slot, s);
                }
            }
        }
        let (Some(&first), Some(&last)) = (own.keys().next(), own.keys().next_back()) else {
            continue;
        };
        let mut held: Option<(&LoadSample, u32)> = None;
        let end = newest.min(last + u64::from(carry)).max(last);
        for slot in first..=end {
            match own.get(&slot) {
                Some(s) => held = Some((s, 0)),
                None => {
                    held = match held {
                        Some((s, gap)) if gap < carry => Some((s, gap + 1)),
                        _ => None,
                    }
                }
            }
            if let Some((s, _)) = held {
                let e = buckets.entry(slot).or_insert((0.0, 0));
                e.0 += metric.of(s);
                e.1 += 1;
            }
        }
    }
    buckets
        .into_iter()
        .map(|(slot, (value, members))| Point {
            at_ms: slot * step,
            value,
            members,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, connections: u64) -> LoadSample {
        LoadSample {
            at_ms,
            connections,
            ..LoadSample::default()
        }
    }

    #[test]
    fn sums_members_per_interval_and_carries_late_ones() {
        let a = [sample(10_000, 5), sample(20_000, 6), sample(30_000, 7)];
        // b misses the 20 s interval, then is gone after 30 s.
        let b = [sample(9_000, 100), sample(30_000, 300)];
        let s = cluster_series([&a[..], &b[..]], Metric::Connections, 10_000, 1);
        let values: Vec<(u64, f64, u32)> =
            s.iter().map(|p| (p.at_ms, p.value, p.members)).collect();
        assert_eq!(
            values,
            vec![(10_000, 105.0, 2), (20_000, 106.0, 2), (30_000, 307.0, 2)]
        );
        // Without carrying, the gap shows.
        let s = cluster_series([&a[..], &b[..]], Metric::Connections, 10_000, 0);
        assert_eq!(s[1].value, 6.0);
    }

    #[test]
    fn bad_values_count_as_zero() {
        let s = LoadSample {
            cpu: f64::NAN,
            msgs_per_s: -3.0,
            ..LoadSample::default()
        };
        assert_eq!(Metric::Cpu.of(&s), 0.0);
        assert_eq!(Metric::MsgsPerS.of(&s), 0.0);
        assert_eq!(
            Metric::from_name("danmaku_per_s"),
            Some(Metric::DanmakuPerS)
        );
        assert_eq!(Metric::from_name("nope"), None);
    }
}
