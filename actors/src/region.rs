//! Where entities live, and what happens when one fails.
//!
//! ```text
//! ShardRegion ── EntitySupervisor ─┬─ User(u1), User(u2), ...
//!                                  ├─ Conversation(dm:a:b), Conversation(group:g), ...
//!                                  └─ LiveRoom(live:r), ...
//! ```
//!
//! The region finds the actor of an entity key or spawns it on demand. On one node
//! every shard is local; the cluster changes only placement (which node's region
//! spawns an entity), never the callers.
//!
//! - `entity`: the `Entity` trait each kind implements (its key,
//!   shard key, start, registry, envelopes, admission), so that one generic
//!   `ShardRegion::route` serves every kind.
//! - `registry`: key → running actor per kind; passivation that leaves nothing
//!   behind, and the cap on running entities (least recently used passivate).
//! - `access`: a request for a conversation the asker may not use is answered
//!   without spawning its entity.
//! - `handoff`: a conversation that moved here waits until its previous owner
//!   settled before it hands out seqs.
//! - `supervisor`: restarts, counted, with a meltdown limit.
//!
//! **Passivation without losing messages.** Every message to an entity is sent by
//! [`ShardRegion`] while it holds the lock of that kind's registry. An entity
//! leaves the registry only when it has handled every message the registry sent
//! it, under the same lock, and then stops at once: nothing can be queued for it
//! after the removal. The next message for the key spawns a fresh actor, which
//! restarts from the store. An entity passivates when idle
//! (`conversation_idle` / `user_idle`), or under pressure when its kind runs more
//! entities than its cap (`[entities]`), least recently used first.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use chorus_store::MessageStore;
use chorus_wire::ConvId;
use ractor::{Actor, ActorCell, ActorId, ActorRef};

use self::access::GroupCache;
use self::entity::Entity;
use self::registry::Registry;
use self::supervisor::{EntitySupervisor, SupervisorArgs};
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

pub(crate) mod access;
pub(crate) mod entity;
mod handoff;
pub(crate) mod registry;
mod supervisor;

pub use self::handoff::UNREACHABLE_GRACE;
pub use self::registry::PassivateReason;
pub use self::supervisor::SupervisorMsg;

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
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Conversation => "conversation",
            Self::LiveRoom => "live_room",
        }
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
    /// What this node knows of the groups it owns, for access checks.
    groups: GroupCache,
    /// Fences and settling of conversations that change owner.
    handoff: handoff::Handoff,
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
        let (max_users, max_conversations, max_live_rooms, group_cache) = (
            settings.max_users,
            settings.max_conversations,
            settings.max_live_rooms,
            settings.group_cache_members,
        );
        let inner = Arc::new(RegionInner {
            placement: Placement::single(&settings.node_id, settings.shards),
            link: Arc::new(Link::new(&settings.node_id)),
            store,
            settings,
            live_rooms: Registry::new(EntityKind::LiveRoom, max_live_rooms),
            fanouts: LiveFanouts::default(),
            danmaku_rate,
            moderation,
            store_reads,
            sessions: LocalSessions::default(),
            users: Registry::new(EntityKind::User, max_users),
            conversations: Registry::new(EntityKind::Conversation, max_conversations),
            groups: GroupCache::new(group_cache),
            handoff: handoff::Handoff::default(),
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
    fn route_of(&self, key: &str, hops: u8, may_defer: bool) -> Route {
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
        matches!(
            self.route_of(&format!("user:{user}"), 0, false),
            Route::Local
        ) && !self.inner.users.contains(user)
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
        // First: conversations gained from another node wait for it to settle.
        self.fence_gained_shards(previous);
        self.inner
            .groups
            .drop_where(|gid| !placement.is_local(&format!("group:{gid}")));
        let users = self
            .inner
            .users
            .remove_where(|u| !placement.is_local(&format!("user:{u}")));
        for (_, user) in &users {
            let _ = user.send_message(UserMsg::HandOff);
        }
        let convs = self
            .inner
            .conversations
            .remove_where(|c| !placement.is_local(c));
        for (key, conv) in &convs {
            // Gates of the key on this node wait for it, should the shard come
            // back before it stopped.
            self.conversation_retiring(key, conv.get_id());
            let _ = conv.send_message(ConversationMsg::HandOff);
        }
        let rooms = self
            .inner
            .live_rooms
            .remove_where(|r| !placement.is_local(r));
        for (_, room) in &rooms {
            let _ = room.send_message(LiveRoomMsg::HandOff);
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
                frame: chorus_wire::cluster::NestedFrame(frame.frame().clone()),
                weight,
                ordinary,
            },
        )
    }

    /// Routes `msg` for the entity of `key`, forwarded `hops` times so far: to
    /// the entity on this node (spawned if needed), to the node that owns its
    /// shard, or — after bouncing between nodes whose tables disagree — again
    /// after [`DEFER`].
    pub(crate) fn route<E: Entity>(&self, key: &E::Key, msg: E::Msg, hops: u8, may_defer: bool) {
        match self.route_of(&E::shard_key(key), hops, may_defer) {
            Route::Local => E::deliver(self, key, msg),
            Route::Forward(node) => E::forward(self, &node, key, msg, hops + 1),
            Route::Defer => {
                let key = key.clone();
                self.defer(move |region| region.route::<E>(&key, msg, hops, false));
            }
        }
    }

    /// Sends to the LiveRoom entity of `room` (a `ConvId::Live`), spawning it if needed.
    pub fn tell_live_room(&self, room: &ConvId, msg: LiveRoomMsg) {
        if let ConvId::Live(id) = room {
            self.route::<LiveRoom>(id, msg, 0, true);
        }
    }

    /// Sends to the User entity of `user`, spawning it if needed.
    pub fn tell_user(&self, user: &str, msg: UserMsg) {
        self.route::<User>(&user.to_string(), msg, 0, true);
    }

    /// Sends to the Conversation entity of `conv`, spawning it if needed.
    pub fn tell_conversation(&self, conv: &ConvId, msg: ConversationMsg) {
        self.route::<Conversation>(conv, msg, 0, true);
    }

    /// The registry of running users.
    pub(crate) fn users(&self) -> &Registry<UserMsg> {
        &self.inner.users
    }

    /// The registry of running conversations.
    pub(crate) fn conversations(&self) -> &Registry<ConversationMsg> {
        &self.inner.conversations
    }

    /// The registry of running live rooms.
    pub(crate) fn live_rooms(&self) -> &Registry<LiveRoomMsg> {
        &self.inner.live_rooms
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
        self.inner.conversations.get(&conv.to_string())
    }

    /// What this node knows of the groups it owns.
    pub(crate) fn group_cache(&self) -> &GroupCache {
        &self.inner.groups
    }

    fn record_owner(&self, id: ActorId, kind: EntityKind, key: &str) {
        if kind == EntityKind::Conversation {
            self.conversation_started(key);
        }
        let mut owners = self.inner.owners.lock();
        owners.insert(id, (kind, key.to_string()));
    }

    /// Called by an entity that wants to stop: removes it from the registry if
    /// it is still the registered actor of its key and has handled every
    /// message the registry sent it (`handled`, see `registry`). True: the
    /// entity stops now; false: something is queued for it, and it stays.
    pub(crate) fn passivate(
        &self,
        kind: EntityKind,
        key: &str,
        id: ActorId,
        handled: u64,
        reason: PassivateReason,
    ) -> bool {
        match kind {
            EntityKind::User => self.inner.users.remove_if_idle(key, id, handled, reason),
            EntityKind::Conversation => self
                .inner
                .conversations
                .remove_if_idle(key, id, handled, reason),
            EntityKind::LiveRoom => self
                .inner
                .live_rooms
                .remove_if_idle(key, id, handled, reason),
        }
    }

    /// Forgets an actor that ended; returns what it served.
    fn forget(&self, id: ActorId) -> Option<(EntityKind, String)> {
        let entry = {
            let mut owners = self.inner.owners.lock();
            owners.remove(&id)
        }?;
        match entry.0 {
            EntityKind::User => self.inner.users.remove_if(&entry.1, id),
            EntityKind::Conversation => {
                let removed = self.inner.conversations.remove_if(&entry.1, id);
                self.conversation_ended(&entry.1, id);
                removed
            }
            EntityKind::LiveRoom => self.inner.live_rooms.remove_if(&entry.1, id),
        };
        Some(entry)
    }
}
