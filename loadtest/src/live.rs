//! `live`: viewers watch live rooms while senders send danmaku at a steady rate,
//! with optional bursts; how fast do items become visible, how many item
//! deliveries per second does the node sustain, does every viewer account for every
//! accepted item, and does the node's memory stay flat?
//!
//! 1. Viewers connect at `join_rate` (lean connections, spread over loopback
//!    source addresses) and join their room (viewer `i` watches room `i mod
//!    rooms`); the run waits for every `live_joined`.
//! 2. Senders connect (SDK clients; with roles when the tokens are signed).
//! 3. The traffic: the open-loop schedule of danmaku (`rate` per second for
//!    `duration`, plus each burst's items within its second). Each item's body
//!    carries its intended send time, so send→visible runs from the schedule. The
//!    node's memory is read every second.
//! 4. After the last send: wait for every answer, then until every viewer has
//!    accounted for every accepted item of its room (received it, or been told it
//!    was `dropped`), bounded by `settle_timeout`.
//! 5. Stop the viewers and check each: accepted = delivered + Σ `dropped`, every
//!    `paid`/`system` item delivered (count and seq sum), seqs rising.
//!
//! Module map:
//!
//! - `plan`: the schedule (steady rate and bursts), senders' roles.
//! - `board`: the run's clock, counters and latency recorders, shared by all tasks.
//! - `viewer`: one lean viewer and its tally.
//! - `batch`: reading `live_batch` frames without building them.
//! - `senders`: the SDK senders.
//! - `report`: the report, the per-viewer check and the plot.

mod batch;
mod board;
mod plan;
mod report;
mod senders;
mod viewer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use plan::{Burst, RoleShares};
pub use report::{LiveCheck, LiveReport, NodeFigures, PrioCounts, Spread};

use self::board::Board;
use self::report::Outcome;
use self::senders::{SenderOptions, Senders};
use self::viewer::Viewer;
use crate::error::LoadError;
use crate::limits;
use crate::memory::MemorySampler;
use crate::node_http;
use crate::progress::Progress;
use crate::raw::loopback_sources;
use crate::schedule::OpenLoop;
use crate::target::Target;
use crate::token::Tokens;

/// How far ahead of "now" the traffic's first intended send lies, so the schedule
/// starts clean rather than already behind.
const LEAD_IN: Duration = Duration::from_millis(200);
/// How often the node's memory is read.
const RSS_EVERY: Duration = Duration::from_secs(1);

/// What a `live` run does.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The node; its `admin` address is needed for the memory figures.
    pub target: Target,
    /// Viewers, one lean connection each.
    pub viewers: u32,
    /// Rooms; viewer `i` watches room `i mod rooms`, item `i` goes to the same.
    pub rooms: u32,
    /// Senders, one SDK connection each; item `i` is sent by sender `i mod senders`.
    pub senders: u32,
    /// Steady danmaku rate, items per second, over all rooms.
    pub rate: f64,
    /// How long the steady traffic runs.
    pub duration: Duration,
    /// Extra items, each burst's within one second.
    pub bursts: Vec<Burst>,
    /// Shares of the senders holding `system`, `paid`, `vip` (needs signed tokens).
    pub roles: RoleShares,
    /// How tokens are made: `dev` (user ids) or signed with the node's secret.
    pub tokens: Tokens,
    /// Danmaku body size in bytes (at least the intended time it carries).
    pub body_size: usize,
    /// Viewers connected per second.
    pub join_rate: f64,
    /// Loopback source addresses for the viewers (0: one per 20,000 viewers).
    pub source_ips: u32,
    /// Viewers whose items' latencies are recorded, spread evenly; 0: all of them.
    /// Every viewer's deliveries are counted and checked either way.
    pub latency_viewers: u32,
    /// A viewer slower than this to connect, or to join, fails.
    pub connect_timeout: Duration,
    /// A danmaku unanswered for this long fails.
    pub request_timeout: Duration,
    /// How long to wait for answers, and then for every viewer to account for
    /// every accepted item, after the last send.
    pub settle_timeout: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl LiveConfig {
    /// A small run: 100 viewers of one room, 5 senders at 50 items/s for 3 s.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            viewers: 100,
            rooms: 1,
            senders: 5,
            rate: 50.0,
            duration: Duration::from_secs(3),
            bursts: Vec::new(),
            roles: RoleShares::default(),
            tokens: Tokens::Dev,
            body_size: 32,
            join_rate: 2000.0,
            source_ips: 0,
            latency_viewers: 1000,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(15),
            progress: false,
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.into()));
        if self.viewers == 0 || self.senders == 0 {
            return bad("viewers and senders must be at least 1");
        }
        if self.rooms == 0 || self.rooms > self.viewers {
            return bad("rooms must lie between 1 and the number of viewers");
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) || self.duration.is_zero() {
            return bad("rate must be a number ≥ 0 and duration positive");
        }
        if self.rate == 0.0 && self.bursts.is_empty() {
            return bad("with rate 0 there must be a burst");
        }
        let seconds = self.duration.as_secs_f64();
        if self
            .bursts
            .iter()
            .any(|b| b.count == 0 || !(b.at_s >= 0.0 && b.at_s < seconds))
        {
            return bad("each burst needs a count ≥ 1 and a start within the duration");
        }
        let r = &self.roles;
        let shares = [r.system, r.paid, r.vip];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
            return bad("role shares must lie between 0 and 1 and add up to at most 1");
        }
        if r.any() && !self.tokens.carries_roles() {
            return bad("roles need signed tokens: pass the node's --jwt-secret");
        }
        if self.body_size > 4096 {
            return bad("body size must be at most 4096 bytes (the protocol's default limit)");
        }
        if !(self.join_rate > 0.0 && self.join_rate.is_finite()) {
            return bad("join rate must be positive");
        }
        Ok(())
    }

    /// The traffic's length: the steady duration, or the last burst's end.
    fn traffic_len(&self) -> Duration {
        self.bursts
            .iter()
            .map(|b| Duration::from_secs_f64(b.at_s + 1.0))
            .fold(self.duration, Duration::max)
    }
}

/// Runs `live`.
pub async fn run(cfg: LiveConfig) -> Result<LiveReport, LoadError> {
    cfg.validate()?;
    if cfg.target.tls.is_some() {
        return Err(LoadError::Config(
            "--tls-ca is supported by chat and connect; live runs in the clear".into(),
        ));
    }
    let open_file_limit = limits::raise_open_files();
    let tag = format!("{:08x}", rand::random::<u32>());
    let rooms: Arc<Vec<String>> =
        Arc::new((0..cfg.rooms).map(|r| format!("lt{tag}-room{r}")).collect());
    let traffic_len = cfg.traffic_len();
    let seconds = (traffic_len + cfg.settle_timeout * 2).as_secs() as usize + 5;
    let board = Arc::new(Board::new(cfg.rooms, cfg.bursts.clone(), seconds));
    let admin = cfg.target.admin;
    let metrics_before = match admin {
        Some(a) => node_http::metrics(a).await.ok(),
        None => None,
    };
    let rss_before_viewers = match admin {
        Some(a) => node_http::resident_memory(a).await.ok(),
        None => None,
    };
    let progress = Progress::start("live", cfg.progress, progress_line(board.clone(), &cfg));

    // 1. Viewers.
    let (stop_viewers, stop_rx) = watch::channel(false);
    let sources = loopback_sources(cfg.viewers, cfg.source_ips, cfg.target.endpoint());
    let sample_every = match cfg.latency_viewers {
        0 => 1,
        n => cfg.viewers.div_ceil(n).max(1),
    };
    let ramp = OpenLoop::with_total(cfg.join_rate, u64::from(cfg.viewers));
    let ramp_start = Instant::now();
    let mut viewers = JoinSet::new();
    for i in 0..cfg.viewers {
        let intended = ramp_start + Duration::from_micros(ramp.intended_us(u64::from(i)));
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        let room = i % cfg.rooms;
        let viewer = Viewer {
            addr: cfg.target.endpoint(),
            transport: cfg.target.transport,
            source: (!sources.is_empty()).then(|| sources[i as usize % sources.len()]),
            token: cfg.tokens.token(&format!("lt{tag}-v{i}"), None)?,
            room,
            room_id: rooms[room as usize].clone(),
            sampled: i % sample_every == 0,
            timeout: cfg.connect_timeout,
        };
        viewers.spawn(viewer.run(board.clone(), stop_rx.clone()));
    }
    let join_deadline = Instant::now() + cfg.connect_timeout * 2 + Duration::from_secs(1);
    while board.joined.load(Ordering::Relaxed) + board.join_failed.load(Ordering::Relaxed)
        < u64::from(cfg.viewers)
        && Instant::now() < join_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join_s = ramp_start.elapsed().as_secs_f64();
    let rss_with_viewers = match admin {
        Some(a) => node_http::resident_memory(a).await.ok(),
        None => None,
    };

    // 2. Senders.
    let roles = cfg.roles.assign(cfg.senders);
    let users: Vec<String> = (0..cfg.senders).map(|j| format!("lt{tag}-s{j}")).collect();
    let options = SenderOptions {
        endpoint: cfg.target.endpoint().to_string(),
        transport: cfg.target.transport,
        request_timeout: cfg.request_timeout,
    };
    let senders = match Senders::connect(&options, &cfg.tokens, &users, &roles).await {
        Ok(s) => s,
        Err(e) => {
            stop_viewers.send_replace(true);
            while viewers.join_next().await.is_some() {}
            progress.stop().await;
            return Err(e);
        }
    };

    // 3. Traffic.
    let schedule = plan::schedule(cfg.rate, cfg.duration, &cfg.bursts, cfg.senders, cfg.rooms);
    let start_us = board.now_us() + u64::try_from(LEAD_IN.as_micros()).unwrap_or(0);
    board.set_traffic_start(start_us);
    let origin = board.at(start_us);
    let sampler = MemorySampler::start(admin, RSS_EVERY, origin);
    senders.send(&board, &schedule, &rooms, cfg.body_size).await;
    let sent_by = origin.elapsed();

    // 4. Settle.
    Senders::wait_for_answers(&board, cfg.request_timeout.max(cfg.settle_timeout)).await;
    let settle_deadline = Instant::now() + cfg.settle_timeout;
    while !board.all_accounted() && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled_after = origin.elapsed().saturating_sub(sent_by);
    let rss = sampler.stop().await;

    // 5. Stop, collect, check.
    stop_viewers.send_replace(true);
    let mut tallies = Vec::with_capacity(cfg.viewers as usize);
    while let Some(joined) = viewers.join_next().await {
        if let Ok(tally) = joined {
            tallies.push(tally);
        }
    }
    senders.close().await;
    progress.stop().await;
    let metrics_after = match admin {
        Some(a) => node_http::metrics(a).await.ok(),
        None => None,
    };

    Ok(report::build(Outcome {
        cfg: &cfg,
        tag,
        board: &board,
        tallies,
        roles: &roles,
        traffic_len,
        sent_by,
        settled_after,
        join_s,
        sources: sources.iter().map(ToString::to_string).collect(),
        open_file_limit,
        sampled_viewers: cfg.viewers.div_ceil(sample_every),
        node: NodeFigures::from_metrics(
            metrics_before.as_deref(),
            metrics_after.as_deref(),
            rss_before_viewers,
            rss_with_viewers,
            rss,
        ),
    }))
}

/// The progress line: joins, sends, and deliveries over the last second.
fn progress_line(
    board: Arc<Board>,
    cfg: &LiveConfig,
) -> impl FnMut(Duration) -> String + Send + 'static {
    let viewers = cfg.viewers;
    let mut last = (0u64, 0u64);
    move |_| {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let (deliveries, batches) = (load(&board.deliveries), load(&board.batches));
        let line = format!(
            "joined {}/{viewers} (failed {}) sent {} acked {} failed {} | deliveries {deliveries} (+{}/s) batches +{}/s dropped {} disconnected {}",
            load(&board.joined),
            load(&board.join_failed),
            load(&board.sent),
            load(&board.acked),
            load(&board.failed),
            deliveries.saturating_sub(last.0),
            batches.saturating_sub(last.1),
            load(&board.dropped),
            load(&board.disconnected),
        );
        last = (deliveries, batches);
        line
    }
}

#[cfg(test)]
mod tests;
