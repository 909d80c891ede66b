//! The supervisor of every entity on this node: restart policy lives here alone.
//!
//! It is told of every failure (an error or a panic in a handler). It forgets
//! the dead actor and counts `chorus_actor_restarts_total{kind}`; the entity
//! restarts from the store on its next message, and its kind may do more at
//! once (`Entity::failed`: a User with sessions here restarts so its sessions
//! keep receiving). More than
//! `meltdown_restarts` failures of one kind within `meltdown_window` is a
//! meltdown: logged at error level and counted in
//! `chorus_supervisor_meltdowns_total{kind}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{EntityKind, RegionInner, ShardRegion};
use crate::settings::Settings;

/// The supervisor actor.
pub(super) struct EntitySupervisor;

pub(super) struct SupervisorArgs {
    pub(super) region: Arc<OnceLock<Weak<RegionInner>>>,
    pub(super) settings: Settings,
}

pub(super) struct SupervisorState {
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
                // It restarts on its next message; its kind may want more at once
                // (a User with sessions here restarts now, so they keep receiving).
                region.slot(kind).failed(&region, &key);
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                region.forget(cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
