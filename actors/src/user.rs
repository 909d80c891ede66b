//! The User entity: a user's online sessions, and fan-out to them.
//!
//! Its state is rebuilt from the node's session directory whenever it starts, so a
//! restarted User loses nothing. It stops when it has had no sessions for
//! `user_idle`.

use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::outbound::{SessionHandle, SessionId, SharedFrame};
use crate::region::{EntityKind, ShardRegion};

/// Messages to a User entity. None crosses nodes yet.
#[derive(Debug)]
pub enum UserMsg {
    /// A session of this user came online; answered once it is attached, so the
    /// session is online before its `welcome` is sent.
    Attach(SessionHandle, RpcReplyPort<()>),
    /// A session went away.
    Detach(SessionId),
    /// Pushes a frame to every session of the user except `except`.
    Deliver {
        /// The frame, encoded at most once per encoding.
        frame: SharedFrame,
        /// The sending session, which has its `ack` instead.
        except: Option<SessionId>,
    },
    /// Closes every session of the user (operator kick).
    Kick,
    /// Re-reads the session directory (after a restart).
    Refresh,
    /// Periodic idle check.
    Tick,
    /// Last message of a passivated entity.
    Stop,
}

impl ractor::Message for UserMsg {}

/// The User actor.
#[derive(Debug)]
pub struct User;

/// How a User starts.
#[derive(Debug)]
pub struct UserArgs {
    /// User id.
    pub user: String,
    /// The region, for the session directory and passivation.
    pub region: ShardRegion,
}

/// A User's state.
#[derive(Debug)]
pub struct UserState {
    user: String,
    region: ShardRegion,
    sessions: Vec<SessionHandle>,
    /// When the last session left (None while any is attached).
    empty_since: Option<Instant>,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Actor for User {
    type Msg = UserMsg;
    type State = UserState;
    type Arguments = UserArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let sessions: Vec<SessionHandle> = args
            .region
            .sessions()
            .of(&args.user)
            .into_iter()
            .filter(|s| !s.is_closed())
            .collect();
        let idle = args.region.settings().user_idle;
        let me = myself.clone();
        let ticker = crate::spawn_ticker(
            me,
            (idle / 2).max(std::time::Duration::from_millis(50)),
            || UserMsg::Tick,
        );
        let empty_since = sessions.is_empty().then(Instant::now);
        Ok(UserState {
            user: args.user,
            region: args.region,
            sessions,
            empty_since,
            _ticker: ticker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            UserMsg::Attach(handle, reply) => {
                if !state.sessions.iter().any(|s| s.id() == handle.id()) {
                    state.sessions.push(handle);
                }
                state.empty_since = None;
                let _ = reply.send(());
            }
            UserMsg::Detach(id) => {
                state.sessions.retain(|s| s.id() != id);
                if state.sessions.is_empty() {
                    state.empty_since = Some(Instant::now());
                }
            }
            UserMsg::Deliver { frame, except } => {
                let mut dead = false;
                for s in &state.sessions {
                    if Some(s.id()) == except {
                        continue;
                    }
                    if !s.push(frame.clone()) {
                        dead = true;
                    }
                }
                if dead {
                    state.sessions.retain(|s| !s.is_closed());
                }
            }
            UserMsg::Kick => {
                for s in &state.sessions {
                    s.close(crate::outbound::CloseReason::Kicked);
                }
            }
            UserMsg::Refresh => {
                for s in state.region.sessions().of(&state.user) {
                    if !s.is_closed() && !state.sessions.iter().any(|x| x.id() == s.id()) {
                        state.sessions.push(s);
                    }
                }
            }
            UserMsg::Tick => {
                state.sessions.retain(|s| !s.is_closed());
                if state.sessions.is_empty() && state.empty_since.is_none() {
                    state.empty_since = Some(Instant::now());
                }
                let idle = state.region.settings().user_idle;
                if state.empty_since.is_some_and(|t| t.elapsed() >= idle)
                    && state
                        .region
                        .passivate(EntityKind::User, &state.user, myself.get_id())
                {
                    let _ = myself.send_message(UserMsg::Stop);
                }
            }
            UserMsg::Stop => {
                // A session attached after the idle check but before the removal took
                // effect: hand it to a fresh User, which rebuilds from the directory.
                if !state.sessions.is_empty() {
                    state.region.tell_user(&state.user, UserMsg::Refresh);
                }
                myself.stop(Some("passivated".into()));
            }
        }
        Ok(())
    }
}
