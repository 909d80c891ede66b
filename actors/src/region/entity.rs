//! What the region needs of an entity kind, so that one generic path
//! ([`ShardRegion::route`]) finds, spawns or forwards every kind.
//!
//! A kind says what names one of its entities, which shard that key falls in,
//! how an entity starts, which registry holds the running ones, how its
//! messages travel to the node that owns the shard (each kind converts its own
//! messages to envelopes, next to their definition), and — where it has one —
//! its admission check before a spawn (the default spawns for any message).

use std::sync::Arc;

use ractor::{Actor, ActorRef};

use super::registry::{Admission, EntityMessage, Registry};
use super::{EntityKind, ShardRegion};

/// An entity kind (see the module docs).
pub(crate) trait Entity: Actor<Msg: EntityMessage> {
    /// The kind, in metrics and logs.
    const KIND: EntityKind;

    /// What names one entity.
    type Key: Clone + Send + Sync + 'static;

    /// The actor to spawn.
    fn actor() -> Self;

    /// The key its shard is found by: `user:u`, `dm:a:b`, `group:g`, `live:r`.
    fn shard_key(key: &Self::Key) -> String;

    /// Its key in its kind's registry (and for the supervisor).
    fn registry_key(key: &Self::Key) -> String {
        Self::shard_key(key)
    }

    /// How the entity of `key` starts.
    fn arguments(region: &ShardRegion, key: &Self::Key) -> Self::Arguments;

    /// The registry of the kind's running entities on this node.
    fn registry(region: &ShardRegion) -> &Registry<Self::Msg>;

    /// Sends `msg` to `node`, which owns the shard of `key`, as an envelope;
    /// what cannot be sent is answered here.
    fn forward(region: &ShardRegion, node: &Arc<str>, key: &Self::Key, msg: Self::Msg, hops: u8);

    /// Delivers `msg` to the entity of `key` on this node, spawning it if
    /// needed.
    fn deliver(region: &ShardRegion, key: &Self::Key, msg: Self::Msg) {
        let spawn = || region.spawn::<Self>(key);
        Self::registry(region).deliver(
            &Self::registry_key(key),
            spawn,
            Admission::<_, ()>::Spawn,
            msg,
        );
    }
}

impl ShardRegion {
    /// Spawns the entity of `key` under the supervisor.
    pub(crate) fn spawn<E: Entity>(&self, key: &E::Key) -> Option<ActorRef<E::Msg>> {
        let args = E::arguments(self, key);
        self.spawn_entity(E::KIND, &E::registry_key(key), E::actor(), args)
    }
}
