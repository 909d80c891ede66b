//! Live rooms: danmaku bursts to many viewers (docs/protocol.md §7.9).
//!
//! ```text
//! Session ──danmaku──► LiveRoom (one per room, sharded)
//!                         │ window closes at max_batch items or window_ms
//!                         │ budget: paid/system kept, vip preferred, normal sampled
//!                         ▼ one batch per node
//!                      RoomFanout (one per room per node) ──same bytes──► viewer lanes
//! ```
//!
//! The LiveRoom sequences accepted items (room-local `seq`, from 1 for each
//! incarnation of the room), closes batching windows, applies the per-room
//! delivery budget, keeps the ring of recent items and the viewer count per node.
//! A RoomFanout holds one node's viewers of one room and pushes every batch — one
//! `Arc`, encoded at most once per encoding — onto each viewer's live lane, which
//! drops the viewer's oldest ordinary batches when it falls behind (see
//! [`SessionHandle::push_live`]). Nothing here waits on a viewer.
//!
//! - [`slow`]: slow mode, the room's per-user gate on danmaku, and how operators
//!   set it.
//! - `settings`: a starting room's load of its operator settings from the store,
//!   bounded in time and retried in the background.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use chorus_store::RoomSettings;
use chorus_wire::cluster::EntityEnvelope;
use chorus_wire::fit;
use chorus_wire::ids::validate_id;
use chorus_wire::{ConvId, ErrorCode, LiveItem, Prio, ServerFrame};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::outbound::{LiveEntry, OutFrame, SessionHandle, SessionId, SharedFrame};
use crate::region::entity::Entity;
use crate::region::lifecycle::{self, Life, Lifecycle, Stage};
use crate::region::registry::{Admission, Delivery, EntityMessage};
use crate::region::{EntityKind, ShardRegion, bad_key};
use crate::remote::{SessionRef, UNREACHABLE};
use crate::settings::Settings;

mod settings;
pub mod slow;

pub use crate::settings::LiveSettings;
pub use slow::{SlowMode, set_slow_mode};

/// How often a RoomFanout reports its viewer count to its room (the cluster-wide
/// count is at most this stale).
const COUNT_REPORT: Duration = Duration::from_secs(1);

/// Messages to a LiveRoom entity. Those that may cross nodes have an
/// `EntityEnvelope::Live*` twin; the housekeeping ones stay on the room's node.
#[derive(Debug)]
pub enum LiveRoomMsg {
    /// An item to accept (its `seq` is assigned here); the sender gets `ack`, or
    /// `reject` `rate_limited` while slow mode holds the user back.
    Danmaku {
        /// The item, `seq` 0.
        item: LiveItem,
        /// The sending session.
        reply: SessionRef,
    },
    /// A viewer joined on `node`, already added to that node's fanout.
    Join {
        /// The request's `ref`.
        reference: String,
        /// The viewer.
        viewer: SessionRef,
        /// The viewer's node.
        node: String,
        /// False when the session already watched the room: answered, not counted.
        new_viewer: bool,
    },
    /// A viewer left (`reply` gets `ok` when it asked).
    Leave {
        /// The request's `ref`, if the client asked.
        reference: Option<String>,
        /// Who asks for the answer.
        reply: Option<SessionRef>,
        /// The viewer's node.
        node: String,
    },
    /// A node's fanout's authoritative count of its viewers.
    ViewerCount {
        /// The fanout's node.
        node: String,
        /// Its viewers.
        count: u64,
    },
    /// The window of generation `u64` is due (sent by the room to itself).
    Flush(u64),
    /// Idle ticks, passivation (under pressure only without viewers), hand-off
    /// (the shard moved: send what is pending, then stop) and failure hooks:
    /// see `region::lifecycle`.
    Lifecycle(Lifecycle),
    /// An operator set the room's slow mode, already stored: seconds (0: off),
    /// or `None` to follow `[live] slow_mode_s`. Crosses nodes.
    SlowMode {
        /// The operator's setting.
        seconds: Option<u32>,
    },
    /// The room's settings, loaded by the retry task after the load at start
    /// failed. Ignored once an operator's [`LiveRoomMsg::SlowMode`] came first.
    /// Local only.
    SettingsLoaded(RoomSettings),
}

impl ractor::Message for LiveRoomMsg {}

impl ShardRegion {
    /// Sends to the LiveRoom entity of `room` (a `ConvId::Live`), spawning it if needed.
    pub fn tell_live_room(&self, room: &ConvId, msg: LiveRoomMsg) {
        if let ConvId::Live(id) = room {
            self.route::<LiveRoom>(id, msg, 0, true);
        }
    }

    /// This node's live-room fanouts.
    pub fn fanouts(&self) -> &LiveFanouts {
        self.shared::<LiveRoom>()
    }

    /// Hands a live batch to `node`'s fanout of `room`; false if it has none
    /// (or the node is unreachable).
    pub(crate) fn live_batch(
        &self,
        node: &str,
        room: &str,
        frame: &SharedFrame,
        weight: u64,
        ordinary: bool,
    ) -> bool {
        if node == self.settings().node_id {
            return self.fanouts().batch(room, frame.clone(), weight, ordinary);
        }
        self.link().send(
            node,
            &chorus_wire::cluster::Envelope::LiveBatch {
                room: room.to_string(),
                frame: chorus_wire::cluster::NestedFrame(frame.frame().clone()),
                weight,
                ordinary,
            },
        )
    }
}

impl Entity for LiveRoom {
    const KIND: EntityKind = EntityKind::LiveRoom;
    /// The room id, without `live:`.
    type Key = String;
    type Shared = LiveFanouts;

    fn actor() -> Self {
        LiveRoom
    }

    fn shard_key(room: &String) -> String {
        format!("live:{room}")
    }

    fn arguments(region: &ShardRegion, room: &String) -> LiveRoomArgs {
        LiveRoomArgs {
            room: room.clone(),
            region: region.clone(),
        }
    }

    fn cap(settings: &Settings) -> usize {
        settings.max_live_rooms
    }

    /// This node's fanouts: the viewers of each room here.
    fn shared(_: &Settings) -> LiveFanouts {
        LiveFanouts::default()
    }

    /// A room starts for what a viewer or a sender asks: a zero count or a
    /// leave for a room that does not run here has nobody to tell (a leave
    /// with a `ref` is answered `ok`).
    fn deliver(region: &ShardRegion, room: &String, msg: LiveRoomMsg) {
        let spawn = || region.spawn::<LiveRoom>(room);
        let admit = |msg: LiveRoomMsg| match msg {
            LiveRoomMsg::ViewerCount { count: 0, .. } | LiveRoomMsg::Leave { .. } => {
                Admission::Refuse(msg, ())
            }
            msg => Admission::Spawn(msg),
        };
        if let Delivery::Refused(
            LiveRoomMsg::Leave {
                reference: Some(reference),
                reply: Some(reply),
                ..
            },
            (),
        ) = region
            .registry::<LiveRoom>()
            .deliver(&Self::shard_key(room), spawn, admit, msg)
        {
            reply.send(ServerFrame::Ok { reference });
        }
    }

    /// The viewer's and sender's messages become `Live*` envelopes; the room's
    /// own stay here.
    fn forward(region: &ShardRegion, node: &Arc<str>, room: &String, msg: LiveRoomMsg, hops: u8) {
        let room = room.clone();
        match msg {
            LiveRoomMsg::Danmaku { item, reply } => {
                let id = item.id.clone();
                let envelope = EntityEnvelope::LiveDanmaku {
                    room,
                    item,
                    reply: reply.addr(region.link()),
                };
                if !region.link().send_entity(node, hops, envelope) {
                    reply.reject(&id, ErrorCode::Internal, UNREACHABLE, None);
                }
            }
            LiveRoomMsg::Join {
                reference,
                viewer,
                new_viewer,
                ..
            } => {
                let envelope = EntityEnvelope::LiveJoin {
                    room,
                    reference: reference.clone(),
                    viewer: viewer.addr(region.link()),
                    new_viewer,
                };
                if !region.link().send_entity(node, hops, envelope) {
                    viewer.send(ServerFrame::Error {
                        reference: Some(reference),
                        code: ErrorCode::Internal,
                        message: UNREACHABLE.into(),
                    });
                }
            }
            LiveRoomMsg::Leave {
                reference,
                reply,
                node: viewer_node,
            } => {
                let envelope = EntityEnvelope::LiveLeave {
                    room,
                    reference,
                    reply: reply.map(|r| r.addr(region.link())),
                    node: viewer_node,
                };
                region.link().send_entity(node, hops, envelope);
            }
            LiveRoomMsg::ViewerCount {
                node: viewer_node,
                count,
            } => {
                let envelope = EntityEnvelope::LiveViewers {
                    room,
                    node: viewer_node,
                    count,
                };
                region.link().send_entity(node, hops, envelope);
            }
            LiveRoomMsg::SlowMode { seconds } => {
                // Already stored: should the owner be unreachable, the room reads it
                // when it next starts.
                region.link().send_entity(
                    node,
                    hops,
                    EntityEnvelope::LiveSlowMode { room, seconds },
                );
            }
            LiveRoomMsg::Flush(_) | LiveRoomMsg::Lifecycle(_) | LiveRoomMsg::SettingsLoaded(_) => {}
        }
    }

    /// The `Live*` envelopes back into messages.
    fn receive(
        region: &ShardRegion,
        from: &str,
        hops: u8,
        msg: EntityEnvelope,
    ) -> Result<(), EntityEnvelope> {
        match msg {
            EntityEnvelope::LiveJoin {
                room,
                reference,
                viewer,
                new_viewer,
            } => {
                let node = viewer.node.clone();
                if let Some(viewer) = region.session_ref(viewer) {
                    let msg = LiveRoomMsg::Join {
                        reference,
                        viewer,
                        node,
                        new_viewer,
                    };
                    region.route::<LiveRoom>(&room, msg, hops, true);
                }
            }
            EntityEnvelope::LiveLeave {
                room,
                reference,
                reply,
                node,
            } => {
                let reply = reply.and_then(|r| region.session_ref(r));
                let msg = LiveRoomMsg::Leave {
                    reference,
                    reply,
                    node,
                };
                region.route::<LiveRoom>(&room, msg, hops, true);
            }
            EntityEnvelope::LiveViewers { room, node, count } => {
                region.route::<LiveRoom>(
                    &room,
                    LiveRoomMsg::ViewerCount { node, count },
                    hops,
                    true,
                );
            }
            EntityEnvelope::LiveDanmaku { room, item, reply } => {
                if let Some(reply) = region.session_ref(reply) {
                    region.route::<LiveRoom>(
                        &room,
                        LiveRoomMsg::Danmaku { item, reply },
                        hops,
                        true,
                    );
                }
            }
            EntityEnvelope::LiveSlowMode { room, seconds } => {
                if validate_id("room id", &room).is_err() {
                    {
                        bad_key(from, &room);
                        return Ok(());
                    }
                }
                region.route::<LiveRoom>(&room, LiveRoomMsg::SlowMode { seconds }, hops, true);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

impl EntityMessage for LiveRoomMsg {
    fn counted(&self) -> bool {
        !matches!(self, Self::Flush(_) | Self::Lifecycle(_))
    }

    fn lifecycle(msg: Lifecycle) -> Self {
        Self::Lifecycle(msg)
    }
}

/// Messages to a RoomFanout.
#[derive(Debug)]
pub enum FanoutMsg {
    /// A viewer on this node.
    Add(SessionHandle),
    /// A viewer left.
    Remove(SessionId),
    /// A batch for every viewer here.
    Batch {
        /// The `live_batch`, shared.
        frame: SharedFrame,
        /// Items plus the batch's `dropped`.
        weight: u64,
        /// False when it carries `paid`/`system` items.
        ordinary: bool,
    },
    /// Periodic count report and idle check.
    Tick,
    /// Last message after retiring from the registry.
    Stop,
}

impl ractor::Message for FanoutMsg {}

/// The LiveRoom actor.
#[derive(Debug)]
pub struct LiveRoom;

/// How a LiveRoom starts.
#[derive(Debug)]
pub struct LiveRoomArgs {
    /// Room id (without `live:`).
    pub room: String,
    /// The region.
    pub region: ShardRegion,
}

struct NodeViewers {
    count: u64,
}

/// A LiveRoom's state.
pub struct LiveRoomState {
    room: String,
    key: String,
    region: ShardRegion,
    settings: LiveSettings,
    next_seq: u64,
    pending: Vec<LiveItem>,
    /// Generation of the open window; a `Flush` for an older one is ignored.
    generation: u64,
    window_open: bool,
    /// The delivery budget's tokens (items), refilled at `budget_per_s`.
    tokens: f64,
    tokens_at: Instant,
    recent: VecDeque<LiveItem>,
    nodes: HashMap<String, NodeViewers>,
    last_activity: Instant,
    /// The per-user gate on danmaku.
    slow: SlowMode,
    /// Retries loading the room's settings after the load at start failed; `None`
    /// once they are known. Dropping it stops the retries.
    settings_retry: Option<crate::Ticker>,
    stage: Stage,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Life for LiveRoomState {
    type Msg = LiveRoomMsg;
    const KIND: EntityKind = EntityKind::LiveRoom;

    fn parts(&mut self) -> (&mut Stage, &ShardRegion, &str) {
        (&mut self.stage, &self.region, &self.key)
    }

    /// No viewer, and nothing but ticks for `conversation_idle`.
    fn is_idle(&mut self) -> bool {
        self.viewers() == 0
            && self.last_activity.elapsed() >= self.region.settings().conversation_idle
    }

    /// Viewers would lose the room's recent items and slow mode.
    fn may_leave(&self) -> bool {
        self.viewers() == 0
    }

    /// What is pending goes out first.
    fn before_stop(&mut self) {
        if !self.pending.is_empty() {
            self.close_window();
        }
    }
}

impl Actor for LiveRoom {
    type Msg = LiveRoomMsg;
    type State = LiveRoomState;
    type Arguments = LiveRoomArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let settings = args.region.settings().live.clone();
        let idle = args.region.settings().conversation_idle;
        let ticker = crate::spawn_ticker(
            myself.clone(),
            (idle / 2).max(Duration::from_millis(50)),
            || LiveRoomMsg::Lifecycle(Lifecycle::tick()),
        );
        // Messages queue meanwhile; a store that does not answer in time leaves
        // the room on the configured defaults until a retry gets through.
        let (stored, settings_retry) = match settings::load(&args.region, &args.room).await {
            Ok(stored) => (stored, None),
            Err(why) => {
                tracing::warn!(room = %args.room, error = %why, "cannot load the live room's settings; using the configured defaults and retrying");
                let retry = settings::retry(args.region.clone(), args.room.clone());
                (RoomSettings::default(), Some(retry))
            }
        };
        let slow = SlowMode::new(slow::interval(stored.slow_mode_s, settings.slow_mode));
        Ok(LiveRoomState {
            key: format!("live:{}", args.room),
            room: args.room,
            region: args.region,
            tokens: f64::from(settings.budget_per_s),
            tokens_at: Instant::now(),
            settings,
            next_seq: 1,
            pending: Vec::new(),
            generation: 0,
            window_open: false,
            recent: VecDeque::new(),
            nodes: HashMap::new(),
            last_activity: Instant::now(),
            slow,
            settings_retry,
            stage: Stage::default(),
            _ticker: ticker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if msg.counted() {
            state.stage.count();
        }
        if !matches!(msg, LiveRoomMsg::Lifecycle(l) if l.is_tick()) {
            state.last_activity = Instant::now();
        }
        match msg {
            LiveRoomMsg::Danmaku { mut item, reply } => {
                if let Err(wait) = state.slow.check(&item.from, item.prio) {
                    metrics::counter!("chorus_live_slow_mode_rejects_total").increment(1);
                    let message = format!(
                        "slow mode: one danmaku per {} s in this room",
                        state.slow.interval().as_secs()
                    );
                    let retry = slow::retry_after_ms(wait);
                    reply.reject(&item.id, ErrorCode::RateLimited, message, Some(retry));
                    return Ok(());
                }
                item.seq = state.next_seq;
                state.next_seq += 1;
                metrics::counter!("chorus_live_items_accepted_total").increment(1);
                reply.send(ServerFrame::Ack {
                    id: item.id.clone(),
                    conv: state.key.clone(),
                    seq: item.seq,
                    ts_ms: item.ts_ms,
                });
                state.pending.push(item);
                if state.pending.len() >= state.settings.max_batch {
                    state.close_window();
                } else if !state.window_open {
                    state.window_open = true;
                    let generation = state.generation;
                    let me = myself.clone();
                    let window = state.settings.window;
                    tokio::spawn(async move {
                        tokio::time::sleep(window).await;
                        let _ = me.send_message(LiveRoomMsg::Flush(generation));
                    });
                }
            }
            LiveRoomMsg::Flush(generation) => {
                if generation == state.generation && state.window_open {
                    state.close_window();
                }
            }
            LiveRoomMsg::Join {
                reference,
                viewer,
                node,
                new_viewer,
            } => {
                state
                    .nodes
                    .entry(node)
                    .or_insert(NodeViewers { count: 0 })
                    .count += u64::from(new_viewer);
                viewer.send(fit::live_joined(
                    reference,
                    state.room.clone(),
                    state.viewers(),
                    state.recent.iter().cloned().collect(),
                    state.region.settings().max_frame,
                ));
            }
            LiveRoomMsg::Leave {
                reference,
                reply,
                node,
            } => {
                if let Some(n) = state.nodes.get_mut(&node) {
                    n.count = n.count.saturating_sub(1);
                }
                if let (Some(reference), Some(reply)) = (reference, reply) {
                    reply.send(ServerFrame::Ok { reference });
                }
            }
            LiveRoomMsg::ViewerCount { node, count } => {
                if count == 0 {
                    state.nodes.remove(&node);
                } else {
                    state.nodes.insert(node, NodeViewers { count });
                }
            }
            LiveRoomMsg::Lifecycle(msg) => lifecycle::on_lifecycle(state, msg)?,
            LiveRoomMsg::SlowMode { seconds } => {
                // The operator's word is newer than whatever a retry may still bring.
                state.settings_retry = None;
                state.set_slow_mode(seconds);
            }
            LiveRoomMsg::SettingsLoaded(stored) => {
                if state.settings_retry.take().is_some() {
                    state.set_slow_mode(stored.slow_mode_s);
                }
            }
        }
        lifecycle::settle(state, &myself);
        Ok(())
    }
}

impl LiveRoomState {
    /// Sends what is pending, leaves the registry and stops, unless something
    /// is queued for it.
    fn viewers(&self) -> u64 {
        self.nodes.values().map(|n| n.count).sum()
    }

    /// Applies an operator's slow-mode setting (`None`: the configured default).
    fn set_slow_mode(&mut self, seconds: Option<u32>) {
        let interval = slow::interval(seconds, self.settings.slow_mode);
        if interval != self.slow.interval() {
            tracing::info!(room = %self.room, slow_mode_s = interval.as_secs(), "slow mode changed");
        }
        self.slow.set_interval(interval);
    }

    /// Closes the window: applies the budget and sends one batch per node.
    fn close_window(&mut self) {
        self.generation += 1;
        self.window_open = false;
        let items = std::mem::take(&mut self.pending);
        if items.is_empty() {
            return;
        }
        let budget = f64::from(self.settings.budget_per_s.max(1));
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.tokens_at).as_secs_f64() * budget).min(budget);
        self.tokens_at = now;
        let total = items.len();
        let kept = select_within_budget(items, self.tokens.floor().max(0.0) as usize);
        self.tokens -= kept.len() as f64;
        let dropped = (total - kept.len()) as u64;
        if dropped > 0 {
            metrics::counter!("chorus_live_items_dropped_total").increment(dropped);
        }
        for item in &kept {
            if self.settings.recent > 0 {
                if self.recent.len() == self.settings.recent {
                    self.recent.pop_front();
                }
                self.recent.push_back(item.clone());
            }
        }
        // A window of long items is more than one frame: it goes out as several
        // batches, `dropped` on the first.
        let (frames, oversized) = fit::live_batches(
            &self.room,
            kept,
            self.viewers(),
            dropped,
            self.region.settings().max_frame,
        );
        if oversized > 0 {
            // Impossible while limits.max_frame holds a body of limits.max_body
            // (the config checks it); counted rather than sent over the limit.
            metrics::counter!("chorus_live_items_oversized_total").increment(oversized as u64);
            tracing::error!(room = %self.room, oversized, "live items larger than a frame were not sent");
        }
        for frame in frames {
            let (weight, ordinary) = match &frame {
                ServerFrame::LiveBatch { items, dropped, .. } => (
                    items.len() as u64 + dropped,
                    !items
                        .iter()
                        .any(|i| matches!(i.prio, Prio::Paid | Prio::System)),
                ),
                _ => (0, true),
            };
            let frame = OutFrame::new(frame);
            metrics::counter!("chorus_live_batches_total").increment(1);
            let region = &self.region;
            let room = &self.room;
            self.nodes
                .retain(|node, _| region.live_batch(node, room, &frame, weight, ordinary));
        }
    }
}

/// Keeps every `paid`/`system` item, then `vip`, then a uniform sample of
/// `normal` items, within `allowed` (the must-keep items may exceed it).
/// The result is in seq order.
pub fn select_within_budget(items: Vec<LiveItem>, allowed: usize) -> Vec<LiveItem> {
    if items.len() <= allowed {
        return items;
    }
    let (must, rest): (Vec<LiveItem>, Vec<LiveItem>) = items
        .into_iter()
        .partition(|i| matches!(i.prio, Prio::Paid | Prio::System));
    let (vip, normal): (Vec<LiveItem>, Vec<LiveItem>) =
        rest.into_iter().partition(|i| i.prio == Prio::Vip);
    let mut room = allowed.saturating_sub(must.len());
    let mut kept = must;
    let mut rng = rand::rng();
    for class in [vip, normal] {
        let take = room.min(class.len());
        room -= take;
        if take == class.len() {
            kept.extend(class);
        } else if take > 0 {
            let mut picks = rand::seq::index::sample(&mut rng, class.len(), take).into_vec();
            picks.sort_unstable();
            let mut class: Vec<Option<LiveItem>> = class.into_iter().map(Some).collect();
            kept.extend(
                picks
                    .into_iter()
                    .filter_map(|i| class.get_mut(i).and_then(Option::take)),
            );
        }
    }
    kept.sort_by_key(|i| i.seq);
    kept
}

/// The RoomFanout actor: one node's viewers of one room.
#[derive(Debug)]
pub struct RoomFanout;

/// How a RoomFanout starts.
#[derive(Debug)]
pub struct FanoutArgs {
    /// Room id.
    pub room: String,
    /// The region (for count reports and retirement).
    pub region: ShardRegion,
}

/// A RoomFanout's state.
pub struct FanoutState {
    room: String,
    region: ShardRegion,
    viewers: Vec<SessionHandle>,
    empty_since: Option<Instant>,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Actor for RoomFanout {
    type Msg = FanoutMsg;
    type State = FanoutState;
    type Arguments = FanoutArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ticker = crate::spawn_ticker(myself, COUNT_REPORT, || FanoutMsg::Tick);
        metrics::gauge!("chorus_live_rooms_local").increment(1.0);
        Ok(FanoutState {
            room: args.room,
            region: args.region,
            viewers: Vec::new(),
            empty_since: None,
            _ticker: ticker,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        metrics::gauge!("chorus_live_viewers").decrement(state.viewers.len() as f64);
        metrics::gauge!("chorus_live_rooms_local").decrement(1.0);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FanoutMsg::Add(viewer) => {
                if !state.viewers.iter().any(|v| v.id() == viewer.id()) {
                    state.viewers.push(viewer);
                    metrics::gauge!("chorus_live_viewers").increment(1.0);
                }
                state.empty_since = None;
            }
            FanoutMsg::Remove(id) => {
                let before = state.viewers.len();
                state.viewers.retain(|v| v.id() != id);
                metrics::gauge!("chorus_live_viewers")
                    .decrement((before - state.viewers.len()) as f64);
                if state.viewers.is_empty() {
                    state.empty_since = Some(Instant::now());
                }
            }
            FanoutMsg::Batch {
                frame,
                weight,
                ordinary,
            } => {
                let items = match frame.frame() {
                    ServerFrame::LiveBatch { items, .. } => items.len() as u64,
                    _ => 0,
                };
                let before = state.viewers.len();
                state.viewers.retain(|v| {
                    v.push_live(LiveEntry {
                        frame: frame.clone(),
                        room: state.room.clone(),
                        weight,
                        ordinary,
                        queued: Instant::now(),
                    })
                });
                let gone = before - state.viewers.len();
                if gone > 0 {
                    metrics::gauge!("chorus_live_viewers").decrement(gone as f64);
                }
                metrics::counter!("chorus_live_item_deliveries_total")
                    .increment(items * state.viewers.len() as u64);
            }
            FanoutMsg::Tick => {
                let before = state.viewers.len();
                state.viewers.retain(|v| !v.is_closed());
                let gone = before - state.viewers.len();
                if gone > 0 {
                    metrics::gauge!("chorus_live_viewers").decrement(gone as f64);
                }
                let node = state.region.settings().node_id.clone();
                let room = ConvId::Live(state.room.clone());
                let count = state.viewers.len() as u64;
                state
                    .region
                    .tell_live_room(&room, LiveRoomMsg::ViewerCount { node, count });
                if count == 0 {
                    let since = *state.empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= state.region.settings().conversation_idle
                        && state.region.fanouts().retire(&state.room, &myself)
                    {
                        // Whatever was queued before the retirement is handled first.
                        let _ = myself.send_message(FanoutMsg::Stop);
                    }
                }
            }
            FanoutMsg::Stop => {
                // A viewer added just before the retirement moves to a new fanout,
                // which reports itself to the room within a second.
                for viewer in state.viewers.drain(..) {
                    metrics::gauge!("chorus_live_viewers").decrement(1.0);
                    state
                        .region
                        .fanouts()
                        .join(&state.region, &state.room, viewer);
                }
                myself.stop(Some("no viewers".into()));
            }
        }
        Ok(())
    }
}

/// This node's fanouts, by room.
#[derive(Debug, Default)]
pub struct LiveFanouts {
    by_room: Mutex<HashMap<String, ActorRef<FanoutMsg>>>,
}

impl LiveFanouts {
    /// Adds `viewer` to this node's fanout of `room` (spawned if needed) and
    /// returns the fanout. Under the registry lock, so a fanout never retires
    /// between being found and being given its viewer.
    pub fn join(
        &self,
        region: &ShardRegion,
        room: &str,
        viewer: SessionHandle,
    ) -> Option<ActorRef<FanoutMsg>> {
        let mut map = self.by_room.lock();
        let mut viewer = Some(viewer);
        for _ in 0..2 {
            let fanout = match map.get(room) {
                Some(f) => f.clone(),
                None => {
                    let args = FanoutArgs {
                        room: room.to_string(),
                        region: region.clone(),
                    };
                    let (f, _) = ractor::ActorRuntime::<RoomFanout>::spawn_linked_instant(
                        None,
                        RoomFanout,
                        args,
                        region.supervisor_cell(),
                    )
                    .ok()?;
                    map.insert(room.to_string(), f.clone());
                    f
                }
            };
            match fanout.send_message(FanoutMsg::Add(viewer.take()?)) {
                Ok(()) => return Some(fanout),
                Err(ractor::MessagingErr::SendErr(FanoutMsg::Add(v))) => {
                    map.remove(room);
                    viewer = Some(v);
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Hands a batch to this node's fanout of `room`; false if there is none.
    pub fn batch(&self, room: &str, frame: SharedFrame, weight: u64, ordinary: bool) -> bool {
        let map = self.by_room.lock();
        map.get(room).is_some_and(|f| {
            f.send_message(FanoutMsg::Batch {
                frame,
                weight,
                ordinary,
            })
            .is_ok()
        })
    }

    /// Removes a viewer from this node's fanout of `room`.
    pub fn leave(&self, room: &str, viewer: SessionId) {
        let map = self.by_room.lock();
        if let Some(f) = map.get(room) {
            let _ = f.send_message(FanoutMsg::Remove(viewer));
        }
    }

    /// Unregisters an empty fanout; false if it was replaced meanwhile.
    fn retire(&self, room: &str, fanout: &ActorRef<FanoutMsg>) -> bool {
        let mut map = self.by_room.lock();
        if map.get(room).is_some_and(|f| f.get_id() == fanout.get_id()) {
            map.remove(room);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
