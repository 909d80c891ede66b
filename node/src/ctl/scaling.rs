//! `chorusctl scaling`: predictive scaling as the asked node computes it.
//!
//! ```text
//! chorusctl scaling status     the recommended node count and what it rests on
//! chorusctl scaling forecast   the last forecast, step by step, with its interval
//! chorusctl scaling series     the cluster's load series the forecast decomposes
//! ```
//!
//! Every node assembles the same series from gossip, so any node answers.
//! `--json` prints the node's answer.

use chorus_admin_api::Endpoint;
use chorus_admin_api::scaling::{ScalingForecast, ScalingSeries, ScalingStatus};
use clap::Subcommand;

use super::Outcome;
use super::http::CtlError;
use super::render::{NONE, json, opt};
use super::table::{Table, fields};
use super::view::Ctl;

/// `chorusctl scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ScalingCommand {
    /// The recommended node count, the current load and the forecast's peak.
    Status,
    /// The last forecast: expected load and interval at each step ahead.
    Forecast,
    /// The cluster's load series (newest `scaling.window` points).
    Series,
}

impl Ctl {
    pub(super) async fn scaling(&self, command: ScalingCommand) -> Result<Outcome, CtlError> {
        Ok(match command {
            ScalingCommand::Status => {
                let answer: ScalingStatus = self
                    .client
                    .get(&self.admin, Endpoint::ScalingStatus.route().path)
                    .await?;
                if self.json {
                    json(&answer)
                } else {
                    Outcome::text(status_text(&answer))
                }
            }
            ScalingCommand::Forecast => {
                let answer: ScalingForecast = self
                    .client
                    .get(&self.admin, Endpoint::ScalingForecast.route().path)
                    .await?;
                if self.json {
                    json(&answer)
                } else {
                    Outcome::text(forecast_text(&answer))
                }
            }
            ScalingCommand::Series => {
                let answer: ScalingSeries = self
                    .client
                    .get(&self.admin, Endpoint::ScalingSeries.route().path)
                    .await?;
                if self.json {
                    json(&answer)
                } else {
                    Outcome::text(series_text(&answer))
                }
            }
        })
    }
}

/// A number with at most one decimal.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A number that may be absent.
fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| NONE.to_string(), num)
}

/// `chorusctl scaling status`.
pub(crate) fn status_text(a: &ScalingStatus) -> String {
    let peak = a.forecast.as_ref().map_or(NONE.to_string(), |f| {
        format!(
            "{} (upper end {})",
            opt_num(f.peak_mean),
            opt_num(f.peak_upper)
        )
    });
    let actuator_text = if a.actuator.configured {
        let last = a
            .actuator
            .last_run
            .as_ref()
            .map_or("not run yet".to_string(), |r| {
                format!("last run for {} nodes: {}", r.replicas, r.result)
            });
        format!(
            "{}; {last}",
            if a.actuator.this_node {
                "runs on this node"
            } else {
                "runs on another node"
            }
        )
    } else {
        "not configured".to_string()
    };
    let members = if a.members.is_empty() {
        NONE.to_string()
    } else {
        a.members.join(", ")
    };
    let mut pairs = vec![
        ("node", a.node.clone()),
        ("recommended nodes", opt(a.recommended_nodes)),
        ("for the load now", a.reactive_nodes.to_string()),
        (
            "load now",
            format!(
                "{} {} ({} members)",
                num(a.current_load),
                a.metric,
                a.current_members
            ),
        ),
        ("forecast peak", format!("{peak} within {} s", a.horizon_s)),
        (
            "capacity",
            format!(
                "{} per node at {} %",
                num(a.per_node_capacity),
                a.target_percent
            ),
        ),
        (
            "samples",
            format!(
                "{} of {} needed, every {} s",
                a.samples, a.window, a.sample_s
            ),
        ),
        ("members sampled", members),
        (
            "history stored",
            // An answer without `store` (a node of an earlier version) has zeros.
            if a.store.every_s == 0 {
                "not reported".to_string()
            } else {
                format!(
                    "{} samples, every {} s ({} failed writes, {} waiting)",
                    a.store.written, a.store.every_s, a.store.failures, a.store.pending
                )
            },
        ),
        (
            "history restored",
            a.restored.as_ref().map_or("not yet".to_string(), |r| {
                format!("{} samples of {} members", r.samples, r.members)
            }),
        ),
        ("actuator", actuator_text),
    ];
    if let Some(note) = &a.note {
        pairs.push(("note", note.clone()));
    }
    fields(&pairs)
}

/// `chorusctl scaling forecast`.
pub(crate) fn forecast_text(a: &ScalingForecast) -> String {
    let f = match a {
        ScalingForecast::Made(f) => f,
        ScalingForecast::Pending(p) => {
            let note = p.note.as_deref().unwrap_or("no forecast yet");
            return format!("no forecast yet: {note}\n");
        }
    };
    let step = u64::from(f.step_s);
    let mut table = Table::new(&["ahead", "expected", "lower", "upper"]);
    for (k, ((m, l), u)) in f.mean.iter().zip(&f.lower).zip(&f.upper).enumerate() {
        table.row(vec![
            format!("{} s", (k as u64 + 1) * step),
            num(*m),
            num(*l),
            num(*u),
        ]);
    }
    let components = f
        .components
        .iter()
        .map(|o| o.as_deref().unwrap_or("carried").to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "{}models (IMFs, then residue): {components}\n",
        table.render()
    )
}

/// `chorusctl scaling series`.
pub(crate) fn series_text(a: &ScalingSeries) -> String {
    if a.points.is_empty() {
        return "no samples yet\n".to_string();
    }
    let mut table = Table::new(&[
        "at (ms since epoch)",
        &format!("{} (cluster)", a.metric),
        "members",
    ]);
    for p in &a.points {
        table.row(vec![
            p.at_ms.to_string(),
            num(p.value),
            p.members.to_string(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

    use super::*;
    use serde_json::json;

    /// A status whose node wrote samples to the store and read some back.
    fn status_with_history() -> serde_json::Value {
        json!({
            "node": "n1", "metric": "connections", "sample_s": 10, "samples": 40, "window": 360,
            "horizon_s": 180, "per_node_capacity": 100.0, "target_percent": 70, "members": ["n1"],
            "current_load": 42.0, "current_members": 1, "reactive_nodes": 1, "recommended_nodes": 1,
            "forecast": null, "note": null,
            "store": {"every_s": 60, "written": 120, "failures": 1, "last_at_ms": 5, "pending": 6},
            "restored": {"at_ms": 3, "members": 3, "samples": 300},
            "actuator": {"configured": false, "this_node": false, "last_run": null},
        })
    }

    #[test]
    fn renders_status_forecast_and_series() {
        let status = json!({
            "node": "n1", "metric": "connections", "sample_s": 10, "samples": 400, "window": 360,
            "horizon_s": 180, "per_node_capacity": 100.0, "target_percent": 70, "members": ["n1", "n2"],
            "current_load": 420.0, "current_members": 2, "reactive_nodes": 6, "recommended_nodes": 8,
            "forecast": {"at_ms": 1, "peak_mean": 480.2, "peak_upper": 530.9, "components": 5},
            "note": null, "actuator": {"configured": true, "this_node": true, "last_run": {"replicas": 8, "at_ms": 1, "result": "ok", "exit_code": 0}},
        });
        let text = status_text(&serde_json::from_value(status).unwrap());
        for want in [
            "recommended nodes  8",
            "420 connections (2 members)",
            "480.2 (upper end 530.9) within 180 s",
            "n1, n2",
            "last run for 8 nodes: ok",
            "history stored     not reported",
            "history restored   not yet",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let text = status_text(&serde_json::from_value(status_with_history()).unwrap());
        for want in [
            "history stored     120 samples, every 60 s (1 failed writes, 6 waiting)",
            "history restored   300 samples of 3 members",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let fc = forecast_text(
            &serde_json::from_value(json!({"node": "n1", "at_ms": 1, "step_s": 10, "mean": [1.0, 2.5], "lower": [0.5, 1.0], "upper": [1.5, 4.0], "components": ["(1, 0, 1)", null]})).unwrap(),
        );
        assert!(
            fc.contains("20 s") && fc.contains("2.5") && fc.contains("(1, 0, 1) + carried"),
            "{fc}"
        );
        assert!(
            forecast_text(
                &serde_json::from_value(
                    json!({"node": "n1", "forecast": null, "note": "warming up: 3 of 360 samples"})
                )
                .unwrap()
            )
            .contains("warming up")
        );
        let series = series_text(
            &serde_json::from_value(json!({"node": "n1", "metric": "connections", "step_s": 10, "points": [{"at_ms": 10000, "value": 3.0, "members": 1}]})).unwrap(),
        );
        assert!(
            series.contains("connections (cluster)") && series.contains("10000"),
            "{series}"
        );
        assert_eq!(
            series_text(
                &serde_json::from_value(
                    json!({"node": "n1", "metric": "connections", "step_s": 10, "points": []})
                )
                .unwrap()
            ),
            "no samples yet\n"
        );
        // A node's answer without a required field is refused, naming it.
        let err = serde_json::from_value::<ScalingStatus>(json!({"node": "n1"})).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
