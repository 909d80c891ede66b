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
//! - `entity`: the `Entity` trait each kind implements (its key, shard key,
//!   start, cap, shared state, envelopes, admission), so that one generic
//!   `ShardRegion::route` serves every kind. The region never names a kind: the
//!   kinds are given to it as slots when it starts (the `shards` module).
//! - `lifecycle`: idle ticks, passivation, hand-off and failure hooks, one
//!   message kind carried in one variant of every entity's messages, run by one
//!   handler for every kind.
//! - `registry`: key → running actor per kind; passivation that leaves nothing
//!   behind, and the cap on running entities (least recently used passivate).
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
use chorus_wire::cluster::{RequestEnvelope, SessionAddr};
use ractor::{Actor, ActorCell, ActorId, ActorRef};

use self::entity::{Entity, KindSlot};
use self::supervisor::{EntitySupervisor, SupervisorArgs};
use crate::moderation::Moderation;
use crate::placement::Placement;
use crate::ratelimit::RateLimiter;
use crate::remote::{Link, Outbox, Request, SessionRef};
use crate::sessions::LocalSessions;
use crate::settings::Settings;

pub(crate) mod entity;
mod handoff;
pub(crate) mod lifecycle;
pub(crate) mod registry;
mod supervisor;

pub use self::handoff::UNREACHABLE_GRACE;
pub use self::lifecycle::Lifecycle;
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
    /// Every kind, in the order of [`EntityKind::index`].
    pub(crate) const ALL: [EntityKind; 3] = [Self::User, Self::Conversation, Self::LiveRoom];

    /// Its place among the region's slots.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::User => 0,
            Self::Conversation => 1,
            Self::LiveRoom => 2,
        }
    }

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
    /// Per kind, at [`EntityKind::index`]: its registry and shared state.
    kinds: [KindSlot; 3],
    danmaku_rate: RateLimiter,
    moderation: Arc<Moderation>,
    /// Turns for page reads from the store (`Settings::store_reads`).
    store_reads: Arc<tokio::sync::Semaphore>,
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
        let (users, conversations, live_rooms) = self.entity_counts();
        f.debug_struct("ShardRegion")
            .field("users", &users)
            .field("conversations", &conversations)
            .field("live_rooms", &live_rooms)
            .finish()
    }
}

impl ShardRegion {
    /// Starts the region and its entity supervisor, serving the entity kinds
    /// of `kinds` (one slot per kind, in [`EntityKind::ALL`] order).
    pub(crate) async fn start_serving(
        store: Arc<dyn MessageStore>,
        settings: Settings,
        moderation: Arc<Moderation>,
        kinds: [KindSlot; 3],
    ) -> Result<Self, ractor::SpawnErr> {
        for (slot, kind) in kinds.iter().zip(EntityKind::ALL) {
            assert_eq!(
                slot.kind(),
                kind,
                "the region's slots are in EntityKind::ALL order"
            );
        }
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
            kinds,
            danmaku_rate,
            moderation,
            store_reads,
            sessions: LocalSessions::default(),
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
        let len = |kind: EntityKind| self.slot(kind).any_registry().len();
        (
            len(EntityKind::User),
            len(EntityKind::Conversation),
            len(EntityKind::LiveRoom),
        )
    }

    /// The slot of `kind`.
    fn slot(&self, kind: EntityKind) -> &KindSlot {
        &self.inner.kinds[kind.index()]
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

    /// The session an address names, as seen from this node: a local handle when it
    /// is one of ours (`None` if it is gone), else a remote reference.
    pub(crate) fn session_ref(&self, addr: SessionAddr) -> Option<SessionRef> {
        let link = self.link();
        if addr.node == **link.node_id() {
            let handle = self
                .sessions()
                .get(addr.id)
                .filter(|h| h.user() == addr.user)?;
            return (addr.generation == link.generation()).then_some(SessionRef::Local(handle));
        }
        Some(SessionRef::remote(addr, link.clone()))
    }

    /// A request that came from another node, answered to its session; `None`
    /// if that session is gone.
    pub(crate) fn request_from(&self, req: RequestEnvelope) -> Option<Request> {
        let reply = self.session_ref(req.reply)?;
        Some(Request {
            user: req.user,
            reference: req.reference,
            reply,
        })
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
        ) && !self.slot(EntityKind::User).any_registry().contains(user)
    }

    /// Whether the entity of `key` (`user:..`, `dm:..`, `group:..`, `live:..`)
    /// is running on this node.
    pub fn is_running(&self, key: &str) -> bool {
        let (kind, key) = if let Some(user) = key.strip_prefix("user:") {
            (EntityKind::User, user)
        } else if key.starts_with("live:") {
            (EntityKind::LiveRoom, key)
        } else {
            (EntityKind::Conversation, key)
        };
        self.slot(kind).any_registry().contains(key)
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
        self.slot(kind)
            .any_registry()
            .remove_if_idle(key, id, handled, reason)
    }

    /// Forgets an actor that ended; returns what it served.
    fn forget(&self, id: ActorId) -> Option<(EntityKind, String)> {
        let entry = {
            let mut owners = self.inner.owners.lock();
            owners.remove(&id)
        }?;
        self.slot(entry.0).any_registry().remove_if(&entry.1, id);
        if entry.0 == EntityKind::Conversation {
            self.conversation_ended(&entry.1, id);
        }
        Some(entry)
    }
}

/// Counts and logs an envelope from `from` whose entity key is not valid.
pub(crate) fn bad_key(from: &str, key: &str) {
    metrics::counter!("chorus_cluster_bad_envelopes_total").increment(1);
    tracing::warn!(
        peer = from,
        key,
        "dropping an envelope with an invalid entity key"
    );
}
