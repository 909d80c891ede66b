//! Predictive scaling on a running node: samples, gossip, forecasts, the
//! recommended node count, `/metrics`, and the actuator.
//!
//! ```text
//! at start:                 the store's load history ──► every member's history
//! every scaling.sample_s:   Sampler ──► own history ──► gossip (KEY_LOAD_SAMPLE)
//!                                   └─► pending ──(every store_every_s)──► the store
//!                           gossip of live members ──► their histories
//! every forecast_every_s:   histories ──► cluster series ──► EMD-ARIMA (blocking pool)
//!                           ──► needed nodes ──► Recommender (hysteresis)
//!                           ──► gauges; on a change, the actuator (one node)
//! ```
//!
//! Every node assembles the same cluster series from the same gossip, so every
//! node recommends (about) the same count and any of them answers `chorusctl
//! scaling`. Only the *actuator node* runs the actuator: the serving member with
//! the smallest node id, so that a change is acted on once.
//!
//! Peers' samples are untrusted: a value longer than [`MAX_SAMPLE_BYTES`] or that
//! does not parse is dropped and counted in `chorus_scaling_bad_samples_total`;
//! histories are bounded (`scaling.history_samples` per member,
//! [`MAX_MEMBERS`] members, and a member silent for a whole window is
//! forgotten).
//!
//! Histories outlive the process: each node writes its own samples to the
//! store every `scaling.store_every_s`, kept there for the history's span
//! (`history_samples × sample_s`), and reads every member's stored history
//! when it starts. A restarted node therefore forecasts at its first tick,
//! and a node that joins a running cluster has the cluster's series at once,
//! instead of waiting `scaling.window` samples. A store that fails at start
//! is asked again at each forecast until the window has filled from gossip;
//! one that fails later only delays the writes (see `persist`).
//!
//! - `sample`: this node's sample.
//! - `persist`: the batched writes to the store and the read at start.
//! - `actuator`: running the configured command.

mod actuator;
mod persist;
mod sample;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_actors::ShardRegion;
use chorus_admin_api::scaling::{
    ActuatorStatus, ForecastPending, ForecastSteps, ForecastSummary, Null, RestoredHistory,
    ScalingForecast, ScalingSeries, ScalingStatus, SeriesPoint, StoreWrites,
};
use chorus_config::ScalingConfig;
use chorus_scaling::arima::SelectionLimits;
use chorus_scaling::emd::Emd;
use chorus_scaling::forecast::{Forecaster, LoadForecast, Predictor};
use chorus_scaling::recommend::{Capacity, Recommender};
use chorus_scaling::series::{LoadSample, Metric, Point, cluster_series};
use chorus_store::MessageStore;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::runtime::ClusterRuntime;
use actuator::ActuatorRun;
use persist::Pending;
use sample::Sampler;

/// Longest gossiped sample accepted from a peer.
pub const MAX_SAMPLE_BYTES: usize = 1024;

/// Most members whose histories a node keeps (with the default history of
/// 17,280 samples, about 240 MB at most).
pub const MAX_MEMBERS: usize = 256;

/// Intervals a member may miss (late gossip) before it stops counting.
const CARRY_INTERVALS: u32 = 2;

/// How a node forecasts: one order selection every this many forecasts, refits
/// in between (see [`Forecaster`]).
const RESELECT_EVERY: u32 = 10;

/// The state the admin API reads.
#[derive(Debug)]
struct State {
    /// Samples per member id (this node included), oldest first.
    histories: HashMap<String, VecDeque<LoadSample>>,
    /// The last forecast and when it was made.
    forecast: Option<(u64, LoadForecast)>,
    /// Why the last forecast was not made, if it was not.
    forecast_error: Option<String>,
    /// The load of the last interval of the cluster series.
    current_load: f64,
    /// Members in the last interval.
    current_members: u32,
    /// Nodes the current load needs alone.
    reactive_nodes: u32,
    /// The recommendation after hysteresis.
    recommended: Option<u32>,
    /// Whether this node runs the actuator.
    actuator_node: bool,
    /// The actuator's last run.
    last_run: Option<ActuatorRun>,
    /// What was read back from the store at start, once it was.
    restored: Option<Restored>,
    /// What the writes to the store have done (`status.store`).
    stored: Stored,
}

/// The writes of this node's samples to the store since start.
#[derive(Debug, Clone, Copy, Default)]
struct Stored {
    /// Samples written.
    written: u64,
    /// Batches that failed (their samples were kept for the next one).
    failures: u64,
    /// When the last batch was written.
    last_at_ms: Option<u64>,
}

/// The load history read from the store at start (`status.restored`).
#[derive(Debug, Clone, Copy)]
struct Restored {
    /// When it was read.
    at_ms: u64,
    /// Members with stored samples.
    members: usize,
    /// Samples read, over all members.
    samples: usize,
}

/// The service: its state, and the tasks that keep it current.
pub struct Scaling {
    config: ScalingConfig,
    node_id: String,
    metric: Metric,
    capacity: Capacity,
    state: Arc<Mutex<State>>,
    /// This node's samples not yet in the store.
    pending: Arc<Mutex<Pending>>,
    /// Where the history outlives the process.
    store: Arc<dyn MessageStore>,
}

impl std::fmt::Debug for Scaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaling")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Scaling {
    /// Starts sampling, storing and forecasting until `shutdown`.
    pub fn start(
        config: &ScalingConfig,
        node_id: String,
        store: Arc<dyn MessageStore>,
        region: ShardRegion,
        cluster: Option<Arc<ClusterRuntime>>,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let metric = Metric::from_name(&config.metric).unwrap_or_default();
        let per_node = match metric {
            // Capacity in thousandths of a core, samples in cores.
            Metric::Cpu => config.per_node_capacity as f64 / 1000.0,
            _ => config.per_node_capacity as f64,
        };
        let capacity = Capacity {
            per_node,
            target: f64::from(config.target_percent) / 100.0,
            min_nodes: config.min_nodes,
            max_nodes: config.max_nodes,
        };
        let service = Arc::new(Self {
            config: config.clone(),
            node_id,
            metric,
            capacity,
            state: Arc::new(Mutex::new(State {
                histories: HashMap::new(),
                forecast: None,
                forecast_error: None,
                current_load: 0.0,
                current_members: 0,
                reactive_nodes: capacity.min_nodes,
                recommended: None,
                actuator_node: cluster.is_none(),
                last_run: None,
                restored: None,
                stored: Stored::default(),
            })),
            pending: Arc::new(Mutex::new(Pending::new(config.history_samples as usize))),
            store,
        });
        let storing = service.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            storing.store_loop(stop).await;
        });
        let sampling = service.clone();
        let (region2, cluster2, stop) = (region, cluster.clone(), shutdown.clone());
        tokio::spawn(async move {
            sampling.sample_loop(region2, cluster2, metrics, stop).await;
        });
        let forecasting = service.clone();
        tokio::spawn(async move {
            forecasting.forecast_loop(cluster, shutdown).await;
        });
        service
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    async fn sample_loop(
        self: Arc<Self>,
        region: ShardRegion,
        cluster: Option<Arc<ClusterRuntime>>,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) {
        let mut sampler = Sampler::new(metrics);
        let mut every = tokio::time::interval(Duration::from_secs(u64::from(self.config.sample_s)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let at_ms = now_ms();
            let sample = sampler.sample(at_ms, region.sessions().count() as u64);
            self.record(&self.node_id.clone(), sample);
            self.pending.lock().push(sample);
            self.forget_silent(at_ms);
            if let Some(cluster) = &cluster {
                if let Ok(json) = serde_json::to_string(&sample) {
                    cluster.membership().set_load_sample(json).await;
                }
                for (node, value) in cluster.membership().load_samples().await {
                    if node == self.node_id {
                        continue;
                    }
                    match parse_peer_sample(&value) {
                        Some(s) => self.record(&node, s),
                        None => metrics::counter!("chorus_scaling_bad_samples_total").increment(1),
                    }
                }
            }
        }
    }

    /// Adds a sample to a member's history, if it is newer than its last.
    fn record(&self, node: &str, sample: LoadSample) {
        let mut state = self.lock();
        if !state.histories.contains_key(node) && state.histories.len() >= MAX_MEMBERS {
            return;
        }
        let history = state.histories.entry(node.to_string()).or_default();
        if history
            .back()
            .is_some_and(|last| last.at_ms >= sample.at_ms)
        {
            return;
        }
        history.push_back(sample);
        while history.len() > self.config.history_samples as usize {
            history.pop_front();
        }
    }

    /// Drops the histories of members silent for a whole window: they no longer
    /// count in the series, and a cluster that replaces nodes would otherwise
    /// accumulate them.
    fn forget_silent(&self, now_ms: u64) {
        let horizon_ms = u64::from(self.config.sample_s) * 1000 * u64::from(self.config.window);
        let cutoff = now_ms.saturating_sub(horizon_ms);
        self.lock()
            .histories
            .retain(|_, h| h.back().is_some_and(|s| s.at_ms >= cutoff));
    }

    /// The cluster's series of the configured metric.
    fn series(&self) -> Vec<Point> {
        let state = self.lock();
        let histories: Vec<Vec<LoadSample>> = state
            .histories
            .values()
            .map(|h| h.iter().copied().collect())
            .collect();
        drop(state);
        cluster_series(
            histories.iter().map(Vec::as_slice),
            self.metric,
            u64::from(self.config.sample_s) * 1000,
            CARRY_INTERVALS,
        )
    }

    async fn forecast_loop(
        self: Arc<Self>,
        cluster: Option<Arc<ClusterRuntime>>,
        shutdown: CancellationToken,
    ) {
        let predictor = Predictor {
            emd: Emd::default(),
            orders: SelectionLimits::default(),
            z: chorus_scaling::arima::Z95,
        };
        let mut forecaster = Some(Forecaster::new(predictor, RESELECT_EVERY));
        let mut recommender = Recommender::new(f64::from(self.config.down_after_s));
        let horizon = (f64::from(self.config.startup_s + self.config.margin_s)
            / f64::from(self.config.sample_s))
        .ceil()
        .max(1.0) as usize;
        let window = self.config.window as usize;
        let mut restored = self.restore().await.is_ok();
        let started = tokio::time::Instant::now();
        let mut every =
            tokio::time::interval(Duration::from_secs(u64::from(self.config.forecast_every_s)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            if !restored && self.series().len() < window {
                restored = self.restore().await.is_ok();
            }
            let series = self.series();
            let Some(last) = series.last().copied() else {
                continue;
            };
            let reactive = self.capacity.nodes_for(last.value);
            let mut forecast_need = None;
            let mut error = None;
            if series.len() >= window {
                let values: Vec<f64> = series[series.len() - window..]
                    .iter()
                    .map(|p| p.value)
                    .collect();
                let Some(mut f) = forecaster.take() else {
                    continue;
                };
                let begun = std::time::Instant::now();
                let joined = tokio::task::spawn_blocking(move || {
                    let out = f.forecast(&values, horizon);
                    (f, out)
                })
                .await;
                metrics::histogram!("chorus_scaling_forecast_seconds")
                    .record(begun.elapsed().as_secs_f64());
                match joined {
                    Ok((f, result)) => {
                        forecaster = Some(f);
                        match result {
                            Ok(fc) => {
                                forecast_need = Some(self.capacity.nodes_for(fc.peak_upper()));
                                metrics::gauge!("chorus_scaling_forecast_load")
                                    .set(fc.mean.last().copied().unwrap_or(0.0));
                                metrics::gauge!("chorus_scaling_forecast_upper")
                                    .set(fc.peak_upper());
                                self.lock().forecast = Some((now_ms(), fc));
                            }
                            Err(e) => error = Some(e.to_string()),
                        }
                    }
                    Err(e) => {
                        // The forecast panicked: start again with a fresh forecaster.
                        forecaster = Some(Forecaster::new(predictor, RESELECT_EVERY));
                        error = Some(format!("forecast task failed: {e}"));
                    }
                }
                if error.is_some() {
                    metrics::counter!("chorus_scaling_forecast_failures_total").increment(1);
                }
            } else {
                error = Some(format!("warming up: {} of {window} samples", series.len()));
            }
            let need = forecast_need.map_or(reactive, |f| f.max(reactive));
            let before = recommender.current();
            let recommended = recommender.update(started.elapsed().as_secs_f64(), need);
            metrics::gauge!("chorus_scaling_load").set(last.value);
            metrics::gauge!("chorus_scaling_reactive_nodes").set(f64::from(reactive));
            metrics::gauge!("chorus_scaling_recommended_nodes").set(f64::from(recommended));
            let actuator_node = match &cluster {
                None => true,
                Some(c) => is_actuator_node(c, &self.node_id).await,
            };
            {
                let mut state = self.lock();
                state.current_load = last.value;
                state.current_members = last.members;
                state.reactive_nodes = reactive;
                state.recommended = Some(recommended);
                state.forecast_error = error;
                state.actuator_node = actuator_node;
            }
            if before != Some(recommended) && actuator_node && !self.config.actuator.is_empty() {
                let timeout = Duration::from_secs(u64::from(self.config.actuator_timeout_s));
                let run =
                    actuator::run(&self.config.actuator, recommended, timeout, now_ms()).await;
                self.lock().last_run = Some(run);
            }
        }
    }

    /// `GET /admin/scaling/status`.
    pub fn status(&self) -> ScalingStatus {
        let series_len = self.series().len();
        let state = self.lock();
        let forecast = state.forecast.as_ref().map(|(at_ms, f)| ForecastSummary {
            at_ms: *at_ms,
            peak_mean: finite(f.mean.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            peak_upper: finite(f.peak_upper()),
            components: f.components.len() as u64,
        });
        let mut members: Vec<String> = state.histories.keys().cloned().collect();
        members.sort();
        ScalingStatus {
            node: self.node_id.clone(),
            metric: self.metric.name().to_string(),
            sample_s: self.config.sample_s,
            samples: series_len as u64,
            window: self.config.window,
            horizon_s: self.config.startup_s + self.config.margin_s,
            per_node_capacity: self.capacity.per_node,
            target_percent: self.config.target_percent,
            members,
            current_load: state.current_load,
            current_members: state.current_members,
            reactive_nodes: state.reactive_nodes,
            recommended_nodes: state.recommended,
            forecast,
            note: state.forecast_error.clone(),
            store: StoreWrites {
                every_s: self.config.store_every_s,
                written: state.stored.written,
                failures: state.stored.failures,
                last_at_ms: state.stored.last_at_ms,
                pending: self.pending.lock().len() as u64,
            },
            restored: state.restored.map(|r| RestoredHistory {
                at_ms: r.at_ms,
                members: r.members as u64,
                samples: r.samples as u64,
            }),
            actuator: ActuatorStatus {
                configured: !self.config.actuator.is_empty(),
                this_node: state.actuator_node,
                last_run: state.last_run.as_ref().map(ActuatorRun::to_api),
            },
        }
    }

    /// `GET /admin/scaling/forecast`.
    pub fn forecast(&self) -> ScalingForecast {
        let state = self.lock();
        match &state.forecast {
            None => ScalingForecast::Pending(ForecastPending {
                node: self.node_id.clone(),
                forecast: Null,
                note: state.forecast_error.clone(),
            }),
            Some((at_ms, f)) => ScalingForecast::Made(ForecastSteps {
                node: self.node_id.clone(),
                at_ms: *at_ms,
                step_s: self.config.sample_s,
                mean: f.mean.clone(),
                lower: f.lower.clone(),
                upper: f.upper.clone(),
                components: f
                    .components
                    .iter()
                    .map(|c| c.order.map(|o| o.to_string()))
                    .collect(),
            }),
        }
    }

    /// `GET /admin/scaling/series`: the cluster series, newest `window` points.
    pub fn series_json(&self) -> ScalingSeries {
        let series = self.series();
        let keep = series.len().saturating_sub(self.config.window as usize);
        ScalingSeries {
            node: self.node_id.clone(),
            metric: self.metric.name().to_string(),
            step_s: self.config.sample_s,
            points: series[keep..]
                .iter()
                .map(|p| SeriesPoint {
                    at_ms: p.at_ms,
                    value: p.value,
                    members: p.members,
                })
                .collect(),
        }
    }
}

impl ActuatorRun {
    /// As `/admin/scaling/status` shows it.
    fn to_api(&self) -> chorus_admin_api::scaling::ActuatorRun {
        chorus_admin_api::scaling::ActuatorRun {
            replicas: self.replicas,
            at_ms: self.at_ms,
            result: self.result.to_string(),
            exit_code: self.exit_code,
        }
    }
}

/// `x`, or `None` where JSON has no number for it (it was `null` on the wire).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A peer's sample, if it is one.
fn parse_peer_sample(value: &str) -> Option<LoadSample> {
    if value.len() > MAX_SAMPLE_BYTES {
        return None;
    }
    serde_json::from_str(value).ok()
}

/// Whether this node is the serving member with the smallest id.
async fn is_actuator_node(cluster: &ClusterRuntime, me: &str) -> bool {
    cluster
        .members()
        .await
        .into_iter()
        .filter(|v| v.member.alive && v.member.status.as_str() == "serving")
        .map(|v| v.member.node_id)
        .min()
        .is_none_or(|first| first == me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_samples_are_checked() {
        let good = serde_json::to_string(&LoadSample {
            at_ms: 5,
            connections: 3,
            ..LoadSample::default()
        })
        .expect("encodes");
        assert_eq!(parse_peer_sample(&good).map(|s| s.connections), Some(3));
        assert!(parse_peer_sample("not json").is_none());
        assert!(parse_peer_sample(&"x".repeat(MAX_SAMPLE_BYTES + 1)).is_none());
        assert!(parse_peer_sample("{\"at_ms\": -1}").is_none());
    }
}
