//! The registry of one entity kind: key → running actor, with what passivation
//! and the cap on running entities need.
//!
//! **Nothing delivered is left behind.** [`Registry::deliver`] counts, per
//! entry, the messages it sends; the entity counts those it handled (the same
//! variants: see [`EntityMessage::counted`]). An entity may leave the registry only while the
//! two agree ([`Registry::remove_if_idle`]): its mailbox then holds nothing the
//! registry sent, and since every send happens under the registry's lock,
//! nothing can be sent to it after the removal. The entity can stop at once,
//! and the next message for its key starts a fresh one.
//!
//! **The cap.** Each entry remembers the registry tick of its last message. When
//! a spawn takes the registry past its cap, the least recently used entries (a
//! batch of them, so the scan that finds them is paid once per batch of spawns)
//! are asked to passivate. Each decides itself: one with work in flight finishes
//! it first, one that cannot stop without losing something (a User with
//! sessions on other nodes, a room with viewers) stays. The cap is therefore a
//! target the registry steers to, not a wall.
//!
//! **Checks before a spawn.** A kind may hold messages for a key whose access is
//! being looked up (see `access`): they wait in the registry, in order, and are
//! handed over when the lookup ends, so a session's requests to one entity are
//! never reordered by a lookup.

use std::collections::HashMap;

use parking_lot::{Mutex, MutexGuard};

use ractor::{ActorId, ActorRef};

use super::EntityKind;
use super::lifecycle::Lifecycle;

/// What the registry needs of an entity kind's messages.
pub(crate) trait EntityMessage: ractor::Message {
    /// Whether this message counts: it is one [`Registry::deliver`] may send.
    /// The entity counts the same ones when it handles them; what it sends
    /// itself (ticks, write completions) and what the region sends it directly
    /// (a request to passivate, a hand-off) is not counted on either side.
    fn counted(&self) -> bool;

    /// The kind's message carrying a lifecycle message (`lifecycle`).
    fn lifecycle(msg: Lifecycle) -> Self;
}

/// Why an entity passivates, as counted in `chorus_entity_passivations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassivateReason {
    /// Nothing to do for its idle time.
    Idle,
    /// Its kind is over its cap and it was among the least recently used.
    Pressure,
}

impl PassivateReason {
    fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Pressure => "pressure",
        }
    }
}

/// One running entity.
struct Entry<M: ractor::Message> {
    actor: ActorRef<M>,
    /// Counted messages sent to it (see the module docs).
    delivered: u64,
    /// The registry tick of its last message.
    last_used: u64,
    /// Asked to passivate under pressure and not used since: not asked again.
    asked: bool,
}

/// What a kind's admission check says about a message for a key that has no
/// running entity.
pub(crate) enum Admission<M, R> {
    /// Spawn the entity and deliver.
    Spawn(M),
    /// Do not spawn: the caller answers the message, for this reason.
    Refuse(M, R),
    /// Hold the message until a lookup, which the caller starts, decides.
    Hold(M),
}

/// What the end of a lookup decides for one held message.
pub(crate) enum Released<M, R> {
    /// Deliver it, spawning the entity.
    Deliver(M),
    /// Answer it: refused, for this reason.
    Refuse(M, R),
    /// Route it again: its key no longer lives here.
    Reroute(M),
}

/// What became of a message given to [`Registry::deliver`].
pub(crate) enum Delivery<M, R> {
    /// Sent to the entity (or lost with a failed spawn, which is logged).
    Sent,
    /// The admission check refused it: answer it.
    Refused(M, R),
    /// Held for a lookup that the caller must start now.
    LookupNeeded,
    /// Held behind a lookup already running.
    Queued,
    /// Too many messages already wait for this key's lookup: answer it.
    Full(M),
}

struct Inner<M: ractor::Message> {
    running: HashMap<String, Entry<M>>,
    /// Messages per key waiting for an access lookup, in arrival order.
    held: HashMap<String, Vec<M>>,
    /// Bumped by every delivery: the LRU clock.
    tick: u64,
    /// Spawns since the last pressure round.
    spawns_since_round: usize,
}

/// The registry of one entity kind.
pub(crate) struct Registry<M: ractor::Message> {
    kind: EntityKind,
    /// Running entities this kind steers to (see the module docs).
    cap: usize,
    inner: Mutex<Inner<M>>,
}

/// Messages at most that wait for one key's lookup; more are refused as
/// `overloaded`, so a flood for one key cannot pile up.
pub(crate) const MAX_HELD_PER_KEY: usize = 64;

impl<M: EntityMessage> Registry<M> {
    pub(crate) fn new(kind: EntityKind, cap: usize) -> Self {
        Self {
            kind,
            cap: cap.max(1),
            inner: Mutex::new(Inner {
                running: HashMap::new(),
                held: HashMap::new(),
                tick: 0,
                spawns_since_round: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<M>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section keeps it whole between statements), so a poisoned lock
        // is usable.
        self.inner.lock()
    }

    /// The pressure batch: how many entries one round asks to passivate beyond
    /// the excess, and how many spawns pass before the next round.
    fn batch(&self) -> usize {
        (self.cap / 64).max(1)
    }

    /// Sends `msg` to the running actor of `key`; with none, asks `admit`
    /// whether to spawn one (with `spawn`), refuse, or hold the message for a
    /// lookup. Everything happens under the registry lock (see the module docs).
    /// An actor that died before the supervisor forgot it is replaced once.
    pub(crate) fn deliver<R>(
        &self,
        key: &str,
        spawn: impl Fn() -> Option<ActorRef<M>>,
        admit: impl FnOnce(M) -> Admission<M, R>,
        msg: M,
    ) -> Delivery<M, R> {
        let mut inner = self.lock();
        if let Some(held) = inner.held.get_mut(key) {
            if held.len() >= MAX_HELD_PER_KEY {
                return Delivery::Full(msg);
            }
            held.push(msg);
            return Delivery::Queued;
        }
        let msg = if inner.running.contains_key(key) {
            msg
        } else {
            match admit(msg) {
                Admission::Spawn(msg) => msg,
                Admission::Refuse(msg, why) => return Delivery::Refused(msg, why),
                Admission::Hold(msg) => {
                    inner.held.insert(key.to_string(), vec![msg]);
                    return Delivery::LookupNeeded;
                }
            }
        };
        self.send_locked(&mut inner, key, &spawn, msg);
        Delivery::Sent
    }

    /// Sends to the running actor of `key`, spawning it if needed; the lock is
    /// held by the caller.
    fn send_locked(
        &self,
        inner: &mut Inner<M>,
        key: &str,
        spawn: &impl Fn() -> Option<ActorRef<M>>,
        msg: M,
    ) {
        let mut msg = msg;
        for _ in 0..2 {
            inner.tick += 1;
            let tick = inner.tick;
            let mut spawned = false;
            if !inner.running.contains_key(key) {
                let Some(actor) = spawn() else { return };
                inner.running.insert(
                    key.to_string(),
                    Entry {
                        actor,
                        delivered: 0,
                        last_used: tick,
                        asked: false,
                    },
                );
                spawned = true;
            }
            let Some(entry) = inner.running.get_mut(key) else {
                return;
            };
            let counted = msg.counted();
            match entry.actor.send_message(msg) {
                Ok(()) => {
                    if counted {
                        entry.delivered += 1;
                    }
                    entry.last_used = tick;
                    entry.asked = false;
                    if spawned {
                        self.gauge(inner);
                        self.after_spawn(inner, key);
                    }
                    return;
                }
                Err(ractor::MessagingErr::SendErr(back)) => {
                    inner.running.remove(key);
                    self.gauge(inner);
                    msg = back;
                }
                Err(_) => return,
            }
        }
    }

    /// Ends the lookup of `key`: each held message, in order, is given to
    /// `decide`, which delivers it (spawning the entity), or hands it back to be
    /// answered or routed elsewhere. Those come back in order; the others are
    /// sent before anything that arrives after the lookup, so nothing is
    /// reordered.
    pub(crate) fn release<R>(
        &self,
        key: &str,
        spawn: impl Fn() -> Option<ActorRef<M>>,
        mut decide: impl FnMut(M) -> Released<M, R>,
    ) -> Vec<Released<M, R>> {
        let mut inner = self.lock();
        let held = inner.held.remove(key).unwrap_or_default();
        let mut back = Vec::new();
        for msg in held {
            if inner.running.contains_key(key) {
                // Started meanwhile (a spawn from an earlier held message): it
                // checks access itself.
                self.send_locked(&mut inner, key, &spawn, msg);
                continue;
            }
            match decide(msg) {
                Released::Deliver(msg) => self.send_locked(&mut inner, key, &spawn, msg),
                other => back.push(other),
            }
        }
        back
    }

    /// A spawn took the registry to `len`: past the cap, and once per batch of
    /// spawns, asks the least recently used entries (not `fresh`, not already
    /// asked) to passivate.
    fn after_spawn(&self, inner: &mut Inner<M>, fresh: &str) {
        inner.spawns_since_round += 1;
        let len = inner.running.len();
        if len <= self.cap || inner.spawns_since_round < self.batch() {
            return;
        }
        inner.spawns_since_round = 0;
        let want = len - self.cap + self.batch();
        let mut candidates: Vec<(u64, &String)> = inner
            .running
            .iter()
            .filter(|(k, e)| !e.asked && k.as_str() != fresh)
            .map(|(k, e)| (e.last_used, k))
            .collect();
        if candidates.len() > want {
            candidates.select_nth_unstable_by_key(want, |(used, _)| *used);
            candidates.truncate(want);
        }
        let victims: Vec<String> = candidates.into_iter().map(|(_, k)| k.clone()).collect();
        metrics::counter!("chorus_entity_pressure_requests_total", "kind" => self.kind.label())
            .increment(victims.len() as u64);
        for key in victims {
            if let Some(entry) = inner.running.get_mut(&key) {
                entry.asked = true;
                let _ = entry.actor.send_message(M::lifecycle(Lifecycle::passivate(
                    PassivateReason::Pressure,
                )));
            }
        }
    }

    fn gauge(&self, inner: &Inner<M>) {
        metrics::gauge!("chorus_entities_running", "kind" => self.kind.label())
            .set(inner.running.len() as f64);
    }

    /// The running actor of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<ActorRef<M>> {
        self.lock().running.get(key).map(|e| e.actor.clone())
    }

    /// Removes every entity whose key `leaves` and returns them, under the lock:
    /// no message reaches them afterwards. (Messages held for a lookup stay:
    /// the lookup's end routes them by the placement of that moment.)
    pub(crate) fn remove_where(&self, leaves: impl Fn(&str) -> bool) -> Vec<(String, ActorRef<M>)> {
        let mut inner = self.lock();
        let keys: Vec<String> = inner
            .running
            .keys()
            .filter(|k| leaves(k))
            .cloned()
            .collect();
        let actors: Vec<(String, ActorRef<M>)> = keys
            .into_iter()
            .filter_map(|k| inner.running.remove(&k).map(|e| (k, e.actor)))
            .collect();
        if !actors.is_empty() {
            metrics::counter!(
                "chorus_entity_passivations_total",
                "kind" => self.kind.label(),
                "reason" => "handoff"
            )
            .increment(actors.len() as u64);
            self.gauge(&inner);
        }
        actors
    }
}

/// A [`Registry`] without its message type: what the region does with every
/// kind alike (counts, lookups, passivation, forgetting the dead). A typed
/// registry has these through the trait too.
pub(crate) trait AnyRegistry: Send + Sync {
    /// The registry itself, to be downcast to its kind's `Registry<M>`.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Running entities.
    fn len(&self) -> usize;
    /// Whether `key` has a running entity.
    fn contains(&self, key: &str) -> bool;
    /// Removes `key` if it maps to the actor `id` and that actor has handled
    /// every counted message sent to it (`handled`). True if it was removed:
    /// the entity may stop at once.
    fn remove_if_idle(&self, key: &str, id: ActorId, handled: u64, reason: PassivateReason)
    -> bool;
    /// Removes `key` if it still maps to the actor `id` (it died).
    fn remove_if(&self, key: &str, id: ActorId) -> bool;
}

impl<M: EntityMessage> AnyRegistry for Registry<M> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn len(&self) -> usize {
        self.lock().running.len()
    }

    fn contains(&self, key: &str) -> bool {
        self.lock().running.contains_key(key)
    }

    fn remove_if_idle(
        &self,
        key: &str,
        id: ActorId,
        handled: u64,
        reason: PassivateReason,
    ) -> bool {
        let mut inner = self.lock();
        let idle = inner
            .running
            .get(key)
            .is_some_and(|e| e.actor.get_id() == id && e.delivered == handled);
        if idle {
            inner.running.remove(key);
            self.gauge(&inner);
            metrics::counter!(
                "chorus_entity_passivations_total",
                "kind" => self.kind.label(),
                "reason" => reason.label()
            )
            .increment(1);
        }
        idle
    }

    fn remove_if(&self, key: &str, id: ActorId) -> bool {
        let mut inner = self.lock();
        if inner
            .running
            .get(key)
            .is_some_and(|e| e.actor.get_id() == id)
        {
            inner.running.remove(key);
            self.gauge(&inner);
            true
        } else {
            false
        }
    }
}
