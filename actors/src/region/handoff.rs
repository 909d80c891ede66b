//! Hand-off of conversations between owners without reordering or loss.
//!
//! When a conversation's shard moves, its old entity finishes what it accepted
//! (writes in flight, messages queued behind them) and stops; meanwhile the new
//! owner already receives messages. Were the new entity to hand out seqs at
//! once, it could ack a higher seq before the old one's last write landed, and a
//! client that saw the higher seq first would drop the older message. So a
//! Conversation passes a [`Gate`] before it loads any state or hands out a seq:
//!
//! ```text
//! new owner M                                    previous owner P
//! 1. rebalance: shard s gained from P
//!    → fence(s), and HandoffQuery{s} ──────────► 2. held until P does not own s
//!                                                   and no Conversation of s
//!                                                   runs on P (each finished
//!                                                   its writes and stopped)
//! 4. fence(s) opens ◄────────────── Reply ───── 3.
//! 5. entities of s pass their gate: load, allocate, ack
//! ```
//!
//! - P connected but slow: M waits for its answer (a slow node is still a
//!   node). An answer that never comes opens the fence after
//!   [`REMOTE_ANSWER_TIMEOUT`](crate::remote::REMOTE_ANSWER_TIMEOUT), with a warning.
//! - P unreachable (it died, or the cluster split): the fence opens after
//!   [`UNREACHABLE_GRACE`], the time a write a dead node had already sent needs
//!   to reach the database. A split cluster has two owners anyway, and then only
//!   the seq blocks keep their seqs apart.
//! - On one node, a shard that comes back before its old entity stopped: the
//!   gate also waits for the local incarnations of the key still retiring.
//!
//! Metrics: `chorus_handoff_fences_total{outcome}` (answered, timeout,
//! unreachable) and `chorus_handoff_wait_seconds`, how long the first message
//! of a new entity waited at its gate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use chorus_wire::cluster::Envelope;
use ractor::ActorId;
use tokio::sync::watch;

use super::ShardRegion;
use crate::placement::Table;

/// How long a fence waits after the previous owner became unreachable.
pub const UNREACHABLE_GRACE: Duration = Duration::from_secs(2);

/// What a new Conversation waits for before its first message (see the module
/// docs). Open when empty.
#[derive(Debug, Default)]
pub(crate) struct Gate(Vec<watch::Receiver<bool>>);

impl Gate {
    /// Whether nothing is left to wait for.
    pub(crate) fn is_open(&self) -> bool {
        self.0.iter().all(|rx| *rx.borrow())
    }

    /// Waits until every fence of the gate is open (or its sender is gone,
    /// which means the same).
    pub(crate) async fn wait(self) {
        for mut rx in self.0 {
            let _ = rx.wait_for(|open| *open).await;
        }
    }
}

/// A fence of a shard this node gained from another.
struct ShardFence {
    /// The previous owner.
    from: Arc<str>,
    /// True once open.
    open: watch::Receiver<bool>,
}

/// The region's hand-off state.
#[derive(Default)]
pub(crate) struct Handoff {
    /// Shards gained from another node, by shard.
    fences: Mutex<HashMap<u32, ShardFence>>,
    /// Conversation actors handed off but still finishing, with the key each
    /// served; the sender is dropped when the actor ends, which opens the
    /// gates waiting on it.
    retiring: Mutex<HashMap<ActorId, (String, watch::Sender<bool>)>>,
    /// Conversation actors alive on this node per shard, registered or retiring.
    live: Mutex<HashMap<u32, usize>>,
    /// Queries of other nodes waiting for this node to settle a shard:
    /// shard → (node, call).
    queries: Mutex<HashMap<u32, Vec<(String, u64)>>>,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    // Every critical section here is a single map update: a poisoned lock
    // still holds a consistent map.
    m.lock()
}

impl ShardRegion {
    fn handoff(&self) -> &Handoff {
        &self.inner.handoff
    }

    /// The gate a new Conversation of `key` passes before its first message;
    /// `me` is the asking actor, which never waits for itself (it may have been
    /// handed off before its first message).
    pub(crate) fn gate(&self, key: &str, me: Option<ActorId>) -> Gate {
        let shard = self.placement().shard_of(key);
        let mut gate = Gate::default();
        if let Some(fence) = lock(&self.handoff().fences).get(&shard)
            && !*fence.open.borrow()
        {
            gate.0.push(fence.open.clone());
        }
        for (id, (k, tx)) in lock(&self.handoff().retiring).iter() {
            if k == key && Some(*id) != me {
                gate.0.push(tx.subscribe());
            }
        }
        gate
    }

    /// A Conversation actor of `key` started here.
    pub(crate) fn conversation_started(&self, key: &str) {
        let shard = self.placement().shard_of(key);
        *lock(&self.handoff().live).entry(shard).or_default() += 1;
    }

    /// A Conversation actor of `key` ended here (`id`).
    pub(crate) fn conversation_ended(&self, key: &str, id: ActorId) {
        lock(&self.handoff().retiring).remove(&id);
        let shard = self.placement().shard_of(key);
        let settled = {
            let mut live = lock(&self.handoff().live);
            match live.get_mut(&shard) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    live.remove(&shard);
                    true
                }
                None => true,
            }
        };
        if settled {
            self.answer_queries(shard);
        }
    }

    /// A conversation handed off by [`ShardRegion::rebalance`]: gates of `key`
    /// wait for it until it ends.
    pub(crate) fn conversation_retiring(&self, key: &str, id: ActorId) {
        let (tx, _) = watch::channel(false);
        lock(&self.handoff().retiring).insert(id, (key.to_string(), tx));
    }

    /// After a placement change from `previous`: fences for the shards gained
    /// from another node, none for shards lost, and an answer to every query
    /// that can now be answered.
    pub(crate) fn fence_gained_shards(&self, previous: &Table) {
        let me = self.placement().node_id().clone();
        let current = self.placement().table();
        let mut new_fences = Vec::new();
        {
            let mut fences = lock(&self.handoff().fences);
            for shard in 0..self.placement().shards() {
                let now = current.owner_of_shard(shard);
                if now.is_none_or(|owner| *owner != me) {
                    fences.remove(&shard);
                    continue;
                }
                let Some(before) = previous.owner_of_shard(shard) else {
                    continue;
                };
                if *before == me {
                    continue;
                }
                if fences.get(&shard).is_some_and(|f| f.from == *before) {
                    continue; // This gain is fenced already.
                }
                let (tx, rx) = watch::channel(false);
                fences.insert(
                    shard,
                    ShardFence {
                        from: before.clone(),
                        open: rx,
                    },
                );
                new_fences.push((shard, before.clone(), tx));
            }
        }
        for (shard, from, tx) in new_fences {
            let region = self.clone();
            tokio::spawn(async move { region.await_previous_owner(from, shard, tx).await });
        }
        let pending: Vec<u32> = lock(&self.handoff().queries).keys().copied().collect();
        for shard in pending {
            self.answer_queries(shard);
        }
    }

    /// Asks `from` to say when it has settled `shard`, and opens the fence on
    /// its answer (or as the module docs say without one).
    async fn await_previous_owner(&self, from: Arc<str>, shard: u32, open: watch::Sender<bool>) {
        let started = Instant::now();
        let (call, answered) = self.link().call(&from);
        let sent = self
            .link()
            .send(&from, &Envelope::HandoffQuery { shard, call });
        let outcome = if !sent {
            "unreachable"
        } else {
            match answered.await {
                Ok(()) => "answered",
                Err(_) if self.link().is_connected(&from) => "timeout",
                Err(_) => "unreachable",
            }
        };
        match outcome {
            "unreachable" => tokio::time::sleep(UNREACHABLE_GRACE).await,
            "timeout" => tracing::warn!(
                node = %from,
                shard,
                waited_s = started.elapsed().as_secs(),
                "the previous owner never said it settled the shard: taking it over anyway"
            ),
            _ => {}
        }
        metrics::counter!("chorus_handoff_fences_total", "outcome" => outcome).increment(1);
        let _ = open.send(true);
    }

    /// Node `from` asks to be told when this node has settled `shard`.
    pub(crate) fn handoff_query(&self, from: &str, shard: u32, call: u64) {
        if shard >= self.placement().shards() {
            // No such shard: nothing to settle.
            self.link().send(from, &Envelope::Reply { call });
            return;
        }
        lock(&self.handoff().queries)
            .entry(shard)
            .or_default()
            .push((from.to_string(), call));
        self.answer_queries(shard);
    }

    /// Answers the queries about `shard` if it is settled here: not owned by
    /// this node, and no Conversation of it alive.
    fn answer_queries(&self, shard: u32) {
        let me = self.placement().node_id().clone();
        let owned = self
            .placement()
            .table()
            .owner_of_shard(shard)
            .is_some_and(|owner| *owner == me);
        if owned || lock(&self.handoff().live).contains_key(&shard) {
            return;
        }
        let waiting = lock(&self.handoff().queries).remove(&shard);
        for (node, call) in waiting.unwrap_or_default() {
            self.link().send(&node, &Envelope::Reply { call });
        }
    }
}
