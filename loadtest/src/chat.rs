//! `chat`: users in 1:1 pairs (and optionally groups) send at a target total rate for
//! a duration, open-loop, and every acked message is checked to reach every other
//! member of its conversation exactly once, in seq order.
//!
//! 1. Connect `users` SDK clients; create the groups.
//! 2. Send `rate × duration` messages on the open-loop schedule; latency is measured
//!    from each message's intended send time (send→ack at the sender, send→delivery
//!    at every receiver).
//! 3. Wait for every answer, then for every owed delivery (bounded).
//! 4. Close, compare acks with inboxes, report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::error::LoadError;
use crate::fleet::{Fleet, FleetOptions, Shared};
use crate::latency::{LatencySummary, TimelinePoint};
use crate::ledger::DeliveryCheck;
use crate::plot::{Chart, Plot};
use crate::progress::Progress;
use crate::schedule::OpenLoop;
use crate::target::{Target, transport_name};
use crate::traffic::{self, Plan};

/// What a `chat` run does.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The node.
    pub target: Target,
    /// Users (one SDK connection each); even: users `2j` and `2j+1` are a pair.
    pub users: u32,
    /// Members per group; 0 for 1:1 only. Users `[jG, (j+1)G)` form group `j`.
    pub group_size: u32,
    /// Share of a grouped user's sends that go to its group (the rest to its pair).
    pub group_fraction: f64,
    /// Target total send rate, messages per second.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Message body size in bytes.
    pub body_size: usize,
    /// The SDK's request timeout: a send unanswered for this long fails.
    pub request_timeout: Duration,
    /// Sends awaiting their answer at most; past it the schedule falls behind (and
    /// latency, measured from the schedule, shows it).
    pub max_in_flight: usize,
    /// How long to wait for answers, and then for deliveries, after the last send.
    pub settle_timeout: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Client endpoints of other nodes: users are spread over the target and
    /// these, round-robin (empty: every user on the target).
    pub spread: Vec<String>,
}

impl ChatConfig {
    /// A small run against `target`: 10 users, 100 msgs/s for 5 s.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            users: 10,
            group_size: 0,
            group_fraction: 0.5,
            rate: 100.0,
            duration: Duration::from_secs(5),
            body_size: 64,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 100_000,
            settle_timeout: Duration::from_secs(30),
            progress: false,
            spread: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.into()));
        if self.users < 2 || !self.users.is_multiple_of(2) {
            return bad("users must be even and at least 2 (users form 1:1 pairs)");
        }
        if self.group_size == 1 || self.group_size > self.users {
            return bad("group size must be 0 (no groups) or between 2 and the number of users");
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return bad("rate must be positive");
        }
        if self.duration.is_zero() {
            return bad("duration must be positive");
        }
        if !(0.0..=1.0).contains(&self.group_fraction) {
            return bad("group fraction must lie between 0 and 1");
        }
        if self.body_size > 4096 {
            return bad("body size must be at most 4096 bytes (the protocol's default limit)");
        }
        Ok(())
    }
}

/// The result of a `chat` run.
#[derive(Debug, Clone, Serialize)]
pub struct ChatReport {
    /// `"chat"`.
    pub scenario: &'static str,
    /// Whether the delivery check passed.
    pub passed: bool,
    /// The run's tag (in its user and message ids).
    pub tag: String,
    /// Transport used.
    pub transport: &'static str,
    /// Users.
    pub users: u32,
    /// Members per group (0: none).
    pub group_size: u32,
    /// Conversations loaded (dms + groups).
    pub conversations: usize,
    /// Target total rate, msgs/s.
    pub target_rate: f64,
    /// Sending time, s.
    pub duration_s: f64,
    /// Sent messages over the sending time: the rate offered.
    pub offered_per_s: f64,
    /// Acked messages over the time from the first intended send to the last ack:
    /// the rate the node sustained.
    pub acked_per_s: f64,
    /// Seconds from the first intended send to the last ack.
    pub ack_window_s: f64,
    /// Intended send → ack, at the sender.
    pub send_to_ack: LatencySummary,
    /// Intended send → first receipt, over every receiver.
    pub send_to_delivery: LatencySummary,
    /// Deliveries and their faults.
    pub delivery: DeliveryCheck,
    /// Failed sends by class.
    pub errors: BTreeMap<String, u64>,
    /// Send→ack p50/p99 per second of intended send time.
    pub ack_timeline: Vec<TimelinePoint>,
    /// Send→delivery p50/p99 per second of intended send time.
    pub delivery_timeline: Vec<TimelinePoint>,
    /// Curves for the SVG plot.
    #[serde(skip)]
    pub plot: Plot,
}

/// Runs `chat`.
pub async fn run(cfg: ChatConfig) -> Result<ChatReport, LoadError> {
    cfg.validate()?;
    let shared = Shared::new();
    let options = FleetOptions {
        endpoint: cfg.target.client_endpoint(),
        spread: cfg.spread.clone(),
        transport: cfg.target.transport,
        users: cfg.users,
        request_timeout: cfg.request_timeout,
        concurrency: 64,
        tls: cfg
            .target
            .tls
            .as_ref()
            .map_or_else(Default::default, |t| t.roots()),
    };
    let fleet = Fleet::connect(&shared, &options).await?;
    let plan = Arc::new(Plan::new(
        &shared,
        cfg.users,
        cfg.group_size,
        cfg.group_fraction,
        cfg.body_size,
    ));
    if let Err(e) = plan.create_groups(&shared, &fleet).await {
        fleet.close().await;
        return Err(e);
    }

    let schedule = OpenLoop::for_duration(cfg.rate, cfg.duration);
    let offset_us = shared.now_us();
    let progress = Progress::start("chat", cfg.progress, progress_line(shared.clone()));
    traffic::open_loop(
        &shared,
        &plan,
        &fleet,
        schedule,
        offset_us,
        0,
        cfg.max_in_flight,
    )
    .await;
    traffic::wait_for_answers(&shared, cfg.settle_timeout).await;
    traffic::settle(&shared, &plan, &fleet, cfg.settle_timeout).await;
    progress.stop().await;
    let logs = fleet.close().await;

    let inboxes: Vec<_> = logs.into_iter().map(|l| l.inbox).collect();
    let stats = &shared.stats;
    let sent = stats.sent.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    shared.record(|r| {
        let delivery = DeliveryCheck::compute(sent, failed, &r.acks, &inboxes, |d| plan.members(d));
        let last_ack = r.acks.iter().map(|a| a.at_us).max().unwrap_or(offset_us);
        let ack_window_s =
            (last_ack.saturating_sub(offset_us) as f64 / 1e6).max(cfg.duration.as_secs_f64());
        let plot = Plot {
            title: format!(
                "chat: {} users, {} msgs/s target, {}",
                cfg.users,
                cfg.rate,
                transport_name(cfg.target.transport)
            ),
            charts: vec![
                Chart::distribution(vec![
                    r.ack.curve("send→ack"),
                    r.delivery.curve("send→delivery"),
                ]),
                Chart::timeline(
                    r.ack_timeline
                        .series("send→ack")
                        .into_iter()
                        .chain(r.delivery_timeline.series("send→delivery"))
                        .collect(),
                ),
            ],
        };
        Ok(ChatReport {
            scenario: "chat",
            passed: delivery.passed(),
            tag: shared.tag.clone(),
            transport: transport_name(cfg.target.transport),
            users: cfg.users,
            group_size: cfg.group_size,
            conversations: plan.dests.len(),
            target_rate: cfg.rate,
            duration_s: cfg.duration.as_secs_f64(),
            offered_per_s: sent as f64 / cfg.duration.as_secs_f64(),
            acked_per_s: delivery.acked as f64 / ack_window_s,
            ack_window_s,
            send_to_ack: r.ack.summary(),
            send_to_delivery: r.delivery.summary(),
            delivery,
            errors: r.errors.clone(),
            ack_timeline: r.ack_timeline.points(),
            delivery_timeline: r.delivery_timeline.points(),
            plot,
        })
    })
}

/// The progress line: counts and rates over the last second.
fn progress_line(shared: Arc<Shared>) -> impl FnMut(Duration) -> String + Send + 'static {
    let mut last = (0u64, 0u64);
    move |_| {
        let s = &shared.stats;
        let (sent, acked) = (
            s.sent.load(Ordering::Relaxed),
            s.acked.load(Ordering::Relaxed),
        );
        let line = format!(
            "sent {sent} (+{}/s) acked {acked} (+{}/s) in-flight {} failed {} delivered {} dup {}",
            sent.saturating_sub(last.0),
            acked.saturating_sub(last.1),
            s.in_flight(),
            s.failed.load(Ordering::Relaxed),
            s.delivered.load(Ordering::Relaxed),
            s.duplicates.load(Ordering::Relaxed),
        );
        last = (sent, acked);
        line
    }
}
