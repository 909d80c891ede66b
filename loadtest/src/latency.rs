//! Latencies in microseconds: an HDR histogram with its percentile summary and
//! percentile curve, and a per-second timeline of p50/p99.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plot::Series;

/// Largest latency recorded exactly: 10 minutes. Anything slower is recorded as this.
const MAX_US: u64 = 600_000_000;

/// A latency distribution in µs (3 significant digits).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3)
                .expect("constant bounds and precision are valid"),
        }
    }

    /// Records one latency; 0 counts as 1 µs and anything past 10 minutes as 10 minutes.
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_US));
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at quantile `q` (0..=1) in µs; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The percentile summary for the report.
    pub fn summary(&self) -> LatencySummary {
        let empty = self.hist.is_empty();
        LatencySummary {
            count: self.hist.len(),
            min_us: if empty { 0 } else { self.hist.min() },
            mean_us: if empty { 0.0 } else { self.hist.mean() },
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: if empty { 0 } else { self.hist.max() },
        }
    }

    /// The percentile distribution as plot points: x is `-log10(1 - p)` (0 = 0 %,
    /// 1 = 90 %, 2 = 99 %, ...), y is the latency in ms.
    pub fn curve(&self, name: &str) -> Series {
        let mut points = Vec::new();
        if !self.hist.is_empty() {
            // Ten points per decade up to 99.999 %, or as far as the samples reach.
            let decades = (self.hist.len() as f64).log10().clamp(1.0, 5.0);
            let steps = (decades * 10.0).round() as u32;
            for step in 0..=steps {
                let x = f64::from(step) / 10.0;
                let q = 1.0 - 10f64.powf(-x);
                points.push((x, self.quantile_us(q) as f64 / 1000.0));
            }
        }
        Series {
            name: name.to_string(),
            points,
        }
    }
}

/// Percentiles of a latency distribution, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

/// Latencies bucketed by the second (of the run) they were *meant* to happen in, so a
/// stall shows where it started rather than where it ended.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    seconds: Vec<Histogram<u64>>,
}

/// A timeline never grows past this many seconds (later samples go to the last one).
const MAX_SECONDS: usize = 3600;

impl Timeline {
    /// Records `us` in the bucket of second `at_s`.
    pub fn record(&mut self, at_s: u64, us: u64) {
        let i = usize::try_from(at_s)
            .unwrap_or(usize::MAX)
            .min(MAX_SECONDS - 1);
        while self.seconds.len() <= i {
            self.seconds.push(
                Histogram::new_with_bounds(1, MAX_US, 2)
                    .expect("constant bounds and precision are valid"),
            );
        }
        if let Some(h) = self.seconds.get_mut(i) {
            h.saturating_record(us.clamp(1, MAX_US));
        }
    }

    /// One point per second with samples.
    pub fn points(&self) -> Vec<TimelinePoint> {
        self.seconds
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| TimelinePoint {
                second: s as u64,
                count: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            })
            .collect()
    }

    /// The p50 and p99 lines for the plot: x in seconds, y in ms.
    pub fn series(&self, name: &str) -> [Series; 2] {
        let points = self.points();
        let line = |label: &str, pick: fn(&TimelinePoint) -> u64| Series {
            name: format!("{name} {label}"),
            points: points
                .iter()
                .map(|p| (p.second as f64 + 0.5, pick(p) as f64 / 1000.0))
                .collect(),
        };
        [line("p50", |p| p.p50_us), line("p99", |p| p.p99_us)]
    }
}

/// One second of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the measured traffic started.
    pub second: u64,
    /// Samples meant for this second.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_known_samples() {
        let mut l = Latency::new();
        assert_eq!(l.summary(), LatencySummary::default());
        for us in 1..=1000 {
            l.record(us);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
        l.record(u64::MAX);
        assert_eq!(l.summary().max_us, l.hist.highest_equivalent(MAX_US));
    }

    #[test]
    fn curves_rise_with_the_percentile() {
        let mut l = Latency::new();
        for us in 1..=10_000 {
            l.record(us);
        }
        let c = l.curve("ack");
        assert_eq!(c.points.first().map(|p| p.0), Some(0.0));
        assert_eq!(c.points.last().map(|p| p.0), Some(4.0));
        assert!(c.points.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn timelines_bucket_by_second() {
        let mut t = Timeline::default();
        t.record(0, 100);
        t.record(2, 300);
        t.record(2, 500);
        let p = t.points();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].second, p[1].count), (2, 2));
        let [p50, p99] = t.series("ack");
        assert_eq!(p50.points.len(), 2);
        assert!(p99.name.ends_with("p99"));
    }
}
