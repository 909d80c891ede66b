//! Predictive scaling as the answering node computes it:
//! `/admin/scaling/{status,forecast,series}`.
//!
//! Every node assembles the same cluster series from gossip, so any node
//! answers. A field added here appears in the node's answer, in the OpenAPI
//! document and, once `chorusctl` prints it, in its text: one edit per place.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /admin/scaling/status`: the recommended node count and what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScalingStatus {
    /// The node that answered.
    pub node: String,
    /// The metric forecast (`scaling.metric`).
    pub metric: String,
    /// Seconds between samples (`scaling.sample_s`).
    pub sample_s: u32,
    /// Points in the cluster series now.
    pub samples: u64,
    /// Points a forecast needs (`scaling.window`).
    pub window: u32,
    /// How far ahead the forecast looks: `startup_s + margin_s`.
    pub horizon_s: u32,
    /// What one node carries, in units of the metric.
    pub per_node_capacity: f64,
    /// The share of that capacity a node is planned to use.
    pub target_percent: u32,
    /// Members whose samples the series holds, sorted.
    pub members: Vec<String>,
    /// The load of the series' last interval.
    pub current_load: f64,
    /// Members in that interval.
    pub current_members: u32,
    /// Nodes the current load needs alone.
    pub reactive_nodes: u32,
    /// The recommendation after hysteresis; `null` before the first forecast round.
    pub recommended_nodes: Option<u32>,
    /// The last forecast made; `null` while warming up.
    pub forecast: Option<ForecastSummary>,
    /// Why the last round made no forecast, if it did not.
    pub note: Option<String>,
    /// The answering node's writes of its samples to the store.
    #[serde(default)]
    pub store: StoreWrites,
    /// What the answering node read back from the store's load history at
    /// start; `null` until it has.
    pub restored: Option<RestoredHistory>,
    /// The command that acts on the recommendation.
    pub actuator: ActuatorStatus,
}

/// The answering node's samples written to the store (`scaling.store_every_s`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreWrites {
    /// Seconds between two writes.
    pub every_s: u32,
    /// Samples written since the node started.
    pub written: u64,
    /// Writes that failed or timed out (their samples wait for the next one).
    pub failures: u64,
    /// When the last write succeeded, ms since the Unix epoch; `null` if none did.
    pub last_at_ms: Option<u64>,
    /// Samples waiting to be written.
    pub pending: u64,
}

/// The load history read from the store at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestoredHistory {
    /// When it was read, ms since the Unix epoch.
    pub at_ms: u64,
    /// Members with stored samples.
    pub members: u64,
    /// Samples read, over all members.
    pub samples: u64,
}

/// The last forecast, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastSummary {
    /// When it was made, ms since the Unix epoch.
    pub at_ms: u64,
    /// The highest expected load over the horizon (`null` if not a number).
    pub peak_mean: Option<f64>,
    /// The highest upper end of the interval: the load provisioned for (`null`
    /// if not a number).
    pub peak_upper: Option<f64>,
    /// Components the series was decomposed into (IMFs and the residue).
    pub components: u64,
}

/// `scaling.actuator` and its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActuatorStatus {
    /// Whether a command is configured.
    pub configured: bool,
    /// Whether the answering node is the one that runs it (the serving member
    /// with the smallest id).
    pub this_node: bool,
    /// Its last run on the answering node; `null` if none.
    pub last_run: Option<ActuatorRun>,
}

/// How a run of the actuator ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActuatorRun {
    /// The node count it was run for.
    pub replicas: u32,
    /// When it started, ms since the Unix epoch.
    pub at_ms: u64,
    /// `ok`, `failed` (non-zero exit or could not start) or `timeout`.
    pub result: String,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
}

/// `GET /admin/scaling/forecast`: the last forecast step by step, or why there
/// is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScalingForecast {
    /// A forecast was made.
    Made(ForecastSteps),
    /// None yet.
    Pending(ForecastPending),
}

/// A forecast, step by step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForecastSteps {
    /// The node that answered.
    pub node: String,
    /// When it was made, ms since the Unix epoch.
    pub at_ms: u64,
    /// Seconds per step.
    pub step_s: u32,
    /// Expected load 1 … horizon steps ahead.
    pub mean: Vec<f64>,
    /// Lower end of the interval at each step.
    pub lower: Vec<f64>,
    /// Upper end of the interval at each step.
    pub upper: Vec<f64>,
    /// The model of each component (IMFs fastest first, then the residue), as
    /// `(p, d, q)`; `null` for a component carried without a model.
    pub components: Vec<Option<String>>,
}

/// No forecast yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForecastPending {
    /// The node that answered.
    pub node: String,
    /// Always `null`: there is no forecast.
    pub forecast: Null,
    /// Why not (warming up, or the last attempt's failure).
    pub note: Option<String>,
}

/// The JSON `null`, as a type: a field that is present and always null.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Null {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| Null)
    }
}

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Null)
            .into()
    }
}

impl ToSchema for Null {}

/// `GET /admin/scaling/series`: the cluster's load series, newest
/// `scaling.window` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScalingSeries {
    /// The node that answered.
    pub node: String,
    /// The metric (`scaling.metric`).
    pub metric: String,
    /// Seconds per point.
    pub step_s: u32,
    /// Oldest first.
    pub points: Vec<SeriesPoint>,
}

/// One interval of the cluster series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesPoint {
    /// End of the interval, ms since the Unix epoch.
    pub at_ms: u64,
    /// The metric summed over the members that reported.
    pub value: f64,
    /// Members that contributed.
    pub members: u32,
}
