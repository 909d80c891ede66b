//! The node's resident memory over a run: `process_resident_memory_bytes` from its
//! `/metrics`, read at a fixed interval by a background task, to show whether it
//! stays flat under load.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::node_http;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RssPoint {
    /// Seconds since the sampling's origin (the traffic's start).
    pub second: f64,
    /// Resident memory, bytes.
    pub bytes: u64,
}

/// The readings of a run, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RssSummary {
    /// The first reading, bytes.
    pub start_bytes: Option<u64>,
    /// The last reading, bytes.
    pub end_bytes: Option<u64>,
    /// The largest reading, bytes.
    pub max_bytes: Option<u64>,
    /// Every reading.
    pub timeline: Vec<RssPoint>,
}

impl RssSummary {
    fn from_points(timeline: Vec<RssPoint>) -> Self {
        Self {
            start_bytes: timeline.first().map(|p| p.bytes),
            end_bytes: timeline.last().map(|p| p.bytes),
            max_bytes: timeline.iter().map(|p| p.bytes).max(),
            timeline,
        }
    }
}

/// A running sampler; [`MemorySampler::stop`] ends it and returns the readings.
#[derive(Debug)]
pub(crate) struct MemorySampler {
    /// Set by `stop`: the task ends at its next wake-up.
    stop: watch::Sender<bool>,
    /// The sampling task (none without an admin address).
    task: Option<JoinHandle<Vec<RssPoint>>>,
    admin: Option<SocketAddr>,
    /// Second 0 of the readings.
    origin: Instant,
}

impl MemorySampler {
    /// Reads the node's memory now and every `every` after, timed from `origin`
    /// (readings before it count as second 0). Without an admin address it reads
    /// nothing.
    pub(crate) fn start(admin: Option<SocketAddr>, every: Duration, origin: Instant) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = admin.map(|admin| {
            tokio::spawn(async move {
                let mut points = Vec::new();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            if let Ok(bytes) = node_http::resident_memory(admin).await {
                                let second = Instant::now()
                                    .saturating_duration_since(origin)
                                    .as_secs_f64();
                                points.push(RssPoint { second, bytes });
                            }
                        }
                        () = async { let _ = stopped.wait_for(|s| *s).await; } => break,
                    }
                }
                points
            })
        });
        Self {
            stop,
            task,
            admin,
            origin,
        }
    }

    /// Takes a last reading, stops, and summarises.
    pub(crate) async fn stop(mut self) -> RssSummary {
        let (admin, origin) = (self.admin, self.origin);
        self.stop.send_replace(true);
        let mut points = match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        if let Some(admin) = admin
            && let Ok(bytes) = node_http::resident_memory(admin).await
        {
            let second = Instant::now()
                .saturating_duration_since(origin)
                .as_secs_f64();
            points.push(RssPoint { second, bytes });
        }
        RssSummary::from_points(points)
    }
}
