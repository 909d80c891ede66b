//! `[scaling]`: load sampling, forecasts and the recommended node count.

use serde::Deserialize;

use crate::error::Problems;

/// The metrics a node's load can be measured in (`scaling.metric`).
pub const SCALING_METRICS: [&str; 5] = [
    "connections",
    "msgs_per_s",
    "danmaku_per_s",
    "deliveries_per_s",
    "cpu",
];

/// Most samples of history a node keeps per member.
pub const MAX_HISTORY_SAMPLES: u32 = 100_000;

/// `[scaling]`: every node samples its load, gossips it, forecasts the
/// cluster's load with EMD-ARIMA and recommends a node count; optionally one
/// node runs an actuator command when the recommendation changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScalingConfig {
    /// Sample (and gossip) the load every this many seconds.
    pub sample_s: u32,
    /// What load is measured in: one of [`SCALING_METRICS`].
    pub metric: String,
    /// Load one node serves at 100 %, in the metric's unit (for `cpu`, in
    /// thousandths of a core).
    pub per_node_capacity: u64,
    /// Utilisation to size for, in percent.
    pub target_percent: u32,
    /// Never recommend fewer nodes.
    pub min_nodes: u32,
    /// Never recommend more nodes.
    pub max_nodes: u32,
    /// Seconds from asking for a node until it serves; with `margin_s`, how far
    /// ahead the forecast looks.
    pub startup_s: u32,
    /// Extra seconds of forecast horizon.
    pub margin_s: u32,
    /// Samples the forecast looks at.
    pub window: u32,
    /// Forecast every this many seconds.
    pub forecast_every_s: u32,
    /// Seconds a lower recommendation must hold before it applies.
    pub down_after_s: u32,
    /// Samples of history kept per member, in memory and (for as long as
    /// they span) in the store.
    pub history_samples: u32,
    /// Write this node's samples to the store every this many seconds: a
    /// restart loses at most this much history.
    pub store_every_s: u32,
    /// The actuator: a program and its arguments, run without a shell when the
    /// recommendation changes; `{replicas}` in an argument becomes the count.
    /// Empty: no actuator.
    pub actuator: Vec<String>,
    /// Seconds the actuator may run before it is killed.
    pub actuator_timeout_s: u32,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            sample_s: 10,
            metric: "connections".into(),
            per_node_capacity: 10_000,
            target_percent: 70,
            min_nodes: 1,
            max_nodes: 100,
            startup_s: 120,
            margin_s: 60,
            window: 360,
            forecast_every_s: 60,
            down_after_s: 300,
            history_samples: 17_280,
            store_every_s: 60,
            actuator: Vec::new(),
            actuator_timeout_s: 60,
        }
    }
}

impl ScalingConfig {
    pub(crate) fn check(&self, problems: &mut Problems) {
        if !(1..=3600).contains(&self.sample_s) {
            problems.push(
                "scaling.sample_s",
                format!("is {}; it must be 1 to 3600", self.sample_s),
            );
        }
        if !SCALING_METRICS.contains(&self.metric.as_str()) {
            problems.push(
                "scaling.metric",
                format!(
                    "is \"{}\"; it must be one of {}",
                    self.metric,
                    SCALING_METRICS.join(", ")
                ),
            );
        }
        if self.per_node_capacity == 0 {
            problems.push("scaling.per_node_capacity", "must be at least 1");
        }
        if !(1..=100).contains(&self.target_percent) {
            problems.push(
                "scaling.target_percent",
                format!("is {}; it must be 1 to 100", self.target_percent),
            );
        }
        if self.min_nodes == 0 {
            problems.push("scaling.min_nodes", "must be at least 1");
        }
        if self.max_nodes < self.min_nodes {
            problems.push("scaling.max_nodes", "must be at least scaling.min_nodes");
        }
        if !(24..=4096).contains(&self.window) {
            problems.push(
                "scaling.window",
                format!("is {}; it must be 24 to 4096 samples", self.window),
            );
        }
        if self.history_samples < self.window || self.history_samples > MAX_HISTORY_SAMPLES {
            problems.push(
                "scaling.history_samples",
                format!("must be at least scaling.window and at most {MAX_HISTORY_SAMPLES}"),
            );
        }
        if !(1..=3600).contains(&self.store_every_s) {
            problems.push(
                "scaling.store_every_s",
                format!("is {}; it must be 1 to 3600", self.store_every_s),
            );
        }
        if self.forecast_every_s == 0 {
            problems.push("scaling.forecast_every_s", "must be at least 1");
        }
        if self.actuator.first().is_some_and(|p| p.is_empty()) {
            problems.push(
                "scaling.actuator",
                "the program (first element) must not be empty",
            );
        }
        if self.actuator_timeout_s == 0 {
            problems.push("scaling.actuator_timeout_s", "must be at least 1");
        }
    }
}
