//! The lifecycle every entity shares: idle ticks, passivation (idle, or asked
//! under pressure), hand-off to another node, and the failure hooks that
//! exercise supervision. It travels as one message kind, [`Lifecycle`], which
//! each entity's message enum carries in a single variant, and is run by one
//! handler, [`on_lifecycle`] with [`settle`] after every message. A kind says
//! only what differs ([`Life`]): when it counts as idle, whether something is
//! in flight, whether leaving now would lose something, and what it does just
//! before it stops.
//!
//! ```text
//! Tick           idle (Life::is_idle) and not asked already → asked: Idle
//! Passivate(r)   asked: r (the registry's pressure round)
//! HandOff        handing off: stop as soon as quiet (the region sends nothing more)
//! Fail / Panic   an error / a panic in the handler (tests and operators)
//!
//! settle, after every message, once quiet (Life::is_quiet):
//!   handing off                     → before_stop, stop
//!   asked Idle, no longer idle      → forget the ask (busy again)
//!   asked Pressure, may not leave   → keep the ask, try after the next message
//!   otherwise                       → leave the registry if nothing is queued
//!                                     for it (ShardRegion::passivate), then
//!                                     before_stop and stop; a refused idle ask
//!                                     is forgotten, a refused pressure ask kept
//! ```

use ractor::{ActorProcessingErr, ActorRef};

use super::{EntityKind, PassivateReason, ShardRegion};

/// A lifecycle message (see the module docs). Other crates make only the
/// failure hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle(Event);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Tick,
    Passivate(PassivateReason),
    HandOff,
    Fail,
    Panic,
}

impl Lifecycle {
    /// Makes the entity fail (an error from its handler), to exercise
    /// supervision.
    pub fn fail() -> Self {
        Self(Event::Fail)
    }

    /// Makes the entity panic in its handler, to exercise supervision.
    pub fn panic() -> Self {
        Self(Event::Panic)
    }

    /// The periodic idle check.
    pub(crate) fn tick() -> Self {
        Self(Event::Tick)
    }

    /// The region asks the entity to passivate.
    pub(crate) fn passivate(reason: PassivateReason) -> Self {
        Self(Event::Passivate(reason))
    }

    /// The entity's shard moved to another node: finish what was accepted,
    /// then stop.
    pub(crate) fn hand_off() -> Self {
        Self(Event::HandOff)
    }

    /// Whether this is the idle check.
    pub(crate) fn is_tick(&self) -> bool {
        self.0 == Event::Tick
    }
}

/// Where an entity stands in its lifecycle; part of its state.
#[derive(Debug, Default)]
pub(crate) struct Stage {
    asked: Option<PassivateReason>,
    handing_off: bool,
    /// Counted messages handled (see `registry`): the entity may leave the
    /// registry only when the registry sent no more than this.
    handled: u64,
}

impl Stage {
    /// One more counted message handled.
    pub(crate) fn count(&mut self) {
        self.handled += 1;
    }
}

/// What a kind's state tells the shared lifecycle (see the module docs).
pub(crate) trait Life {
    /// The entity's messages.
    type Msg: ractor::Message;
    /// The kind, for the registry.
    const KIND: EntityKind;

    /// Its stage, the region it runs in, and its key in its kind's registry.
    fn parts(&mut self) -> (&mut Stage, &ShardRegion, &str);

    /// Its stage.
    fn stage(&mut self) -> &mut Stage {
        self.parts().0
    }
    /// Whether it has had nothing to do for its idle time (it may tidy up
    /// first, e.g. drop closed sessions).
    fn is_idle(&mut self) -> bool;
    /// Whether nothing is in flight that stopping would cut off.
    fn is_quiet(&self) -> bool {
        true
    }
    /// Whether leaving under pressure now loses nothing.
    fn may_leave(&self) -> bool {
        true
    }
    /// Just before it stops.
    fn before_stop(&mut self) {}
}

/// Handles a lifecycle message; [`settle`] follows, as after every message.
pub(crate) fn on_lifecycle<S: Life>(
    state: &mut S,
    msg: Lifecycle,
) -> Result<(), ActorProcessingErr> {
    match msg.0 {
        Event::Tick => {
            if state.stage().asked.is_none() && state.is_idle() {
                state.stage().asked = Some(PassivateReason::Idle);
            }
        }
        Event::Passivate(reason) => state.stage().asked = Some(reason),
        Event::HandOff => state.stage().handing_off = true,
        Event::Fail => return Err("failure requested".into()),
        #[allow(clippy::panic)] // The point of this message.
        Event::Panic => panic!("panic requested"),
    }
    Ok(())
}

/// Stops the entity if it was asked to and can (see the module docs).
pub(crate) fn settle<S: Life>(state: &mut S, myself: &ActorRef<S::Msg>) {
    if !state.is_quiet() {
        return;
    }
    if state.stage().handing_off {
        state.before_stop();
        myself.stop(Some("handed off".into()));
        return;
    }
    let Some(reason) = state.stage().asked else {
        return;
    };
    match reason {
        PassivateReason::Idle if !state.is_idle() => {
            state.stage().asked = None; // Busy again since the idle check.
            return;
        }
        PassivateReason::Pressure if !state.may_leave() => return,
        _ => {}
    }
    let (stage, region, key) = state.parts();
    let left = region.passivate(S::KIND, key, myself.get_id(), stage.handled, reason);
    if left {
        state.before_stop();
        myself.stop(Some("passivated".into()));
    } else if reason == PassivateReason::Idle {
        state.stage().asked = None;
    }
}
