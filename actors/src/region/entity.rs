//! What the region needs of an entity kind, so that one generic path
//! ([`ShardRegion::route`]) finds, spawns or forwards every kind — without the
//! region naming any kind: the kinds are handed to it when it starts
//! ([`KindSlot::of`], from `shards`), and it reaches each through its slot.
//!
//! A kind says what names one of its entities, which shard that key falls in,
//! how an entity starts, how many may run, what node-wide state the kind keeps
//! beside its registry, how its messages travel to the node that owns the shard
//! (each kind converts its own messages to envelopes, next to their
//! definition), and — where it has one — its admission check before a spawn
//! (the default spawns for any message) and what follows one of its entities
//! failing.

use std::any::Any;
use std::sync::Arc;

use chorus_wire::cluster::EntityEnvelope;
use ractor::{Actor, ActorRef};

use super::registry::{Admission, AnyRegistry, EntityMessage, Registry};
use super::{EntityKind, ShardRegion};
use crate::settings::Settings;

/// An entity kind (see the module docs).
pub(crate) trait Entity: Actor<Msg: EntityMessage> {
    /// The kind, in metrics and logs.
    const KIND: EntityKind;

    /// What names one entity.
    type Key: Clone + Send + Sync + 'static;

    /// What the kind keeps on this node beside its running entities (a cache,
    /// a directory); `()` when nothing.
    type Shared: Send + Sync + 'static;

    /// The actor to spawn.
    fn actor() -> Self;

    /// The key its shard is found by: `user:u`, `dm:a:b`, `group:g`, `live:r`.
    fn shard_key(key: &Self::Key) -> String;

    /// Its key in its kind's registry (and for the supervisor).
    fn registry_key(key: &Self::Key) -> String {
        Self::shard_key(key)
    }

    /// How many of the kind may run at once on this node (a target: see
    /// `registry`).
    fn cap(settings: &Settings) -> usize;

    /// The kind's node-wide state, made when the region starts.
    fn shared(settings: &Settings) -> Self::Shared;

    /// How the entity of `key` starts.
    fn arguments(region: &ShardRegion, key: &Self::Key) -> Self::Arguments;

    /// Sends `msg` to `node`, which owns the shard of `key`, as an envelope;
    /// what cannot be sent is answered here.
    fn forward(region: &ShardRegion, node: &Arc<str>, key: &Self::Key, msg: Self::Msg, hops: u8);

    /// Takes the envelopes of this kind that came from node `from` (forwarded
    /// `hops` times) back into messages and routes them; hands on any other.
    // The envelope handed on is moved back by value, once per envelope: cheaper
    // than boxing every one.
    #[allow(clippy::result_large_err)]
    fn receive(
        region: &ShardRegion,
        from: &str,
        hops: u8,
        msg: EntityEnvelope,
    ) -> Result<(), EntityEnvelope>;

    /// Delivers `msg` to the entity of `key` on this node, spawning it if
    /// needed.
    fn deliver(region: &ShardRegion, key: &Self::Key, msg: Self::Msg) {
        let spawn = || region.spawn::<Self>(key);
        region.registry::<Self>().deliver(
            &Self::registry_key(key),
            spawn,
            Admission::<_, ()>::Spawn,
            msg,
        );
    }

    /// After the supervisor forgot a failed entity of registry key `key`
    /// (which restarts from the store on its next message): anything the kind
    /// must do at once.
    fn failed(_region: &ShardRegion, _key: &str) {}
}

/// One kind as the region holds it: its registry and its shared state, typed
/// by the kind and reached through [`ShardRegion::registry`] and
/// [`ShardRegion::shared`], plus what the supervisor calls when one fails.
pub(crate) struct KindSlot {
    kind: EntityKind,
    registry: Box<dyn AnyRegistry>,
    shared: Box<dyn Any + Send + Sync>,
    failed: fn(&ShardRegion, &str),
}

impl KindSlot {
    /// The slot of kind `E`.
    pub(crate) fn of<E: Entity>(settings: &Settings) -> Self {
        Self {
            kind: E::KIND,
            registry: Box::new(Registry::<E::Msg>::new(E::KIND, E::cap(settings))),
            shared: Box::new(E::shared(settings)),
            failed: E::failed,
        }
    }

    pub(super) fn kind(&self) -> EntityKind {
        self.kind
    }

    /// The registry, without its message type.
    pub(super) fn any_registry(&self) -> &dyn AnyRegistry {
        self.registry.as_ref()
    }

    pub(super) fn failed(&self, region: &ShardRegion, key: &str) {
        (self.failed)(region, key);
    }
}

impl ShardRegion {
    /// The registry of kind `E`'s running entities on this node.
    pub(crate) fn registry<E: Entity>(&self) -> &Registry<E::Msg> {
        self.slot(E::KIND)
            .registry
            .as_any()
            .downcast_ref()
            .unwrap_or_else(|| unreachable!("the slot of {:?} holds its own registry", E::KIND))
    }

    /// Kind `E`'s node-wide state.
    pub(crate) fn shared<E: Entity>(&self) -> &E::Shared {
        self.slot(E::KIND)
            .shared
            .downcast_ref()
            .unwrap_or_else(|| unreachable!("the slot of {:?} holds its own state", E::KIND))
    }

    /// Spawns the entity of `key` under the supervisor.
    pub(crate) fn spawn<E: Entity>(&self, key: &E::Key) -> Option<ActorRef<E::Msg>> {
        let args = E::arguments(self, key);
        self.spawn_entity(E::KIND, &E::registry_key(key), E::actor(), args)
    }
}
