//! `ramp`: connections and a message rate that follow a schedule over time,
//! spread over one or more nodes: the load a predictive scaler should see
//! coming.
//!
//! The schedule is a list of [`Stage`]s: at `at_s` seconds after the start the
//! run should hold `connections` open connections and send `msgs_per_s`;
//! between two stages both move linearly (from zero at time 0), and after the
//! last they hold for `hold`. So `--stage 30:90` is a steady 3 connections a
//! second for 30 s, and `--stage 20:100 --stage 40:20` rises then falls.
//!
//! 1. Every tick (100 ms) the driver compares the open (or opening)
//!    connections with the schedule's count: it opens the missing ones,
//!    round-robin over the endpoints, and closes the newest above it.
//! 2. It sends the schedule's rate of messages, each from an open connection
//!    to the user of another (round-robin), so every node receives and
//!    delivers; a connection whose queue is full skips the send (counted).
//! 3. Each connection is a lean session (see `raw`): it reads and drops what
//!    the node sends, counting acks, and pings within the idle timeout.
//!
//! The report has a per-second timeline of the target and the open
//! connections, and fails when a connection could not open or was dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chorus_client::Transport;
use chorus_wire::{ClientFrame, ServerFrame};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::error::LoadError;
use crate::limits;
use crate::progress::Progress;
use crate::raw::{RawConn, RawError};
use crate::target::{TlsTarget, transport_name};

/// How often the driver moves the load toward the schedule.
const TICK: Duration = Duration::from_millis(100);

/// Messages one connection may have queued before a send is skipped.
const CONN_QUEUE: usize = 64;

/// Most connections one run holds: every one is a task and a socket here.
pub const MAX_CONNECTIONS: u32 = 200_000;

/// Most stages of a schedule.
pub const MAX_STAGES: usize = 1000;

/// One point of the schedule: the load meant at `at_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stage {
    /// Seconds after the start.
    pub at_s: f64,
    /// Open connections meant at that time.
    pub connections: u32,
    /// Messages per second meant at that time, over all connections.
    pub msgs_per_s: f64,
}

impl Stage {
    /// A stage as the CLI spells it: `SECONDS:CONNECTIONS[:MSGS_PER_S]`.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        let bad = || {
            LoadError::Config(format!(
                "--stage {text:?}: expected SECONDS:CONNECTIONS[:MSGS_PER_S]"
            ))
        };
        let mut parts = text.split(':');
        let at_s: f64 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let connections: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let msgs_per_s: f64 = match parts.next() {
            Some(rate) => rate.parse().map_err(|_| bad())?,
            None => 0.0,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            at_s,
            connections,
            msgs_per_s,
        })
    }
}

/// The load meant at each moment: linear between stages, from zero at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    stages: Vec<Stage>,
}

impl Schedule {
    /// Checks the stages: at least one, times finite and strictly increasing,
    /// rates finite and ≥ 0, counts within [`MAX_CONNECTIONS`].
    pub fn new(stages: Vec<Stage>) -> Result<Self, LoadError> {
        if stages.is_empty() || stages.len() > MAX_STAGES {
            return Err(LoadError::Config(format!("give 1 to {MAX_STAGES} --stage")));
        }
        let mut last = 0.0;
        for s in &stages {
            if !s.at_s.is_finite() || s.at_s <= last {
                return Err(LoadError::Config(format!(
                    "stage times must increase from 0: {} after {last}",
                    s.at_s
                )));
            }
            if !s.msgs_per_s.is_finite() || s.msgs_per_s < 0.0 {
                return Err(LoadError::Config(format!(
                    "stage rate {} is not a rate",
                    s.msgs_per_s
                )));
            }
            if s.connections > MAX_CONNECTIONS {
                return Err(LoadError::Config(format!(
                    "stage of {} connections; at most {MAX_CONNECTIONS}",
                    s.connections
                )));
            }
            last = s.at_s;
        }
        Ok(Self { stages })
    }

    /// When the last stage is reached, s.
    pub fn end_s(&self) -> f64 {
        self.stages.last().map_or(0.0, |s| s.at_s)
    }

    /// `(connections, msgs_per_s)` meant `t_s` after the start.
    pub fn at(&self, t_s: f64) -> (u32, f64) {
        let mut from = Stage {
            at_s: 0.0,
            connections: 0,
            msgs_per_s: 0.0,
        };
        for &to in &self.stages {
            if t_s < to.at_s {
                let f = ((t_s - from.at_s) / (to.at_s - from.at_s)).clamp(0.0, 1.0);
                let conns = f64::from(from.connections)
                    + f * (f64::from(to.connections) - f64::from(from.connections));
                let rate = from.msgs_per_s + f * (to.msgs_per_s - from.msgs_per_s);
                return (conns.floor() as u32, rate);
            }
            from = to;
        }
        (from.connections, from.msgs_per_s)
    }
}

/// What a `ramp` run does.
#[derive(Debug, Clone)]
pub struct RampConfig {
    /// The client listeners (of the transport) to spread connections over.
    pub endpoints: Vec<SocketAddr>,
    /// Transport of every connection.
    pub transport: Transport,
    /// TLS to the nodes, when they speak it.
    pub tls: Option<TlsTarget>,
    /// The load over time.
    pub schedule: Schedule,
    /// How long to hold the last stage's load.
    pub hold: Duration,
    /// A connection slower than this to its `welcome` fails.
    pub connect_timeout: Duration,
    /// Message body size, bytes.
    pub body_size: usize,
    /// Prefix of the users' ids (each run's users differ from another's).
    pub user_prefix: String,
    /// A progress line on stderr every second.
    pub progress: bool,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RampSecond {
    /// Seconds after the start.
    pub t_s: u32,
    /// Connections the schedule meant.
    pub target_connections: u32,
    /// Connections open (welcomed and not closed).
    pub open_connections: u64,
    /// Messages sent so far.
    pub msgs_sent: u64,
}

/// The result of a `ramp` run.
#[derive(Debug, Clone, Serialize)]
pub struct RampReport {
    /// `"ramp"`.
    pub scenario: &'static str,
    /// Whether every connection opened and none was dropped by a node.
    pub passed: bool,
    /// Transport used.
    pub transport: &'static str,
    /// The endpoints, in round-robin order.
    pub endpoints: Vec<String>,
    /// The schedule.
    pub stages: Vec<Stage>,
    /// Seconds the run took (schedule and hold).
    pub duration_s: f64,
    /// Most connections open at once.
    pub peak_open: u64,
    /// Connections that got their `welcome`.
    pub connected: u64,
    /// Connections that failed to open.
    pub failed: u64,
    /// Open connections a node closed.
    pub dropped: u64,
    /// Failures by class.
    pub errors: BTreeMap<String, u64>,
    /// Messages sent.
    pub msgs_sent: u64,
    /// Messages acked.
    pub msgs_acked: u64,
    /// Sends skipped because the connection's queue was full.
    pub msgs_skipped: u64,
    /// Per second: target and open connections.
    pub timeline: Vec<RampSecond>,
}

/// Counters shared with the connection tasks.
#[derive(Debug, Default)]
struct Counters {
    open: AtomicU64,
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    skipped: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn error(&self, class: String) {
        *self.errors.lock().entry(class).or_default() += 1;
    }
}

/// A connection the driver holds: dropping `tx` closes it.
struct Held {
    user: String,
    tx: mpsc::Sender<ClientFrame>,
    /// Set once welcomed: only then does it send or receive messages (a
    /// message to a session still saying hello could reach it before its
    /// `welcome`).
    welcomed: Arc<AtomicBool>,
}

/// Runs the ramp.
pub async fn run(cfg: RampConfig) -> Result<RampReport, LoadError> {
    if cfg.endpoints.is_empty() {
        return Err(LoadError::Config("no endpoint to ramp against".into()));
    }
    if let Some(bad) = cfg.endpoints.iter().find(|a| !a.ip().is_loopback()) {
        return Err(LoadError::NotLoopback(bad.to_string()));
    }
    let peak = cfg
        .schedule
        .stages
        .iter()
        .map(|s| s.connections)
        .max()
        .unwrap_or(0);
    let open_files = limits::raise_open_files();
    if open_files > 0 && u64::from(peak) + 64 > open_files {
        return Err(LoadError::Config(format!(
            "{peak} connections need more than the open-file limit of {open_files}"
        )));
    }
    let counters = Arc::new(Counters::default());
    let progress = {
        let c = Arc::clone(&counters);
        Progress::start("ramp", cfg.progress, move |_| {
            format!(
                "open {} failed {} sent {} acked {}",
                c.open.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                c.sent.load(Ordering::Relaxed),
                c.acked.load(Ordering::Relaxed)
            )
        })
    };
    let body = "r".repeat(cfg.body_size);
    let total_s = cfg.schedule.end_s() + cfg.hold.as_secs_f64();
    let start = Instant::now();
    let mut held: Vec<Held> = Vec::new();
    let mut next_user = 0u64;
    let mut next_msg = 0u64;
    let mut credit = 0.0;
    let mut sender_ix = 0usize;
    let mut peak_open = 0;
    let mut timeline = Vec::new();
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = start;
    loop {
        every.tick().await;
        let now = Instant::now();
        let t_s = now.duration_since(start).as_secs_f64();
        let (target, rate) = cfg.schedule.at(t_s);
        // Connections whose task ended (failed to open, or dropped) go.
        held.retain(|h| !h.tx.is_closed());
        while held.len() < target as usize {
            let user = format!("{}{next_user}", cfg.user_prefix);
            let addr = cfg.endpoints[next_user as usize % cfg.endpoints.len()];
            next_user += 1;
            let (tx, rx) = mpsc::channel(CONN_QUEUE);
            let welcomed = Arc::new(AtomicBool::new(false));
            let conn = Conn {
                welcomed: Arc::clone(&welcomed),
                addr,
                transport: cfg.transport,
                tls: cfg.tls.as_ref().map(|t| t.connector.clone()),
                token: user.clone(),
                timeout: cfg.connect_timeout,
                counters: Arc::clone(&counters),
            };
            tokio::spawn(conn.run(rx));
            held.push(Held { user, tx, welcomed });
        }
        // The newest go first: the oldest have the longest history on the nodes.
        held.truncate(target as usize);

        credit += rate * now.duration_since(last_tick).as_secs_f64();
        last_tick = now;
        let open = counters.open.load(Ordering::Relaxed);
        let ready: Vec<&Held> = held
            .iter()
            .filter(|h| h.welcomed.load(Ordering::Relaxed))
            .collect();
        while credit >= 1.0 && ready.len() >= 2 {
            credit -= 1.0;
            let from = sender_ix % ready.len();
            let to = (from + 1) % ready.len();
            sender_ix = sender_ix.wrapping_add(1);
            let frame = ClientFrame::Send {
                id: format!("ramp{next_msg}"),
                to: format!("user:{}", ready[to].user),
                body: body.clone(),
            };
            next_msg += 1;
            match ready[from].tx.try_send(frame) {
                Ok(()) => counters.sent.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.skipped.fetch_add(1, Ordering::Relaxed),
            };
        }
        credit = credit.min(rate.max(1.0));
        peak_open = peak_open.max(open);
        let second = t_s.floor() as u32;
        if timeline.last().is_none_or(|s: &RampSecond| s.t_s < second) {
            timeline.push(RampSecond {
                t_s: second,
                target_connections: target,
                open_connections: open,
                msgs_sent: counters.sent.load(Ordering::Relaxed),
            });
        }
        if t_s >= total_s {
            break;
        }
    }
    let duration_s = start.elapsed().as_secs_f64();
    // Closing: dropping the senders ends every connection task; the node sees
    // the sockets close.
    drop(held);
    progress.stop().await;
    let errors = counters.errors.lock().clone();
    let failed = counters.failed.load(Ordering::Relaxed);
    let dropped = counters.dropped.load(Ordering::Relaxed);
    Ok(RampReport {
        scenario: "ramp",
        passed: failed == 0 && dropped == 0,
        transport: transport_name(cfg.transport),
        endpoints: cfg.endpoints.iter().map(ToString::to_string).collect(),
        stages: cfg.schedule.stages.clone(),
        duration_s,
        peak_open,
        connected: counters.connected.load(Ordering::Relaxed),
        failed,
        dropped,
        errors,
        msgs_sent: counters.sent.load(Ordering::Relaxed),
        msgs_acked: counters.acked.load(Ordering::Relaxed),
        msgs_skipped: counters.skipped.load(Ordering::Relaxed),
        timeline,
    })
}

/// One connection's task.
struct Conn {
    addr: SocketAddr,
    transport: Transport,
    tls: Option<TlsConnector>,
    token: String,
    timeout: Duration,
    counters: Arc<Counters>,
    /// Set once the session is welcomed.
    welcomed: Arc<AtomicBool>,
}

impl Conn {
    /// Opens the session, then sends what the driver queues and reads what the
    /// node sends, until the driver drops its sender or the node closes.
    async fn run(self, mut rx: mpsc::Receiver<ClientFrame>) {
        let c = &self.counters;
        let opened = tokio::time::timeout(
            self.timeout,
            RawConn::open(
                self.addr,
                self.transport,
                None,
                &self.token,
                self.tls.as_ref(),
            ),
        )
        .await;
        let (mut conn, idle_timeout_s) = match opened {
            Ok(Ok(open)) => open,
            Ok(Err(e)) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                c.error(e.to_string());
                return;
            }
            Err(_) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                c.error("timeout".into());
                return;
            }
        };
        c.connected.fetch_add(1, Ordering::Relaxed);
        c.open.fetch_add(1, Ordering::Relaxed);
        self.welcomed.store(true, Ordering::Relaxed);
        let ping_every = Duration::from_secs(u64::from(idle_timeout_s.max(2) / 2));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let outcome: Result<(), RawError> = loop {
            tokio::select! {
                queued = rx.recv() => match queued {
                    Some(frame) => {
                        if let Err(e) = conn.send(&frame).await {
                            break Err(e);
                        }
                    }
                    // The driver let go: close quietly.
                    None => break Ok(()),
                },
                frame = conn.next_frame() => match frame {
                    Ok(Some(ServerFrame::Ack { .. })) => {
                        c.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break Err(RawError::Closed),
                    Err(e) => break Err(e),
                },
                _ = ping.tick() => {
                    if let Err(e) = conn.ping().await {
                        break Err(e);
                    }
                }
            }
        };
        c.open.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = outcome {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            c.error(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests;
