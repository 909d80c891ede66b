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

use clap::Subcommand;
use serde_json::Value;

use super::http::CtlError;
use super::render::{NONE, cell};
use super::table::{Table, fields};
use super::{Ctl, Outcome};

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
        let path = match command {
            ScalingCommand::Status => "/admin/scaling/status",
            ScalingCommand::Forecast => "/admin/scaling/forecast",
            ScalingCommand::Series => "/admin/scaling/series",
        };
        let answer = self.client.get(&self.admin, path).await?;
        if self.json {
            return Ok(Outcome::json(&answer));
        }
        Ok(Outcome::text(match command {
            ScalingCommand::Status => status_text(&answer),
            ScalingCommand::Forecast => forecast_text(&answer),
            ScalingCommand::Series => series_text(&answer),
        }))
    }
}

/// A number with at most one decimal, or [`NONE`].
fn num(value: Option<&Value>) -> String {
    match value.and_then(Value::as_f64) {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => NONE.to_string(),
    }
}

/// `chorusctl scaling status`.
pub(crate) fn status_text(a: &Value) -> String {
    let forecast = a.get("forecast").filter(|f| f.is_object());
    let peak = forecast.map_or(NONE.to_string(), |f| {
        format!(
            "{} (upper end {})",
            num(f.get("peak_mean")),
            num(f.get("peak_upper"))
        )
    });
    let actuator = a.get("actuator");
    let actuator_text = match actuator
        .and_then(|x| x.get("configured"))
        .and_then(Value::as_bool)
    {
        Some(true) => {
            let here = actuator
                .and_then(|x| x.get("this_node"))
                .and_then(Value::as_bool)
                == Some(true);
            let last = actuator
                .and_then(|x| x.get("last_run"))
                .filter(|r| r.is_object())
                .map_or("not run yet".to_string(), |r| {
                    format!(
                        "last run for {} nodes: {}",
                        cell(r.get("replicas")),
                        cell(r.get("result"))
                    )
                });
            format!(
                "{}; {last}",
                if here {
                    "runs on this node"
                } else {
                    "runs on another node"
                }
            )
        }
        _ => "not configured".to_string(),
    };
    let members = a
        .get("members")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| NONE.to_string());
    let mut pairs = vec![
        ("node", cell(a.get("node"))),
        ("recommended nodes", cell(a.get("recommended_nodes"))),
        ("for the load now", cell(a.get("reactive_nodes"))),
        (
            "load now",
            format!(
                "{} {} ({} members)",
                num(a.get("current_load")),
                cell(a.get("metric")),
                cell(a.get("current_members"))
            ),
        ),
        (
            "forecast peak",
            format!("{peak} within {} s", cell(a.get("horizon_s"))),
        ),
        (
            "capacity",
            format!(
                "{} per node at {} %",
                num(a.get("per_node_capacity")),
                cell(a.get("target_percent"))
            ),
        ),
        (
            "samples",
            format!(
                "{} of {} needed, every {} s",
                cell(a.get("samples")),
                cell(a.get("window")),
                cell(a.get("sample_s"))
            ),
        ),
        ("members sampled", members),
        ("actuator", actuator_text),
    ];
    if let Some(note) = a.get("note").and_then(Value::as_str) {
        pairs.push(("note", note.to_string()));
    }
    fields(&pairs)
}

/// `chorusctl scaling forecast`.
pub(crate) fn forecast_text(a: &Value) -> String {
    let (Some(mean), Some(lower), Some(upper)) = (
        a.get("mean").and_then(Value::as_array),
        a.get("lower").and_then(Value::as_array),
        a.get("upper").and_then(Value::as_array),
    ) else {
        let note = a
            .get("note")
            .and_then(Value::as_str)
            .unwrap_or("no forecast yet");
        return format!("no forecast yet: {note}\n");
    };
    let step = a.get("step_s").and_then(Value::as_u64).unwrap_or(0);
    let mut table = Table::new(&["ahead", "expected", "lower", "upper"]);
    for (k, ((m, l), u)) in mean.iter().zip(lower).zip(upper).enumerate() {
        table.row(vec![
            format!("{} s", (k as u64 + 1) * step),
            num(Some(m)),
            num(Some(l)),
            num(Some(u)),
        ]);
    }
    let components = a
        .get("components")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .map(|o| o.as_str().unwrap_or("carried").to_string())
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .unwrap_or_default();
    format!(
        "{}models (IMFs, then residue): {components}\n",
        table.render()
    )
}

/// `chorusctl scaling series`.
pub(crate) fn series_text(a: &Value) -> String {
    let points = a
        .get("points")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if points.is_empty() {
        return "no samples yet\n".to_string();
    }
    let mut table = Table::new(&[
        "at (ms since epoch)",
        &format!("{} (cluster)", cell(a.get("metric"))),
        "members",
    ]);
    for p in &points {
        table.row(vec![
            cell(p.get("at_ms")),
            num(p.get("value")),
            cell(p.get("members")),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_status_forecast_and_series() {
        let status = json!({
            "node": "n1", "metric": "connections", "sample_s": 10, "samples": 400, "window": 360,
            "horizon_s": 180, "per_node_capacity": 100.0, "target_percent": 70, "members": ["n1", "n2"],
            "current_load": 420.0, "current_members": 2, "reactive_nodes": 6, "recommended_nodes": 8,
            "forecast": {"at_ms": 1, "peak_mean": 480.2, "peak_upper": 530.9, "components": 5},
            "note": null, "actuator": {"configured": true, "this_node": true, "last_run": {"replicas": 8, "result": "ok"}},
        });
        let text = status_text(&status);
        for want in [
            "recommended nodes  8",
            "420 connections (2 members)",
            "480.2 (upper end 530.9) within 180 s",
            "n1, n2",
            "last run for 8 nodes: ok",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        let fc = forecast_text(
            &json!({"step_s": 10, "mean": [1.0, 2.5], "lower": [0.5, 1.0], "upper": [1.5, 4.0], "components": ["(1, 0, 1)", null]}),
        );
        assert!(
            fc.contains("20 s") && fc.contains("2.5") && fc.contains("(1, 0, 1) + carried"),
            "{fc}"
        );
        assert!(
            forecast_text(&json!({"forecast": null, "note": "warming up: 3 of 360 samples"}))
                .contains("warming up")
        );
        let series = series_text(
            &json!({"metric": "connections", "points": [{"at_ms": 10000, "value": 3.0, "members": 1}]}),
        );
        assert!(
            series.contains("connections (cluster)") && series.contains("10000"),
            "{series}"
        );
        assert_eq!(series_text(&json!({"points": []})), "no samples yet\n");
    }
}
