//! The store's health, as `/healthz` reports it.
//!
//! A task probes the store every [`PROBE_INTERVAL`] ([`MessageStore::probe`]):
//!
//! | backend | unhealthy when | healthy again |
//! |---|---|---|
//! | `embedded` | a write failed (fjall then refuses every later write) | a probe's write succeeds, which for a poisoned store means a restart |
//! | `scylla` | probes have failed for longer than `storage.request_timeout_ms` | the first probe that succeeds |
//!
//! The database gets the request timeout as grace because one slow answer is
//! not an outage: the node keeps answering `internal` to the requests that
//! fail meanwhile, and a load balancer should move clients only once the store
//! is really gone. Metric: `chorus_store_healthy` (1 or 0).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use chorus_store::MessageStore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the store is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How a store's failures turn into unhealthiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Unhealthy at the first failure (the embedded store: a failed write does
    /// not heal by itself).
    None,
    /// Unhealthy once failures have lasted this long without a success.
    For(Duration),
}

/// The store's health, shared between the probing task and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth(Arc<Mutex<Option<String>>>);

impl StoreHealth {
    /// Healthy, until a probe says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Why the store is unhealthy; `None` while it is healthy.
    pub fn problem(&self) -> Option<String> {
        self.0.lock().clone()
    }

    fn set(&self, problem: Option<String>) {
        let mut current = self.0.lock();
        match (&*current, &problem) {
            (None, Some(why)) => tracing::error!(problem = %why, "the store is unhealthy"),
            (Some(_), None) => tracing::info!("the store is healthy again"),
            _ => {}
        }
        metrics::gauge!("chorus_store_healthy").set(if problem.is_none() { 1.0 } else { 0.0 });
        *current = problem;
    }

    /// Probes `store` every [`PROBE_INTERVAL`] until `stop` is cancelled, each
    /// probe bounded by `timeout`.
    pub async fn watch(
        self,
        store: Arc<dyn MessageStore>,
        tolerance: Tolerance,
        timeout: Duration,
        stop: CancellationToken,
    ) {
        let probe = move || {
            let store = store.clone();
            async move { store.probe().await.map_err(|e| e.to_string()) }
        };
        self.follow(probe, tolerance, timeout, stop).await;
    }

    /// [`StoreHealth::watch`] with any probe.
    async fn follow<F, Fut>(
        self,
        mut probe: F,
        tolerance: Tolerance,
        timeout: Duration,
        stop: CancellationToken,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut failing_since: Option<Instant> = None;
        let mut every = tokio::time::interval(PROBE_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        metrics::gauge!("chorus_store_healthy").set(1.0);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let outcome = match tokio::time::timeout(timeout, probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!(
                    "the store did not answer a probe within {} ms",
                    timeout.as_millis()
                )),
            };
            match outcome {
                Ok(()) => {
                    failing_since = None;
                    if self.problem().is_some() {
                        self.set(None);
                    }
                }
                Err(why) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    let unhealthy = match tolerance {
                        Tolerance::None => true,
                        Tolerance::For(grace) => since.elapsed() >= grace,
                    };
                    if unhealthy {
                        let lasting = since.elapsed().as_millis();
                        self.set(Some(format!("{why} (failing for {lasting} ms)")));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
