//! `storm`: a fleet with traffic history loses every connection at once and comes
//! back; how long until all have reconnected and caught up, and was anything lost?
//!
//! 1. Connect `users` SDK clients in 1:1 pairs, through the tool's relay (or
//!    directly, when the node's admin API does the cutting).
//! 2. History: each user sends `history` messages to its peer.
//! 3. Open-loop traffic at `rate` for `duration`; `cut_after` into it every
//!    connection drops at once — the relay closes every socket, or the admin API
//!    kicks every user. The SDK reconnects, re-sends what was unacked (same ids) and
//!    resyncs from history; traffic keeps flowing throughout.
//! 4. Wait for answers, for every client to be back, for every owed delivery.
//! 5. Check: every acked message delivered exactly once and in order to its peer,
//!    and present in the conversation's history.
//!
//! A client has *reconnected* at its first `Connected` after the cut, and has
//! *caught up* once it also holds every message acked to it before it reconnected
//! (whatever came live, and what its resync fetched).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::error::LoadError;
use crate::fleet::{Fleet, FleetOptions, Shared, UserLog};
use crate::latency::{Latency, LatencySummary, TimelinePoint};
use crate::ledger::{self, Acked, DeliveryCheck};
use crate::node_http;
use crate::plot::{Chart, Plot};
use crate::progress::Progress;
use crate::relay::Relay;
use crate::schedule::OpenLoop;
use crate::target::{Target, transport_name};
use crate::traffic::{self, Plan};

/// How every connection is made to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropMode {
    /// The clients connect through the tool's loopback relay, which closes every
    /// relayed socket at once (the node sees its connections close too).
    Relay,
    /// The clients connect directly; the node's admin API kicks every user
    /// (`POST /admin/kick/{user}` with this bearer token, all users concurrently).
    Kick {
        /// The node's `[admin] token`.
        token: String,
    },
}

/// What a `storm` run does.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// The node (`admin` is needed for [`DropMode::Kick`]).
    pub target: Target,
    /// Users (one SDK connection each), even: pairs share a dm.
    pub users: u32,
    /// Messages each user sends to its peer before the measured traffic.
    pub history: u32,
    /// Total send rate during the run, msgs/s.
    pub rate: f64,
    /// How long the traffic runs.
    pub duration: Duration,
    /// When, into the traffic, every connection drops.
    pub cut_after: Duration,
    /// How connections are dropped.
    pub drop: DropMode,
    /// Message body size in bytes.
    pub body_size: usize,
    /// The SDK's request timeout (also bounds a send that waits out the reconnect).
    pub request_timeout: Duration,
    /// How long to wait for answers, reconnects and deliveries after the traffic.
    pub settle_timeout: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

impl StormConfig {
    /// A small run: 20 users, 10 history messages each, 100 msgs/s for 4 s, cut at 1 s.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            users: 20,
            history: 10,
            rate: 100.0,
            duration: Duration::from_secs(4),
            cut_after: Duration::from_secs(1),
            drop: DropMode::Relay,
            body_size: 64,
            request_timeout: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(30),
            progress: false,
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.into()));
        if self.users < 2 || !self.users.is_multiple_of(2) {
            return bad("users must be even and at least 2 (users form 1:1 pairs)");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) || self.duration.is_zero() {
            return bad("rate and duration must be positive");
        }
        if self.cut_after >= self.duration {
            return bad("the cut must come before the end of the traffic");
        }
        if matches!(self.drop, DropMode::Kick { .. }) && self.target.admin.is_none() {
            return bad("kicking needs the node's admin address");
        }
        if self.body_size > 4096 {
            return bad("body size must be at most 4096 bytes");
        }
        Ok(())
    }
}

/// The result of a `storm` run.
#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    /// `"storm"`.
    pub scenario: &'static str,
    /// Whether every client came back and nothing acked was lost, duplicated or
    /// reordered.
    pub passed: bool,
    /// The run's tag (in its user and message ids).
    pub tag: String,
    /// Transport used.
    pub transport: &'static str,
    /// `relay` or `kick`.
    pub drop: &'static str,
    /// Users.
    pub users: u32,
    /// History messages per user.
    pub history: u32,
    /// Traffic rate, msgs/s.
    pub rate: f64,
    /// Traffic time, s.
    pub duration_s: f64,
    /// Connections the cut closed (relayed sockets, or sessions the kicks closed).
    pub cut_connections: u64,
    /// Clients that reconnected after the cut.
    pub reconnected: u64,
    /// Cut → reconnected, per client.
    pub reconnect: LatencySummary,
    /// Cut → caught up, per client.
    pub caught_up: LatencySummary,
    /// Cut → the last client reconnected, ms.
    pub all_reconnected_ms: Option<f64>,
    /// Cut → the last client caught up, ms.
    pub all_caught_up_ms: Option<f64>,
    /// `Resynced` events (conversations that had missed messages).
    pub resynced_events: u64,
    /// Messages those resyncs fetched from history.
    pub resync_messages: u64,
    /// Intended send → ack (history messages excluded).
    pub send_to_ack: LatencySummary,
    /// Intended send → first receipt (history messages excluded).
    pub send_to_delivery: LatencySummary,
    /// Deliveries and their faults.
    pub delivery: DeliveryCheck,
    /// Acked messages absent from their conversation's history.
    pub history_missing: u64,
    /// Conversations whose history could not be read in full.
    pub history_errors: u64,
    /// Failed sends by class.
    pub errors: BTreeMap<String, u64>,
    /// Send→delivery p50/p99 per second of intended send time.
    pub delivery_timeline: Vec<TimelinePoint>,
    /// Curves for the SVG plot.
    #[serde(skip)]
    pub plot: Plot,
}

/// Runs `storm`.
pub async fn run(cfg: StormConfig) -> Result<StormReport, LoadError> {
    cfg.validate()?;
    if cfg.target.tls.is_some() {
        return Err(LoadError::Config(
            "--tls-ca is supported by chat and connect; storm runs in the clear".into(),
        ));
    }
    let shared = Shared::new();
    let relay = match cfg.drop {
        DropMode::Relay => Some(
            Relay::start(cfg.target.endpoint())
                .await
                .map_err(|e| LoadError::Setup(format!("relay: {e}")))?,
        ),
        DropMode::Kick { .. } => None,
    };
    let endpoint = relay.as_ref().map_or(cfg.target.endpoint(), Relay::addr);
    let options = FleetOptions {
        endpoint: endpoint.to_string(),
        spread: Vec::new(),
        transport: cfg.target.transport,
        users: cfg.users,
        request_timeout: cfg.request_timeout,
        concurrency: 64,
        tls: Default::default(),
    };
    let fleet = Fleet::connect(&shared, &options).await?;
    let plan = Arc::new(Plan::new(&shared, cfg.users, 0, 0.0, cfg.body_size));
    let progress = Progress::start(
        "storm",
        cfg.progress,
        progress_line(shared.clone(), cfg.users),
    );
    traffic::closed_loop_history(&shared, &plan, &fleet, cfg.history).await;

    let schedule = OpenLoop::for_duration(cfg.rate, cfg.duration);
    let offset_us = shared.now_us();
    let cut_at = offset_us + u64::try_from(cfg.cut_after.as_micros()).unwrap_or(u64::MAX);
    let send = traffic::open_loop(
        &shared,
        &plan,
        &fleet,
        schedule,
        offset_us,
        cfg.history,
        100_000,
    );
    let cut = async {
        tokio::time::sleep_until(shared.at(cut_at)).await;
        let cut_us = shared.now_us();
        let closed = match (&cfg.drop, &relay, cfg.target.admin) {
            (DropMode::Relay, Some(relay), _) => {
                let open = relay.open();
                relay.cut();
                open
            }
            (DropMode::Kick { token }, _, Some(admin)) => {
                kick_all(&shared, cfg.users, admin, token).await
            }
            _ => 0,
        };
        if cfg.progress {
            eprintln!("[storm] cut {closed} connections");
        }
        (cut_us, closed)
    };
    let ((), (cut_us, cut_connections)) = tokio::join!(send, cut);

    traffic::wait_for_answers(&shared, cfg.settle_timeout).await;
    wait_until_all_back(&fleet, &shared, cut_us, cfg.settle_timeout).await;
    traffic::settle(&shared, &plan, &fleet, cfg.settle_timeout).await;
    let acks = shared.record(|r| r.acks.clone());
    let (history_missing, history_errors) = check_history(&shared, &fleet, &plan, &acks).await;
    progress.stop().await;
    let logs = fleet.close().await;
    drop(relay);

    let recovery = Recovery::compute(&logs, &acks, &plan, cut_us);
    let inboxes: Vec<_> = logs.into_iter().map(|l| l.inbox).collect();
    let sent = shared.stats.sent.load(Ordering::Relaxed);
    let failed = shared.stats.failed.load(Ordering::Relaxed);
    let delivery = DeliveryCheck::compute(sent, failed, &acks, &inboxes, |d| plan.members(d));
    let transport = transport_name(cfg.target.transport);
    let drop_name = match cfg.drop {
        DropMode::Relay => "relay",
        DropMode::Kick { .. } => "kick",
    };
    Ok(shared.record(|r| StormReport {
        scenario: "storm",
        passed: delivery.passed()
            && history_missing == 0
            && history_errors == 0
            && recovery.reconnected == u64::from(cfg.users),
        tag: shared.tag.clone(),
        transport,
        drop: drop_name,
        users: cfg.users,
        history: cfg.history,
        rate: cfg.rate,
        duration_s: cfg.duration.as_secs_f64(),
        cut_connections,
        reconnected: recovery.reconnected,
        reconnect: recovery.reconnect.summary(),
        caught_up: recovery.caught_up.summary(),
        all_reconnected_ms: recovery.all_reconnected_us.map(|us| us as f64 / 1000.0),
        all_caught_up_ms: recovery.all_caught_up_us.map(|us| us as f64 / 1000.0),
        resynced_events: recovery.resynced_events,
        resync_messages: recovery.resync_messages,
        send_to_ack: r.ack.summary(),
        send_to_delivery: r.delivery.summary(),
        delivery,
        history_missing,
        history_errors,
        errors: r.errors.clone(),
        delivery_timeline: r.delivery_timeline.points(),
        plot: Plot {
            title: format!(
                "storm: {} users, {transport}, all connections dropped at {:.1} s",
                cfg.users,
                cfg.cut_after.as_secs_f64()
            ),
            charts: vec![
                Chart::distribution(vec![
                    r.ack.curve("send→ack"),
                    r.delivery.curve("send→delivery"),
                    recovery.reconnect.curve("cut→reconnected"),
                    recovery.caught_up.curve("cut→caught up"),
                ]),
                Chart::timeline(
                    r.ack_timeline
                        .series("send→ack")
                        .into_iter()
                        .chain(r.delivery_timeline.series("send→delivery"))
                        .collect(),
                ),
            ],
        },
    }))
}

/// Kicks in flight at once: each is an HTTP connection, in the tool and in the node,
/// beside one connection per client, and both processes' descriptors are limited.
const KICKS_IN_FLIGHT: usize = 64;

/// Kicks every user through the admin API; returns the sessions closed.
async fn kick_all(shared: &Shared, users: u32, admin: std::net::SocketAddr, token: &str) -> u64 {
    let mut kicks = JoinSet::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(KICKS_IN_FLIGHT));
    for i in 0..users {
        let path = format!("/admin/kick/{}", shared.user_id(i));
        let token = token.to_string();
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        kicks.spawn(async move {
            let _permit = permit;
            match node_http::request(admin, "POST", &path, Some(&token)).await {
                Ok(r) if r.status == 200 => serde_json::from_str::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("closed")?.as_u64())
                    .unwrap_or(1),
                _ => 0,
            }
        });
    }
    let mut closed = 0;
    while let Some(joined) = kicks.join_next().await {
        closed += joined.unwrap_or(0);
    }
    closed
}

/// Waits until every client has connected again after `cut_us`, for at most `limit`.
async fn wait_until_all_back(fleet: &Fleet, shared: &Shared, cut_us: u64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let users = fleet.clients.len() as u64;
    // The online count alone could still be the one from before the cut for a client
    // whose drop has not been noticed yet; a little time since the cut rules that out.
    let min_wait = shared.at(cut_us) + Duration::from_millis(200);
    tokio::time::sleep_until(min_wait).await;
    while shared.stats.online.load(Ordering::Relaxed) < users
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads each dm's whole history (through its first member) and counts the acked
/// messages it lacks, and the conversations that could not be read.
async fn check_history(shared: &Shared, fleet: &Fleet, plan: &Plan, acks: &[Acked]) -> (u64, u64) {
    let mut by_conv: HashMap<&str, HashMap<u64, String>> = HashMap::new();
    let mut reader_of: HashMap<&str, u32> = HashMap::new();
    for ack in acks {
        let owner = plan.members(ack.dest).first().copied().unwrap_or(0);
        reader_of.entry(ack.conv.as_str()).or_insert(owner);
        by_conv
            .entry(ack.conv.as_str())
            .or_default()
            .insert(ack.seq, ledger::message_id(&shared.tag, ack.key));
    }
    let (mut missing, mut errors) = (0u64, 0u64);
    for (conv, wanted) in by_conv {
        let Some(client) = reader_of
            .get(conv)
            .and_then(|&u| fleet.clients.get(u as usize))
        else {
            errors += 1;
            continue;
        };
        let mut stored: HashMap<u64, String> = HashMap::new();
        let mut after = 0;
        // Bounded: enough pages for every acked message, with room for unacked ones.
        let max_pages = wanted.len() / 200 + 10;
        let mut complete = false;
        for _ in 0..max_pages {
            match client.history(conv, Some(after), None, Some(200)).await {
                Ok(page) => {
                    for m in &page.messages {
                        after = after.max(m.seq);
                        stored.insert(m.seq, m.id.clone());
                    }
                    if !page.more || page.messages.is_empty() {
                        complete = true;
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if !complete {
            errors += 1;
        }
        missing += wanted
            .iter()
            .filter(|(seq, id)| stored.get(seq) != Some(id))
            .count() as u64;
    }
    (missing, errors)
}

/// Reconnect and catch-up times per client.
#[derive(Debug, Default)]
struct Recovery {
    reconnected: u64,
    reconnect: Latency,
    caught_up: Latency,
    all_reconnected_us: Option<u64>,
    all_caught_up_us: Option<u64>,
    resynced_events: u64,
    resync_messages: u64,
}

impl Recovery {
    fn compute(logs: &[UserLog], acks: &[Acked], plan: &Plan, cut_us: u64) -> Self {
        let mut to_user: HashMap<u32, Vec<&Acked>> = HashMap::new();
        for ack in acks {
            for &m in plan.members(ack.dest) {
                if m != ack.key.sender {
                    to_user.entry(m).or_default().push(ack);
                }
            }
        }
        let mut r = Self::default();
        for (user, log) in logs.iter().enumerate() {
            r.resynced_events += log.conn.resynced;
            r.resync_messages += log.conn.resync_messages;
            let Some(&back) = log.conn.connected_us.iter().find(|&&t| t >= cut_us) else {
                continue;
            };
            r.reconnected += 1;
            let caught_up = to_user
                .get(&(user as u32))
                .into_iter()
                .flatten()
                .filter(|a| a.at_us <= back)
                .filter_map(|a| log.inbox.seen.get(&a.key).map(|s| s.first_us))
                .fold(back, u64::max);
            let (back, caught_up) = (back - cut_us, caught_up - cut_us);
            r.reconnect.record(back);
            r.caught_up.record(caught_up);
            r.all_reconnected_us = r.all_reconnected_us.max(Some(back));
            r.all_caught_up_us = r.all_caught_up_us.max(Some(caught_up));
        }
        r
    }
}

/// The progress line: traffic and how many clients are online.
fn progress_line(
    shared: Arc<Shared>,
    users: u32,
) -> impl FnMut(Duration) -> String + Send + 'static {
    move |_| {
        let s = &shared.stats;
        format!(
            "online {}/{users} sent {} acked {} in-flight {} failed {} delivered {} dup {}",
            s.online.load(Ordering::Relaxed),
            s.sent.load(Ordering::Relaxed),
            s.acked.load(Ordering::Relaxed),
            s.in_flight(),
            s.failed.load(Ordering::Relaxed),
            s.delivered.load(Ordering::Relaxed),
            s.duplicates.load(Ordering::Relaxed),
        )
    }
}
