//! Where entities live, and what happens when one fails.
//!
//! ```text
//! ShardRegion ── EntitySupervisor ─┬─ User(u1), User(u2), ...
//!                                  └─ Conversation(dm:a:b), Conversation(group:g), ...
//! ```
//!
//! The region finds the actor of an entity key or spawns it on demand. On one node
//! every shard is local; the cluster changes only placement (which node's region
//! spawns an entity), never the callers.
//!
//! **Passivation without losing messages.** Every message to an entity is sent by
//! [`ShardRegion`] while it holds the lock of that kind's registry. An idle entity
//! removes itself from the registry under the same lock and then casts itself a final
//! `Stop`: everything queued before the removal is handled before `Stop`, and nothing
//! can be queued after it. The next message for the key spawns a fresh actor, which
//! restarts from the store.
//!
//! **Restarts.** The supervisor is told of every failure (an error or a panic in a
//! handler). It forgets the dead actor and counts `chorus_actor_restarts_total{kind}`;
//! the entity restarts from the store on its next message, and a User with sessions
//! here restarts at once so its sessions keep receiving. More than
//! `meltdown_restarts` failures of one kind within `meltdown_window` is a meltdown:
//! logged at error level and counted in `chorus_supervisor_meltdowns_total{kind}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use chorus_store::MessageStore;
use chorus_wire::ConvId;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::conversation::{Conversation, ConversationMsg};
use crate::live::{LiveFanouts, LiveRoom, LiveRoomMsg};
use crate::moderation::Moderation;
use crate::outbound::SharedFrame;
use crate::placement::{Placement, Table};
use crate::ratelimit::RateLimiter;
use crate::remote::{Link, Outbox, SessionRef};
use crate::sessions::LocalSessions;
use crate::settings::Settings;
use crate::user::{Attached, User, UserMsg};

/// Forwards a message takes at once. A message forwarded twice met two nodes
/// whose placement tables disagree (one has seen a member join or leave, the
/// other not yet): it waits [`DEFER`] on the node holding it and is routed
/// again, until the tables agree. It is never run on a node that does not own
/// its shard, so a conversation never has two owners accepting sends at once.
const DIRECT_HOPS: u8 = 2;

/// The wait of a message that bounced between disagreeing nodes.
const DEFER: std::time::Duration = std::time::Duration::from_millis(250);

/// Forwards after which a message is run where it is, as a last resort: tables
/// that disagree this long (about 3 s of bouncing) mean a partitioned cluster,
/// where sequence blocks keep two owners of a conversation from colliding.
const MAX_HOPS: u8 = 14;

/// Where a message goes next.
enum Route {
    /// To the entity on this node.
    Local,
    /// To the owner's node.
    Forward(Arc<str>),
    /// Wait, then route again.
    Defer,
}

/// The kinds of sharded entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A user: their online sessions.
    User,
    /// A dm or group conversation.
    Conversation,
    /// A live room.
    LiveRoom,
}

impl EntityKind {
    fn label(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Conversation => "conversation",
            Self::LiveRoom => "live_room",
        }
    }
}

/// The registry of one entity kind: key → running actor.
struct Registry<M: ractor::Message> {
    actors: Mutex<HashMap<String, ActorRef<M>>>,
}

impl<M: ractor::Message> Registry<M> {
    fn new() -> Self {
        Self {
            actors: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActorRef<M>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section is a single insert/remove), so a poisoned lock is usable.
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes `key` if it still maps to the actor `id`.
    fn remove_if(&self, key: &str, id: ActorId) -> bool {
        let mut map = self.lock();
        if map.get(key).is_some_and(|a| a.get_id() == id) {
            map.remove(key);
            true
        } else {
            false
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Removes every entity whose key `leaves` and returns them, under the lock:
    /// no message reaches them afterwards.
    fn remove_where(&self, leaves: impl Fn(&str) -> bool) -> Vec<ActorRef<M>> {
        let mut map = self.lock();
        let keys: Vec<String> = map.keys().filter(|k| leaves(k)).cloned().collect();
        keys.into_iter().filter_map(|k| map.remove(&k)).collect()
    }
}

pub(crate) struct RegionInner {
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) settings: Settings,
    pub(crate) sessions: LocalSessions,
    placement: Placement,
    link: Arc<Link>,
    users: Registry<UserMsg>,
    conversations: Registry<ConversationMsg>,
    live_rooms: Registry<LiveRoomMsg>,
    fanouts: LiveFanouts,
    danmaku_rate: RateLimiter,
    moderation: Arc<Moderation>,
    /// Turns for page reads from the store (`Settings::store_reads`).
    store_reads: Arc<tokio::sync::Semaphore>,
    /// Entity failures handled, and meltdowns declared, since start.
    restarts: std::sync::atomic::AtomicU64,
    meltdowns: std::sync::atomic::AtomicU64,
    /// Which key each live actor serves, for the supervisor.
    owners: Mutex<HashMap<ActorId, (EntityKind, String)>>,
    supervisor: ActorCell,
}

/// Routes messages to entities, spawning them on demand. Cheap to clone.
#[derive(Clone)]
pub struct ShardRegion {
    inner: Arc<RegionInner>,
}

impl std::fmt::Debug for ShardRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRegion")
            .field("users", &self.inner.users.len())
            .field("conversations", &self.inner.conversations.len())
            .finish()
    }
}

impl ShardRegion {
    /// Starts the region and its entity supervisor.
    pub async fn start(
        store: Arc<dyn MessageStore>,
        settings: Settings,
    ) -> Result<Self, ractor::SpawnErr> {
        Self::start_with(store, settings, Arc::new(Moderation::disabled())).await
    }

    /// Starts the region with a word filter applied to `send` and `danmaku`.
    pub async fn start_with(
        store: Arc<dyn MessageStore>,
        settings: Settings,
        moderation: Arc<Moderation>,
    ) -> Result<Self, ractor::SpawnErr> {
        let slot: Arc<OnceLock<Weak<RegionInner>>> = Arc::new(OnceLock::new());
        let (supervisor, _) = Actor::spawn(
            None,
            EntitySupervisor,
            SupervisorArgs {
                region: slot.clone(),
                settings: settings.clone(),
            },
        )
        .await?;
        let danmaku_rate = RateLimiter::new(settings.live.rate_per_user, settings.live.rate_window);
        let store_reads = Arc::new(tokio::sync::Semaphore::new(settings.store_reads.max(1)));
        let inner = Arc::new(RegionInner {
            placement: Placement::single(&settings.node_id, settings.shards),
            link: Arc::new(Link::new(&settings.node_id)),
            store,
            settings,
            live_rooms: Registry::new(),
            fanouts: LiveFanouts::default(),
            danmaku_rate,
            moderation,
            store_reads,
            sessions: LocalSessions::default(),
            users: Registry::new(),
            conversations: Registry::new(),
            owners: Mutex::new(HashMap::new()),
            restarts: std::sync::atomic::AtomicU64::new(0),
            meltdowns: std::sync::atomic::AtomicU64::new(0),
            supervisor: supervisor.get_cell(),
        });
        let _ = slot.set(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    pub(crate) fn from_inner(inner: Arc<RegionInner>) -> Self {
        Self { inner }
    }

    /// The store entities persist to.
    pub fn store(&self) -> &Arc<dyn MessageStore> {
        &self.inner.store
    }

    /// The behaviour settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sessions connected to this node.
    pub fn sessions(&self) -> &LocalSessions {
        &self.inner.sessions
    }

    /// Running entities of each kind on this node: (users, conversations, live rooms).
    pub fn entity_counts(&self) -> (usize, usize, usize) {
        (
            self.inner.users.len(),
            self.inner.conversations.len(),
            self.inner.live_rooms.len(),
        )
    }

    /// Entity failures the supervisor handled and meltdowns it declared since the
    /// region started (also `chorus_actor_restarts_total` and
    /// `chorus_supervisor_meltdowns_total`).
    pub fn supervision_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inner.restarts.load(Relaxed),
            self.inner.meltdowns.load(Relaxed),
        )
    }

    /// This node's live-room fanouts.
    pub fn fanouts(&self) -> &LiveFanouts {
        &self.inner.fanouts
    }

    /// The word filter.
    pub fn moderation(&self) -> &Arc<Moderation> {
        &self.inner.moderation
    }

    /// Waits for a turn to read a page (of history or of a conversation list)
    /// from the store; the turn ends when the returned value is dropped.
    pub async fn store_read_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if self.inner.store_reads.available_permits() == 0 {
            metrics::counter!("chorus_store_read_waits_total").increment(1);
        }
        // Never closed: `None` cannot happen, and would only mean "no limit".
        self.inner.store_reads.clone().acquire_owned().await.ok()
    }

    /// The node's per-user danmaku rate limiter.
    pub fn danmaku_rate(&self) -> &RateLimiter {
        &self.inner.danmaku_rate
    }

    /// The supervisor node-local helper actors are linked to.
    pub(crate) fn supervisor_cell(&self) -> ActorCell {
        self.inner.supervisor.clone()
    }

    /// Where entities run.
    pub fn placement(&self) -> &Placement {
        &self.inner.placement
    }

    /// This node's end of the cluster.
    pub fn link(&self) -> &Arc<Link> {
        &self.inner.link
    }

    /// Joins the cluster: envelopes for other nodes go to `outbox`. Until then
    /// (and on a single node) every entity runs here.
    pub fn connect_cluster(&self, generation: u64, outbox: Arc<dyn Outbox>) {
        self.inner.link.connect(generation, outbox);
    }

    /// Handles the bytes of one envelope from node `from`; garbage is counted
    /// and dropped.
    /// Returns false if the bytes were not an envelope.
    pub fn receive(&self, from: &str, bytes: &[u8]) -> bool {
        crate::routing::receive(self, from, bytes)
    }

    /// Where a message for `key` that was forwarded `hops` times goes next.
    fn route(&self, key: &str, hops: u8, may_defer: bool) -> Route {
        let Some(owner) = self.inner.placement.owner(key) else {
            return Route::Local;
        };
        if *owner == **self.inner.placement.node_id() {
            return Route::Local;
        }
        if hops >= MAX_HOPS {
            metrics::counter!("chorus_cluster_route_last_resort_total").increment(1);
            tracing::warn!(key, hops, owner = %owner, "placement tables keep disagreeing: running it here");
            return Route::Local;
        }
        if hops >= DIRECT_HOPS && may_defer {
            metrics::counter!("chorus_cluster_route_deferred_total").increment(1);
            return Route::Defer;
        }
        Route::Forward(owner)
    }

    /// Routes a bounced message again after [`DEFER`] (see [`Route::Defer`]).
    fn defer(&self, route_again: impl FnOnce(ShardRegion) + Send + 'static) {
        let region = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DEFER).await;
            route_again(region);
        });
    }

    /// Whether this node owns `user` and runs no User entity for it. A session of
    /// such a user need not attach: the entity, when a message for the user starts
    /// it, collects this node's sessions from the session directory. So an idle
    /// connection costs no actor; only users with traffic have one.
    ///
    /// Register the session in the directory before asking: a User started after
    /// this answer then finds it there.
    pub fn user_is_dormant(&self, user: &str) -> bool {
        matches!(self.route(&format!("user:{user}"), 0, false), Route::Local)
            && !self.inner.users.contains(user)
    }

    /// Whether the entity of `key` (`user:..`, `dm:..`, `group:..`, `live:..`)
    /// is running on this node.
    pub fn is_running(&self, key: &str) -> bool {
        if let Some(user) = key.strip_prefix("user:") {
            self.inner.users.contains(user)
        } else if key.starts_with("live:") {
            self.inner.live_rooms.contains(key)
        } else {
            self.inner.conversations.contains(key)
        }
    }

    /// After the placement changed from `previous`: hands off the entities this
    /// node no longer owns (each finishes what it accepted, then stops; the next
    /// message for its key goes to the new owner, which restarts it from the
    /// store), and re-attaches this node's sessions whose User moved.
    pub fn rebalance(&self, previous: &Table) {
        let placement = &self.inner.placement;
        let users = self
            .inner
            .users
            .remove_where(|u| !placement.is_local(&format!("user:{u}")));
        for user in &users {
            let _ = user.send_message(UserMsg::HandOff);
        }
        let convs = self
            .inner
            .conversations
            .remove_where(|c| !placement.is_local(c));
        for conv in &convs {
            let _ = conv.send_message(ConversationMsg::Stop);
        }
        let rooms = self
            .inner
            .live_rooms
            .remove_where(|r| !placement.is_local(r));
        for room in &rooms {
            let _ = room.send_message(LiveRoomMsg::Stop);
        }
        let mut moved = 0usize;
        for session in self.inner.sessions.all() {
            let key = format!("user:{}", session.user());
            let before = previous.owner_of_shard(placement.shard_of(&key)).cloned();
            if before != placement.owner(&key) {
                moved += 1;
                let user = session.user().to_string();
                self.tell_user(
                    &user,
                    UserMsg::Attach(SessionRef::Local(session), Attached::Nobody),
                );
            }
        }
        tracing::info!(
            users = users.len(),
            conversations = convs.len(),
            live_rooms = rooms.len(),
            sessions_moved = moved,
            "placement changed: handed off entities"
        );
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
        if node == self.inner.settings.node_id {
            return self
                .inner
                .fanouts
                .batch(room, frame.clone(), weight, ordinary);
        }
        self.inner.link.send(
            node,
            &chorus_wire::cluster::Envelope::LiveBatch {
                room: room.to_string(),
                frame: frame.frame().clone(),
                weight,
                ordinary,
            },
        )
    }

    /// Sends to the LiveRoom entity of `room` (a `ConvId::Live`), spawning it if needed.
    pub fn tell_live_room(&self, room: &ConvId, msg: LiveRoomMsg) {
        self.route_live_room(room, msg, 0, true);
    }

    pub(crate) fn route_live_room(
        &self,
        room: &ConvId,
        msg: LiveRoomMsg,
        hops: u8,
        may_defer: bool,
    ) {
        let ConvId::Live(id) = room else { return };
        let key = room.to_string();
        match self.route(&key, hops, may_defer) {
            Route::Local => {}
            Route::Forward(node) => {
                return crate::routing::forward_live_room(self, &node, id, msg, hops + 1);
            }
            Route::Defer => {
                let room = room.clone();
                return self.defer(move |region| region.route_live_room(&room, msg, hops, false));
            }
        }
        let spawn = || {
            let args = crate::live::LiveRoomArgs {
                room: id.clone(),
                region: self.clone(),
            };
            self.spawn_entity(EntityKind::LiveRoom, &room.to_string(), LiveRoom, args)
        };
        deliver(&self.inner.live_rooms, &key, spawn, msg);
    }

    /// Sends to the User entity of `user`, spawning it if needed.
    pub fn tell_user(&self, user: &str, msg: UserMsg) {
        self.route_user(user, msg, 0, true);
    }

    pub(crate) fn route_user(&self, user: &str, msg: UserMsg, hops: u8, may_defer: bool) {
        match self.route(&format!("user:{user}"), hops, may_defer) {
            Route::Local => {}
            Route::Forward(node) => {
                return crate::routing::forward_user(self, &node, user, msg, hops + 1);
            }
            Route::Defer => {
                let user = user.to_string();
                return self.defer(move |region| region.route_user(&user, msg, hops, false));
            }
        }
        let spawn = || {
            let args = crate::user::UserArgs {
                user: user.to_string(),
                region: self.clone(),
            };
            self.spawn_entity(EntityKind::User, user, User, args)
        };
        deliver(&self.inner.users, user, spawn, msg);
    }

    /// Sends to the Conversation entity of `conv`, spawning it if needed.
    pub fn tell_conversation(&self, conv: &ConvId, msg: ConversationMsg) {
        self.route_conversation(conv, msg, 0, true);
    }

    pub(crate) fn route_conversation(
        &self,
        conv: &ConvId,
        msg: ConversationMsg,
        hops: u8,
        may_defer: bool,
    ) {
        let key = conv.to_string();
        match self.route(&key, hops, may_defer) {
            Route::Local => {}
            Route::Forward(node) => {
                return crate::routing::forward_conversation(self, &node, &key, msg, hops + 1);
            }
            Route::Defer => {
                let conv = conv.clone();
                return self
                    .defer(move |region| region.route_conversation(&conv, msg, hops, false));
            }
        }
        let spawn = || {
            let args = crate::conversation::ConversationArgs {
                conv: conv.clone(),
                region: self.clone(),
            };
            self.spawn_entity(
                EntityKind::Conversation,
                &conv.to_string(),
                Conversation,
                args,
            )
        };
        deliver(&self.inner.conversations, &key, spawn, msg);
    }

    /// Spawns an entity under the supervisor, without waiting for its start (its
    /// mailbox takes messages at once; its `pre_start` cannot fail).
    fn spawn_entity<A: Actor>(
        &self,
        kind: EntityKind,
        key: &str,
        actor: A,
        args: A::Arguments,
    ) -> Option<ActorRef<A::Msg>> {
        match ractor::ActorRuntime::<A>::spawn_linked_instant(
            None,
            actor,
            args,
            self.inner.supervisor.clone(),
        ) {
            Ok((a, _)) => {
                self.record_owner(a.get_id(), kind, key);
                Some(a)
            }
            Err(e) => {
                tracing::error!(kind = kind.label(), key, error = %e, "cannot spawn entity");
                None
            }
        }
    }

    /// The running actor of a conversation, if any (for tests and operators).
    pub fn conversation_actor(&self, conv: &ConvId) -> Option<ActorRef<ConversationMsg>> {
        self.inner
            .conversations
            .lock()
            .get(&conv.to_string())
            .cloned()
    }

    fn record_owner(&self, id: ActorId, kind: EntityKind, key: &str) {
        let mut owners = self.inner.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.insert(id, (kind, key.to_string()));
    }

    /// Called by an idle entity: removes it from the registry (if it is still the
    /// registered actor for its key) so that no further message can reach it.
    /// Returns true if the entity may stop.
    pub(crate) fn passivate(&self, kind: EntityKind, key: &str, id: ActorId) -> bool {
        let removed = match kind {
            EntityKind::User => self.inner.users.remove_if(key, id),
            EntityKind::Conversation => self.inner.conversations.remove_if(key, id),
            EntityKind::LiveRoom => self.inner.live_rooms.remove_if(key, id),
        };
        if removed {
            let mut owners = self.inner.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.remove(&id);
        }
        removed
    }

    /// Forgets a dead actor; returns what it served.
    fn forget(&self, id: ActorId) -> Option<(EntityKind, String)> {
        let entry = {
            let mut owners = self.inner.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.remove(&id)
        }?;
        match entry.0 {
            EntityKind::User => self.inner.users.remove_if(&entry.1, id),
            EntityKind::Conversation => self.inner.conversations.remove_if(&entry.1, id),
            EntityKind::LiveRoom => self.inner.live_rooms.remove_if(&entry.1, id),
        };
        Some(entry)
    }
}

/// The supervisor of every entity on this node: restart policy lives here alone.
struct EntitySupervisor;

struct SupervisorArgs {
    region: Arc<OnceLock<Weak<RegionInner>>>,
    settings: Settings,
}

struct SupervisorState {
    region: Arc<OnceLock<Weak<RegionInner>>>,
    settings: Settings,
    /// Recent failure times per kind, for the meltdown limit.
    failures: HashMap<EntityKind, VecDeque<Instant>>,
}

/// The supervisor takes no messages of its own; it only hears supervision events.
#[derive(Debug)]
pub enum SupervisorMsg {}

impl ractor::Message for SupervisorMsg {}

impl Actor for EntitySupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            region: args.region,
            settings: args.settings,
            failures: HashMap::new(),
        })
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(region) = state.region.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let region = ShardRegion::from_inner(region);
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some((kind, key)) = region.forget(cell.get_id()) else {
                    return Ok(());
                };
                metrics::counter!("chorus_actor_restarts_total", "kind" => kind.label())
                    .increment(1);
                region
                    .inner
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(kind = kind.label(), key = %key, error = %err, "entity failed; it restarts from the store");
                let now = Instant::now();
                let window = state.settings.meltdown_window;
                let recent = state.failures.entry(kind).or_default();
                recent.push_back(now);
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    recent.pop_front();
                }
                if recent.len() > state.settings.meltdown_restarts {
                    metrics::counter!("chorus_supervisor_meltdowns_total", "kind" => kind.label())
                        .increment(1);
                    region
                        .inner
                        .meltdowns
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(
                        kind = kind.label(),
                        failures = recent.len(),
                        window_s = window.as_secs(),
                        "restart meltdown: entities of this kind keep failing"
                    );
                    recent.clear();
                }
                // A User with sessions here restarts at once: its sessions must keep
                // receiving. Everything else restarts on its next message.
                if kind == EntityKind::User && !region.sessions().of(&key).is_empty() {
                    region.tell_user(&key, UserMsg::Refresh);
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                region.forget(cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sends `msg` to the registered actor of `key`, spawning it if absent, all under
/// the registry lock (see "Passivation without losing messages"). An actor that
/// died before the supervisor forgot it is replaced once.
fn deliver<M: ractor::Message>(
    registry: &Registry<M>,
    key: &str,
    spawn: impl Fn() -> Option<ActorRef<M>>,
    msg: M,
) {
    let mut msg = msg;
    for _ in 0..2 {
        let mut map = registry.lock();
        let actor = match map.get(key) {
            Some(a) => a.clone(),
            None => match spawn() {
                Some(a) => {
                    map.insert(key.to_string(), a.clone());
                    a
                }
                None => return,
            },
        };
        match actor.send_message(msg) {
            Ok(()) => return,
            Err(ractor::MessagingErr::SendErr(back)) => {
                map.remove(key);
                msg = back;
            }
            Err(_) => return,
        }
    }
}
