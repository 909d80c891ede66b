//! `connect`: ramps idle sessions at a rate, holds them, and reports connect latency
//! and the node's resident memory per connection.
//!
//! 1. Read the node's `process_resident_memory_bytes` (the baseline).
//! 2. Open `connections` lean sessions (see `raw`) on the open-loop schedule; each
//!    one's latency runs from its intended start to its `welcome`.
//! 3. Once every attempt has finished, let the node settle a second and read its
//!    memory again: (after − baseline) / connected is the cost of a connection.
//! 4. Hold them (pinging if the hold outlasts the node's idle timeout), counting any
//!    the node drops; then close them all.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::LoadError;
use crate::latency::{Latency, LatencySummary, Timeline};
use crate::limits;
use crate::node_http;
use crate::plot::{Chart, Plot};
use crate::progress::Progress;
use crate::raw::{RawConn, loopback_sources};
use crate::schedule::OpenLoop;
use crate::target::{Target, transport_name};

/// What a `connect` run does.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// The node; its `admin` address is needed for the memory figures.
    pub target: Target,
    /// Sessions to open.
    pub connections: u32,
    /// Connections started per second.
    pub rate: f64,
    /// How long to hold them once the ramp is over.
    pub hold: Duration,
    /// Loopback source addresses to spread sockets over (127.0.0.2, 127.0.0.3, ...);
    /// 0 picks one per 20,000 connections, and the kernel's choice below that.
    pub source_ips: u32,
    /// A connect (socket, upgrade, hello → welcome) slower than this fails.
    pub connect_timeout: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl ConnectConfig {
    /// A small run: 100 connections at 100/s, held 2 s.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            connections: 100,
            rate: 100.0,
            hold: Duration::from_secs(2),
            source_ips: 0,
            connect_timeout: Duration::from_secs(10),
            progress: false,
        }
    }

    fn sources(&self) -> Vec<IpAddr> {
        loopback_sources(self.connections, self.source_ips, self.target.endpoint())
    }
}

/// The result of a `connect` run.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// `"connect"`.
    pub scenario: &'static str,
    /// Whether every connection opened and none was dropped while held.
    pub passed: bool,
    /// Transport used.
    pub transport: &'static str,
    /// Connections asked for.
    pub connections: u32,
    /// Connections that got their `welcome`.
    pub connected: u64,
    /// Connections that failed to open.
    pub failed: u64,
    /// Open connections the node closed during the hold.
    pub dropped: u64,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Target ramp rate, connections/s.
    pub target_rate: f64,
    /// Connections that got their welcome over the ramp's length.
    pub achieved_rate: f64,
    /// From the first intended connect to the last attempt's end, s.
    pub ramp_s: f64,
    /// Hold time, s.
    pub hold_s: f64,
    /// Source addresses used (empty: the kernel's choice).
    pub source_ips: Vec<String>,
    /// This process's open-file limit (after raising it).
    pub open_file_limit: u64,
    /// Intended start → `welcome`.
    pub connect_latency: LatencySummary,
    /// The node's resident memory before the ramp, bytes (`null` without `--admin`).
    pub rss_baseline_bytes: Option<u64>,
    /// The node's resident memory with every connection open, bytes.
    pub rss_connected_bytes: Option<u64>,
    /// (connected − baseline) / connected, bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// Curves for the SVG plot.
    #[serde(skip)]
    pub plot: Plot,
}

/// Counters of the run, shared with the connection tasks and the progress line.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// Runs `connect`.
pub async fn run(cfg: ConnectConfig) -> Result<ConnectReport, LoadError> {
    if cfg.connections == 0 || !(cfg.rate > 0.0 && cfg.rate.is_finite()) {
        return Err(LoadError::Config(
            "connections and rate must be positive".into(),
        ));
    }
    let open_file_limit = limits::raise_open_files();
    let sources = cfg.sources();
    let baseline = match cfg.target.admin {
        Some(admin) => Some(
            node_http::resident_memory(admin)
                .await
                .map_err(|e| LoadError::Setup(format!("reading the node's /metrics: {e}")))?,
        ),
        None => None,
    };

    let tag = format!("{:08x}", rand::random::<u32>());
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(Mutex::new((Latency::new(), Timeline::default())));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let (hold_end, hold_rx) = watch::channel(false);
    let progress = Progress::start("connect", cfg.progress, {
        let counters = counters.clone();
        move |_| {
            format!(
                "connected {} failed {} dropped {}",
                counters.connected.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed),
                counters.dropped.load(Ordering::Relaxed)
            )
        }
    });

    let schedule = OpenLoop::with_total(cfg.rate, u64::from(cfg.connections));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..schedule.total() {
        let intended = start + Duration::from_micros(schedule.intended_us(i));
        tokio::time::sleep_until(intended).await;
        let source = (!sources.is_empty()).then(|| sources[i as usize % sources.len()]);
        let session = Session {
            addr: cfg.target.endpoint(),
            transport: cfg.target.transport,
            tls: cfg.target.tls.as_ref().map(|t| t.connector.clone()),
            source,
            token: format!("lt{tag}-c{i}"),
            intended,
            start,
            timeout: cfg.connect_timeout,
        };
        let (counters, latency, errors, hold) = (
            counters.clone(),
            latency.clone(),
            errors.clone(),
            hold_rx.clone(),
        );
        tasks.spawn(async move { session.run(counters, latency, errors, hold).await });
    }
    // Every attempt ends within its timeout: the ramp is over then.
    let attempts = u64::from(cfg.connections);
    let ramp_deadline = Instant::now() + cfg.connect_timeout + Duration::from_secs(1);
    while counters.connected.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed)
        < attempts
        && Instant::now() < ramp_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ramp_s = start.elapsed().as_secs_f64();
    let hold_until = Instant::now() + cfg.hold;

    tokio::time::sleep(Duration::from_secs(1).min(cfg.hold)).await;
    let connected_rss = match cfg.target.admin {
        Some(admin) => node_http::resident_memory(admin).await.ok(),
        None => None,
    };
    tokio::time::sleep_until(hold_until).await;
    hold_end.send_replace(true);
    while tasks.join_next().await.is_some() {}
    progress.stop().await;

    let connected = counters.connected.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let dropped = counters.dropped.load(Ordering::Relaxed);
    let (latency, timeline) = std::mem::take(&mut *latency.lock());
    let errors = std::mem::take(&mut *errors.lock());
    let per_connection = match (baseline, connected_rss) {
        (Some(before), Some(after)) if connected > 0 => {
            Some((after as f64 - before as f64) / connected as f64)
        }
        _ => None,
    };
    let transport = transport_name(cfg.target.transport);
    Ok(ConnectReport {
        scenario: "connect",
        passed: failed == 0 && dropped == 0 && connected == attempts,
        transport,
        connections: cfg.connections,
        connected,
        failed,
        dropped,
        errors,
        target_rate: cfg.rate,
        achieved_rate: connected as f64 / ramp_s.max(1e-3),
        ramp_s,
        hold_s: cfg.hold.as_secs_f64(),
        source_ips: sources.iter().map(ToString::to_string).collect(),
        open_file_limit,
        connect_latency: latency.summary(),
        rss_baseline_bytes: baseline,
        rss_connected_bytes: connected_rss,
        rss_per_connection_bytes: per_connection,
        plot: Plot {
            title: format!(
                "connect: {} {transport} connections at {}/s",
                cfg.connections, cfg.rate
            ),
            charts: vec![
                Chart::distribution(vec![latency.curve("connect")]),
                Chart::timeline(timeline.series("connect").into()),
            ],
        },
    })
}

/// Resolves once the hold is over (or the run is gone).
async fn hold_over(hold: &mut watch::Receiver<bool>) {
    let _ = hold.wait_for(|end| *end).await;
}

/// One connection to open and hold.
struct Session {
    addr: std::net::SocketAddr,
    transport: chorus_client::Transport,
    /// TLS to the node (`--tls-ca`).
    tls: Option<tokio_rustls::TlsConnector>,
    source: Option<IpAddr>,
    token: String,
    /// When the schedule meant it to start: latency runs from here.
    intended: Instant,
    /// The ramp's start, for the timeline.
    start: Instant,
    timeout: Duration,
}

impl Session {
    async fn run(
        self,
        counters: Arc<Counters>,
        latency: Arc<Mutex<(Latency, Timeline)>>,
        errors: Arc<Mutex<BTreeMap<String, u64>>>,
        mut hold: watch::Receiver<bool>,
    ) {
        let opened = tokio::time::timeout(
            self.timeout,
            RawConn::open(
                self.addr,
                self.transport,
                self.source,
                &self.token,
                self.tls.as_ref(),
            ),
        )
        .await;
        let (mut conn, idle_timeout_s) = match opened {
            Ok(Ok(open)) => open,
            failure => {
                let class = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timeout".to_string(),
                };
                *errors.lock().entry(class).or_default() += 1;
                counters.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let us = u64::try_from(self.intended.elapsed().as_micros()).unwrap_or(u64::MAX);
        let second = self.intended.duration_since(self.start).as_secs();
        {
            let mut l = latency.lock();
            l.0.record(us);
            l.1.record(second, us);
        }
        counters.connected.fetch_add(1, Ordering::Relaxed);
        // A third of the idle timeout keeps the node's deadline far away.
        let ping_every = Duration::from_secs(u64::from(idle_timeout_s.max(3) / 3));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        loop {
            tokio::select! {
                () = hold_over(&mut hold) => break,
                frame = conn.next_frame() => match frame {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                },
                _ = ping.tick() => {
                    if conn.ping().await.is_err() {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }
    }
}
