//! Load traces: evenly spaced series, and the seeded synthetic live-stream ones.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A load series to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Short name (file names, tables).
    pub name: String,
    /// Where it comes from.
    pub description: String,
    /// Seconds between samples as replayed.
    pub step_s: f64,
    /// The load, one sample per step.
    pub load: Vec<f64>,
}

/// The shape of a synthetic live-stream day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiveStreamShape {
    /// Days to generate.
    pub days: u32,
    /// Seconds per sample.
    pub step_s: f64,
    /// Load at the night-time low, as a fraction of `scale`.
    pub night: f64,
    /// Height of the evening peak (around 20:30) above the daily cycle.
    pub evening: f64,
    /// Streams that start per day with a burst of viewers (Poisson).
    pub bursts_per_day: f64,
    /// Largest burst, as a fraction of `scale`.
    pub burst_max: f64,
    /// Multiplicative noise (standard deviation, fraction).
    pub noise: f64,
    /// Load at the daytime high before the evening peak.
    pub scale: f64,
}

impl Default for LiveStreamShape {
    fn default() -> Self {
        Self {
            days: 1,
            step_s: 60.0,
            night: 0.15,
            evening: 0.6,
            bursts_per_day: 8.0,
            burst_max: 0.5,
            noise: 0.03,
            scale: 10_000.0,
        }
    }
}

/// A synthetic live-stream trace: a daily cycle (low at 04:00, high in the
/// afternoon), an evening peak around 20:30, and bursts when a popular stream
/// starts — viewers arrive within one to three minutes and leave over twenty
/// to sixty — plus noise. The same seed gives the same trace.
pub fn live_stream(name: &str, seed: u64, shape: LiveStreamShape) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let day = 86_400.0;
    let n = (f64::from(shape.days) * day / shape.step_s).round() as usize;
    let mut load = vec![0.0; n];
    for (i, v) in load.iter_mut().enumerate() {
        let t = i as f64 * shape.step_s;
        let phase = 2.0 * std::f64::consts::PI * (t - 4.0 * 3600.0) / day;
        let cycle = shape.night + (1.0 - shape.night) * 0.5 * (1.0 - phase.cos());
        let hour = (t % day) / 3600.0;
        let evening = shape.evening * (-((hour - 20.5) / 1.2).powi(2) / 2.0).exp();
        *v = shape.scale * (cycle + evening);
    }
    // Bursts: Poisson arrivals over the whole trace.
    let total_s = n as f64 * shape.step_s;
    let rate = shape.bursts_per_day / day;
    let mut at = 0.0;
    loop {
        let gap: f64 = -(1.0 - rng.random::<f64>()).ln() / rate;
        at += gap;
        if at >= total_s {
            break;
        }
        let height = shape.scale * shape.burst_max * rng.random_range(0.3..1.0);
        let rise = rng.random_range(60.0..180.0);
        let decay = rng.random_range(1200.0..3600.0);
        for (i, v) in load.iter_mut().enumerate() {
            let t = i as f64 * shape.step_s - at;
            if t < 0.0 {
                continue;
            }
            *v += if t < rise {
                height * t / rise
            } else {
                height * (-(t - rise) / decay).exp()
            };
        }
    }
    for v in &mut load {
        let noise: f64 = rng.random_range(-1.0..1.0) * shape.noise * 1.7;
        *v = (*v * (1.0 + noise)).max(0.0);
    }
    Trace {
        name: name.into(),
        description: format!(
            "synthetic live streams, seed {seed}: {} day(s) at {} s, night {:.0} %, evening peak +{:.0} %, {} bursts/day up to {:.0} %",
            shape.days,
            shape.step_s,
            shape.night * 100.0,
            shape.evening * 100.0,
            shape.bursts_per_day,
            shape.burst_max * 100.0
        ),
        step_s: shape.step_s,
        load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_traces_repeat_and_differ_by_seed() {
        let a = live_stream("a", 1, LiveStreamShape::default());
        let b = live_stream("a", 1, LiveStreamShape::default());
        let c = live_stream("c", 2, LiveStreamShape::default());
        assert_eq!(a, b);
        assert_ne!(a.load, c.load);
        assert_eq!(a.load.len(), 1440);
        assert!(a.load.iter().all(|v| v.is_finite() && *v >= 0.0));
        // The evening is busier than the night.
        let at = |h: usize| a.load[h * 60];
        assert!(at(20) > 2.0 * at(4));
    }
}
