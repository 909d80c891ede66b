//! `scaling-sim`: replays load traces through the reactive (HPA-like) and the
//! predictive (EMD-ARIMA) scaling policies of `chorus-scaling`, with the same
//! node start-up delay, and reports under-provisioned time, SLA violations,
//! node-minutes and scaling actions for each, with an SVG plot per trace.
//!
//! Traces: the public series that `scaling/fixtures/make.py` extracted
//! (`traces.json`: WWWusage, Taylor's half-hourly demand) and seeded synthetic
//! live-stream days. No node is involved: this is arithmetic on traces.

use std::path::{Path, PathBuf};

use chorus_scaling::arima::SelectionLimits;
use chorus_scaling::sim::{self, LiveStreamShape, Outcome, PolicyKind, SimSettings, Trace};
use serde::{Deserialize, Serialize};

use crate::error::LoadError;
use crate::plot::{Chart, Plot, Series};

/// What to run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `traces.json` of the fixture script.
    pub traces: PathBuf,
    /// Directory for one SVG per trace (created); `None`: no plots.
    pub svg_dir: Option<PathBuf>,
    /// Short traces and a small ARIMA grid: seconds instead of minutes, for
    /// tests. The numbers it produces are not the documented ones.
    pub quick: bool,
}

/// One trace's results.
#[derive(Debug, Clone, Serialize)]
pub struct TraceResult {
    /// The trace's name.
    pub trace: String,
    /// Where it comes from and how it is replayed.
    pub description: String,
    /// Samples replayed.
    pub samples: usize,
    /// Seconds per sample as replayed.
    pub step_s: f64,
    /// Load one node serves at 100 %.
    pub per_node: f64,
    /// The settings both policies ran with.
    pub startup_s: f64,
    /// Samples the forecast looks at.
    pub window: usize,
    /// The reactive policy's measures.
    pub hpa: Summary,
    /// The predictive policy's measures.
    pub emd_arima: Summary,
    /// Whether EMD-ARIMA was under-provisioned for less time than the HPA.
    pub emd_arima_lags_less: bool,
}

/// A run's measures, without its ticks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
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
    /// Forecasts that failed (reactive rule used instead).
    pub forecast_failures: u32,
}

impl From<&Outcome> for Summary {
    fn from(o: &Outcome) -> Self {
        Self {
            under_provisioned_s: o.under_provisioned_s,
            sla_violations: o.sla_violations,
            sla_violation_s: o.sla_violation_s,
            node_minutes: o.node_minutes,
            scaling_actions: o.scaling_actions,
            forecast_failures: o.forecast_failures,
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Whether `quick` shortened the run.
    pub quick: bool,
    /// Per trace.
    pub traces: Vec<TraceResult>,
}

#[derive(Debug, Deserialize)]
struct PublicTrace {
    description: String,
    step_s: f64,
    values: Vec<f64>,
}

#[derive(Debug, Deserialize)]
struct PublicTraces {
    wwwusage: PublicTrace,
    taylor: PublicTrace,
}

/// The traces and how each is replayed: (trace, peak nodes, forecast window).
fn traces(path: &Path, quick: bool) -> Result<Vec<(Trace, u32, usize)>, LoadError> {
    let text = std::fs::read_to_string(path)?;
    let public: PublicTraces = serde_json::from_str(&text)
        .map_err(|e| LoadError::Config(format!("{}: {e}", path.display())))?;
    // Replayed one point a minute: the series' shapes, compressed in time, so
    // that their rises are steep next to a two-minute node start-up.
    let www = Trace {
        name: "wwwusage".into(),
        description: format!(
            "{} (one point a minute, as recorded)",
            public.wwwusage.description
        ),
        step_s: public.wwwusage.step_s,
        load: public.wwwusage.values,
    };
    let taylor_points = if quick { 160 } else { 672 };
    let taylor = Trace {
        name: "taylor".into(),
        description: format!(
            "{}; the first {taylor_points} half-hours ({} days), replayed one point a minute (time compressed {}x)",
            public.taylor.description,
            taylor_points / 48,
            public.taylor.step_s / 60.0
        ),
        step_s: 60.0,
        load: public
            .taylor
            .values
            .into_iter()
            .take(taylor_points)
            .collect(),
    };
    let day = LiveStreamShape::default();
    let mut live_a = sim::live_stream("live-a", 1, day);
    let mut live_b = sim::live_stream(
        "live-b",
        2,
        LiveStreamShape {
            bursts_per_day: 16.0,
            burst_max: 0.8,
            ..day
        },
    );
    if quick {
        // An evening hour: the peak and its bursts.
        for t in [&mut live_a, &mut live_b] {
            t.load = t.load[19 * 60..21 * 60].to_vec();
            t.description.push_str("; 19:00 to 21:00 only");
        }
    }
    let window = |full: usize| if quick { 32 } else { full };
    Ok(vec![
        (www, 8, window(40)),
        (taylor, 10, window(120)),
        (live_a, 10, window(120)),
        (live_b, 10, window(120)),
    ])
}

/// Runs every trace through both policies.
pub fn run(cfg: &SimConfig) -> Result<SimReport, LoadError> {
    let mut results = Vec::new();
    if let Some(dir) = &cfg.svg_dir {
        std::fs::create_dir_all(dir)?;
    }
    for (trace, peak_nodes, window) in traces(&cfg.traces, cfg.quick)? {
        let mut settings = SimSettings::for_peak(&trace, peak_nodes);
        settings.window = window;
        if cfg.quick {
            settings.predictor.orders = SelectionLimits {
                max_p: 1,
                max_q: 1,
                max_d: 1,
            };
            settings.reselect_every = 30;
        }
        let run = |policy| {
            sim::simulate(&trace, &settings, policy)
                .map_err(|e| LoadError::Config(format!("{}: {e}", trace.name)))
        };
        let hpa = run(PolicyKind::Hpa)?;
        let predictive = run(PolicyKind::EmdArima)?;
        if let Some(dir) = &cfg.svg_dir {
            plot(&trace, &settings, &hpa, &predictive)
                .write_svg(&dir.join(format!("{}.svg", trace.name)))?;
        }
        results.push(TraceResult {
            trace: trace.name.clone(),
            description: trace.description.clone(),
            samples: trace.load.len(),
            step_s: trace.step_s,
            per_node: settings.capacity.per_node,
            startup_s: settings.startup_s,
            window,
            emd_arima_lags_less: predictive.under_provisioned_s < hpa.under_provisioned_s,
            hpa: Summary::from(&hpa),
            emd_arima: Summary::from(&predictive),
        });
    }
    Ok(SimReport {
        quick: cfg.quick,
        traces: results,
    })
}

/// The load against the capacity each policy had ready, and the nodes.
fn plot(trace: &Trace, s: &SimSettings, hpa: &Outcome, predictive: &Outcome) -> Plot {
    let minutes = |o: &Outcome, f: &dyn Fn(&sim::Tick) -> f64| Series {
        name: String::new(),
        points: o.ticks.iter().map(|t| (t.t_s / 60.0, f(t))).collect(),
    };
    let cap = s.capacity.per_node;
    let named = |name: &str, mut series: Series| {
        series.name = name.into();
        series
    };
    Plot {
        title: format!(
            "{}: HPA-like vs EMD-ARIMA, node start-up {} s",
            trace.name, s.startup_s
        ),
        charts: vec![
            Chart::over_minutes(
                "load and the capacity of the ready nodes",
                "load",
                vec![
                    named("load", minutes(hpa, &|t| t.load)),
                    named(
                        "HPA-like capacity",
                        minutes(hpa, &|t| f64::from(t.ready) * cap),
                    ),
                    named(
                        "EMD-ARIMA capacity",
                        minutes(predictive, &|t| f64::from(t.ready) * cap),
                    ),
                ],
            ),
            Chart::over_minutes(
                "nodes ready",
                "nodes",
                vec![
                    named(
                        "needed at target",
                        minutes(hpa, &|t| f64::from(s.capacity.nodes_for(t.load))),
                    ),
                    named("HPA-like", minutes(hpa, &|t| f64::from(t.ready))),
                    named("EMD-ARIMA", minutes(predictive, &|t| f64::from(t.ready))),
                ],
            ),
        ],
    }
}

/// The report as a Markdown table, for `docs/scaling.md`.
pub fn markdown(report: &SimReport) -> String {
    let mut out = String::from(
        "| trace | policy | under-provisioned | SLA violations (episodes, time) | node-minutes | scaling actions |\n|---|---|---|---|---|---|\n",
    );
    for t in &report.traces {
        for (name, s) in [("HPA-like", &t.hpa), ("EMD-ARIMA", &t.emd_arima)] {
            out.push_str(&format!(
                "| {} | {name} | {:.0} s | {}, {:.0} s | {:.0} | {} |\n",
                t.trace,
                s.under_provisioned_s,
                s.sla_violations,
                s.sla_violation_s,
                s.node_minutes,
                s.scaling_actions
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_run_reports_both_policies_on_every_trace_with_plots() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let cfg = SimConfig {
            traces: Path::new(env!("CARGO_MANIFEST_DIR")).join("../scaling/fixtures/traces.json"),
            svg_dir: Some(dir.path().to_path_buf()),
            quick: true,
        };
        let report = run(&cfg).expect("runs");
        let names: Vec<&str> = report.traces.iter().map(|t| t.trace.as_str()).collect();
        assert_eq!(names, ["wwwusage", "taylor", "live-a", "live-b"]);
        for t in &report.traces {
            assert!(t.hpa.node_minutes > 0.0 && t.emd_arima.node_minutes > 0.0);
            let svg =
                std::fs::read_to_string(dir.path().join(format!("{}.svg", t.trace))).expect("plot");
            for text in [
                "HPA-like",
                "EMD-ARIMA",
                "minutes since the trace started",
                "nodes ready",
            ] {
                assert!(svg.contains(text), "{}: the plot shows {text:?}", t.trace);
            }
        }
        let table = markdown(&report);
        assert_eq!(table.lines().count(), 2 + 2 * report.traces.len());
    }
}
