//! Taking this node's [`LoadSample`]: connections from the session directory,
//! rates from the node's own counters, CPU from the kernel.
//!
//! The counters are read back from the Prometheus recorder's text (the same
//! numbers `/metrics` shows) rather than through new hooks in the gateway and
//! the actors: a sample every few seconds costs one render. The recorder is
//! global to the process, which is one node in production.

use std::time::Instant;

use chorus_scaling::series::LoadSample;
use metrics_exporter_prometheus::PrometheusHandle;

/// Counters whose rates a sample carries.
const ACKED: &str = "chorus_messages_acked_total";
const DANMAKU: &str = "chorus_live_items_accepted_total";
const DELIVERED: &str = "chorus_frames_out_total";

/// Linux reports process CPU time in clock ticks of `USER_HZ`, 100 on every
/// mainstream architecture (it is fixed in the kernel ABI, whatever `HZ` is).
const USER_HZ: f64 = 100.0;

/// Counter totals and CPU time at one moment.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    acked: f64,
    danmaku: f64,
    delivered: f64,
    cpu_s: Option<f64>,
}

/// Turns successive readings into samples (rates over the interval between
/// two of them).
pub(crate) struct Sampler {
    metrics: PrometheusHandle,
    last: Option<Reading>,
}

impl Sampler {
    pub(crate) fn new(metrics: PrometheusHandle) -> Self {
        Self {
            metrics,
            last: None,
        }
    }

    /// A sample ending now; rates are zero on the first call.
    pub(crate) fn sample(&mut self, at_ms: u64, connections: u64) -> LoadSample {
        let text = self.metrics.render();
        let now = Reading {
            at: Instant::now(),
            acked: counter_total(&text, ACKED),
            danmaku: counter_total(&text, DANMAKU),
            delivered: counter_total(&text, DELIVERED),
            cpu_s: process_cpu_seconds(),
        };
        let mut sample = LoadSample {
            at_ms,
            connections,
            ..LoadSample::default()
        };
        if let Some(prev) = self.last {
            let dt = now.at.duration_since(prev.at).as_secs_f64();
            if dt > 0.0 {
                let rate = |a: f64, b: f64| ((a - b) / dt).max(0.0);
                sample.msgs_per_s = rate(now.acked, prev.acked);
                sample.danmaku_per_s = rate(now.danmaku, prev.danmaku);
                sample.deliveries_per_s = rate(now.delivered, prev.delivered);
                if let (Some(a), Some(b)) = (now.cpu_s, prev.cpu_s) {
                    sample.cpu = rate(a, b);
                }
            }
        }
        self.last = Some(now);
        sample
    }
}

/// The sum over all label sets of counter `name` in Prometheus text.
pub(crate) fn counter_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            // The name must end here: `name{...} v` or `name v`.
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .filter(|v| v.is_finite())
        .sum()
}

/// User plus system CPU time of this process, from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ")".
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_counter_over_its_labels_only() {
        let text = "# TYPE chorus_frames_out_total counter\n\
                    chorus_frames_out_total 12\n\
                    chorus_frames_out_total_other 99\n\
                    chorus_messages_acked_total{node=\"a\"} 3\n\
                    chorus_messages_acked_total{node=\"b\"} 4.5\n";
        assert_eq!(counter_total(text, DELIVERED), 12.0);
        assert_eq!(counter_total(text, ACKED), 7.5);
        assert_eq!(counter_total(text, DANMAKU), 0.0);
    }

    #[test]
    fn reads_this_process_cpu_time() {
        let cpu = process_cpu_seconds().expect("Linux has /proc/self/stat");
        assert!(cpu >= 0.0);
    }
}
