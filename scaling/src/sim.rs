//! The trace-driven simulator: replays a load trace through a scaling policy
//! and measures how well the nodes it provisioned followed the load.
//!
//! Time advances in ticks of `tick_s`. New nodes become ready `startup_s` after
//! the policy asks for them; removed nodes go at once (a drain takes seconds).
//! Both policies see the same samples (one per trace step) and share the
//! scale-down stabilisation of [`Recommender`]:
//!
//! - [`PolicyKind::Hpa`], Kubernetes' Horizontal Pod Autoscaler: every
//!   `hpa_period_s`, `desired = ceil(ready × utilisation / target)` with the
//!   utilisation of the latest sample, no change within a 10 % tolerance, and a
//!   five-minute scale-down stabilisation window.
//! - [`PolicyKind::EmdArima`]: at each new sample, the EMD-ARIMA forecast
//!   `h = ceil((startup_s + margin_s) / step_s)` steps ahead over the last
//!   `window` samples; the nodes for the highest upper interval end over the
//!   horizon, and never fewer than the latest sample needs. Until `window`
//!   samples exist it acts like the reactive rule.
//!
//! Measured per run ([`Outcome`]): under-provisioned time (the ready nodes'
//! utilisation above the target plus the HPA's tolerance: fewer nodes than the
//! load needs, beyond the band the HPA accepts), SLA violations (the load
//! above what the ready nodes serve at 100 %: episodes and seconds),
//! node-minutes (every provisioned node, starting ones too), and scaling
//! actions (changes of the requested count).

mod trace;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use trace::{LiveStreamShape, Trace, live_stream};

use crate::error::ScalingError;
use crate::forecast::{Forecaster, Predictor};
use crate::recommend::{Capacity, Recommender};

/// The policy a run replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Reactive, HPA-like.
    Hpa,
    /// Predictive, EMD-ARIMA.
    EmdArima,
}

impl PolicyKind {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Hpa => "HPA-like",
            PolicyKind::EmdArima => "EMD-ARIMA",
        }
    }
}

/// Settings of a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimSettings {
    /// Node capacity and bounds.
    pub capacity: Capacity,
    /// Seconds from asking for a node until it serves.
    pub startup_s: f64,
    /// Extra forecast horizon beyond the start-up time.
    pub margin_s: f64,
    /// Simulation (and measurement) tick.
    pub tick_s: f64,
    /// The HPA's evaluation period.
    pub hpa_period_s: f64,
    /// The HPA's tolerance: no change while |utilisation / target − 1| is within it.
    pub hpa_tolerance: f64,
    /// Scale-down stabilisation window, both policies.
    pub down_after_s: f64,
    /// Samples the forecast looks at.
    pub window: usize,
    /// Forecasts between two ARIMA order selections.
    pub reselect_every: u32,
    /// How forecasts are made.
    pub predictor: Predictor,
}

impl SimSettings {
    /// Defaults for a trace: sized so that the trace's peak needs about
    /// `peak_nodes` nodes at the target.
    pub fn for_peak(trace: &Trace, peak_nodes: u32) -> Self {
        let peak = trace.load.iter().copied().fold(0.0, f64::max).max(1.0);
        let target = 0.7;
        Self {
            capacity: Capacity {
                per_node: peak / (target * f64::from(peak_nodes.max(1))),
                target,
                min_nodes: 1,
                max_nodes: peak_nodes.max(1) * 3,
            },
            startup_s: 120.0,
            margin_s: 60.0,
            tick_s: 5.0,
            hpa_period_s: 15.0,
            hpa_tolerance: 0.1,
            down_after_s: 300.0,
            window: 120,
            reselect_every: 15,
            predictor: Predictor::default(),
        }
    }
}

/// One tick of a run, for plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Seconds since the trace started.
    pub t_s: f64,
    /// The load.
    pub load: f64,
    /// Nodes serving.
    pub ready: u32,
    /// Nodes provisioned (serving or starting).
    pub provisioned: u32,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The policy.
    pub policy: PolicyKind,
    /// Seconds with the ready nodes' utilisation above the target plus the
    /// HPA's tolerance.
    pub under_provisioned_s: f64,
    /// Episodes with the load above the ready nodes' full capacity.
    pub sla_violations: u32,
    /// Seconds in such episodes.
    pub sla_violation_s: f64,
    /// Node-minutes provisioned.
    pub node_minutes: f64,
    /// Changes of the requested node count.
    pub scaling_actions: u32,
    /// Forecasts that failed (the policy then used the reactive rule).
    pub forecast_failures: u32,
    /// The run, tick by tick.
    pub ticks: Vec<Tick>,
}

/// Replays `trace` through `policy`.
pub fn simulate(
    trace: &Trace,
    s: &SimSettings,
    policy: PolicyKind,
) -> Result<Outcome, ScalingError> {
    s.capacity.validate()?;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if trace.load.len() < 2 || !positive(trace.step_s) || !positive(s.tick_s) {
        return Err(ScalingError::Settings(
            "a trace needs two samples and positive steps".into(),
        ));
    }
    if trace.load.iter().any(|v| !v.is_finite()) {
        return Err(ScalingError::Series("trace values must be finite".into()));
    }
    let cap = s.capacity;
    let end_s = (trace.load.len() - 1) as f64 * trace.step_s;
    let horizon = ((s.startup_s + s.margin_s) / trace.step_s).ceil().max(1.0) as usize;
    let mut recommender = Recommender::new(s.down_after_s);
    let mut forecaster = Forecaster::new(s.predictor, s.reselect_every);
    // Nodes: ready count, and the times starting ones become ready.
    let first_need = cap.nodes_for(trace.load[0]);
    let mut ready = first_need;
    let mut starting: VecDeque<f64> = VecDeque::new();
    let mut requested = first_need;
    let mut out = Outcome {
        policy,
        under_provisioned_s: 0.0,
        sla_violations: 0,
        sla_violation_s: 0.0,
        node_minutes: 0.0,
        scaling_actions: 0,
        forecast_failures: 0,
        ticks: Vec::new(),
    };
    let mut next_hpa = 0.0;
    let mut seen_samples = 0usize;
    let mut in_violation = false;
    let ticks = (end_s / s.tick_s).floor() as usize;
    for k in 0..=ticks {
        let t = k as f64 * s.tick_s;
        while starting.front().is_some_and(|&at| at <= t) {
            starting.pop_front();
            ready += 1;
        }
        let load = interpolate(&trace.load, trace.step_s, t);
        // Samples available at t: those at or before it.
        let available = ((t / trace.step_s).floor() as usize + 1).min(trace.load.len());
        let latest = trace.load[available - 1];
        let decision = match policy {
            PolicyKind::Hpa => {
                if t + 1e-9 >= next_hpa {
                    next_hpa += s.hpa_period_s;
                    let utilisation = latest / (f64::from(ready.max(1)) * cap.per_node);
                    let ratio = utilisation / cap.target;
                    let need = if (ratio - 1.0).abs() <= s.hpa_tolerance {
                        requested
                    } else {
                        cap.nodes_for(latest)
                    };
                    Some(need)
                } else {
                    None
                }
            }
            PolicyKind::EmdArima => {
                if available > seen_samples {
                    seen_samples = available;
                    let now_need = cap.nodes_for(latest);
                    let predicted_need = if available >= s.window {
                        let window = &trace.load[available - s.window..available];
                        match forecaster.forecast(window, horizon) {
                            Ok(f) => cap.nodes_for(f.peak_upper()),
                            Err(_) => {
                                out.forecast_failures += 1;
                                now_need
                            }
                        }
                    } else {
                        now_need
                    };
                    Some(predicted_need.max(now_need))
                } else {
                    None
                }
            }
        };
        if let Some(need) = decision {
            let next = recommender.update(t, need);
            if next != requested {
                out.scaling_actions += 1;
                requested = next;
            }
            let provisioned = ready + starting.len() as u32;
            if requested > provisioned {
                for _ in provisioned..requested {
                    starting.push_back(t + s.startup_s);
                }
            } else {
                // Fewer: cancel starting nodes first (newest first), then drain ready ones.
                let mut extra = provisioned - requested;
                while extra > 0 && starting.pop_back().is_some() {
                    extra -= 1;
                }
                ready -= extra.min(ready.saturating_sub(1));
            }
        }
        let dt = if k == ticks { 0.0 } else { s.tick_s };
        let provisioned = ready + starting.len() as u32;
        // Under-provisioned: beyond the band around the target that the HPA itself
        // accepts, so that its tolerance is not counted as lag.
        if f64::from(ready) * cap.per_node * cap.target * (1.0 + s.hpa_tolerance) < load {
            out.under_provisioned_s += dt;
        }
        let violating = f64::from(ready) * cap.per_node < load;
        if violating {
            out.sla_violation_s += dt;
            if !in_violation {
                out.sla_violations += 1;
            }
        }
        in_violation = violating;
        out.node_minutes += f64::from(provisioned) * dt / 60.0;
        out.ticks.push(Tick {
            t_s: t,
            load,
            ready,
            provisioned,
        });
    }
    Ok(out)
}

/// The load at `t`, linear between samples.
fn interpolate(load: &[f64], step_s: f64, t: f64) -> f64 {
    let x = t / step_s;
    let i = (x.floor() as usize).min(load.len() - 1);
    if i + 1 >= load.len() {
        return load[load.len() - 1];
    }
    let frac = x - i as f64;
    load[i] * (1.0 - frac) + load[i + 1] * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arima::SelectionLimits;

    fn step_trace() -> Trace {
        // Flat, then a step up to three times the load, then back.
        let mut load = vec![100.0; 30];
        load.extend(vec![300.0; 30]);
        load.extend(vec![100.0; 40]);
        Trace {
            name: "step".into(),
            description: "a step".into(),
            step_s: 60.0,
            load,
        }
    }

    #[test]
    fn hpa_lags_a_step_by_the_start_up_time() {
        let trace = step_trace();
        let s = SimSettings::for_peak(&trace, 6);
        let hpa = simulate(&trace, &s, PolicyKind::Hpa).expect("runs");
        // The step arrives between two samples (interpolated over one minute)
        // and the HPA sees it at the next sample: under-provisioned for about
        // one step plus the start-up time.
        assert!(
            hpa.under_provisioned_s >= s.startup_s,
            "{}",
            hpa.under_provisioned_s
        );
        assert!(hpa.under_provisioned_s <= s.startup_s + 2.0 * trace.step_s);
        assert_eq!(hpa.sla_violations, 1);
        // Up once, down once after the stabilisation window.
        assert_eq!(hpa.scaling_actions, 2);
        let last = hpa.ticks.last().expect("ticks");
        assert_eq!(last.ready, s.capacity.nodes_for(100.0));
    }

    #[test]
    fn predictive_policy_runs_and_falls_back_before_its_window() {
        let trace = step_trace();
        let mut s = SimSettings::for_peak(&trace, 6);
        s.window = 48;
        s.predictor.orders = SelectionLimits {
            max_p: 1,
            max_q: 1,
            max_d: 1,
        };
        let run = simulate(&trace, &s, PolicyKind::EmdArima).expect("runs");
        assert_eq!(run.ticks.len(), trace.load.len() * 12 - 11);
        // It is never below the reactive need at a sample, so it ends sized.
        let last = run.ticks.last().expect("ticks");
        assert!(last.ready >= s.capacity.nodes_for(100.0));
        assert!(run.node_minutes > 0.0);
    }

    #[test]
    fn refuses_broken_traces() {
        let mut trace = step_trace();
        let s = SimSettings::for_peak(&trace, 4);
        trace.load[3] = f64::NAN;
        assert!(simulate(&trace, &s, PolicyKind::Hpa).is_err());
        trace.load = vec![1.0];
        assert!(simulate(&trace, &s, PolicyKind::Hpa).is_err());
    }
}
