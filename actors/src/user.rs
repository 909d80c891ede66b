//! The User entity: a user's online sessions, and fan-out to them.
//!
//! Its state is rebuilt from the node's session directory whenever it starts, so a
//! restarted User loses nothing. It stops when it has had no sessions for
//! `user_idle`, or when its kind is over its cap and it is among the least
//! recently used — unless it holds sessions of other nodes (which attached once
//! and would be lost) or, in a cluster, is still in its replay window.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use chorus_wire::ServerFrame;
use chorus_wire::cluster::{EntityEnvelope, Envelope, NestedFrame};

use self::presence::{Next, Presence, Watch};
use crate::outbound::{OutFrame, SessionId, SharedFrame};
use crate::region::entity::Entity;
use crate::region::lifecycle::{self, Life, Lifecycle, Stage};
use crate::region::registry::EntityMessage;
use crate::region::{EntityKind, ShardRegion};
use crate::remote::SessionRef;
use crate::settings::Settings;

mod presence;

/// How long a new User remembers what it delivered, for sessions that are
/// re-attached to it after it moved: their nodes re-attach them when their
/// placement changes (and again two seconds later, see
/// [`ShardRegion::rebalance`](crate::region::ShardRegion::rebalance)), and what was
/// fanned out before they arrived reaches them then. Clients drop what they
/// already have by `(conv, seq)`.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(5);

/// Frames remembered within [`REPLAY_WINDOW`], at most.
const REPLAY_FRAMES: usize = 512;

/// Who is told that a session is attached.
#[derive(Debug)]
pub enum Attached {
    /// The opening session on this node, waiting to send its `welcome`.
    Port(RpcReplyPort<()>),
    /// A call from the session's node, answered with [`Envelope::Reply`].
    Call(u64),
    /// Nobody (a re-attachment after the User moved).
    Nobody,
}

/// Messages to a User entity. Those that may cross nodes have an envelope in
/// `chorus_wire::cluster::EntityEnvelope`. The last three are the entity's
/// lifecycle, sent by itself or by the region, never through the registry.
#[derive(Debug)]
pub enum UserMsg {
    /// A session of this user came online; answered once it is attached, so the
    /// session is online before its `welcome` is sent.
    Attach(SessionRef, Attached),
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
    /// A session watches this user's presence (protocol 1.1): it is told the
    /// presence at once, then every change. A renewal (its node sends its
    /// watches again after the placement changed, see `rebalance`) is told only
    /// if this entity did not have it: the entity is new, and the watcher may
    /// have missed a change.
    Watch {
        /// The watcher.
        session: SessionRef,
        /// Sent again by the watcher's node after a placement change.
        renew: bool,
    },
    /// A session stops watching.
    Unwatch(SessionId),
    /// Looks at the presence again (sent by the entity itself: the end of the
    /// flap window, or a poll for sessions of dead nodes).
    PresenceCheck,
    /// Idle ticks, passivation, hand-off (the user's shard moved: it stops
    /// without restarting here) and failure hooks: see `region::lifecycle`.
    Lifecycle(Lifecycle),
}

impl ractor::Message for UserMsg {}

impl ShardRegion {
    /// Sends to the User entity of `user`, spawning it if needed.
    pub fn tell_user(&self, user: &str, msg: UserMsg) {
        self.route::<User>(&user.to_string(), msg, 0, true);
    }

    /// Writes when the last session of `user` closed, in the background (a
    /// failure is logged: the time is a courtesy, nothing waits for it).
    pub(crate) fn store_last_seen(&self, user: &str, at_ms: u64) {
        let store = self.store().clone();
        let user = user.to_string();
        tokio::spawn(async move {
            match store.set_last_seen(&user, at_ms).await {
                Ok(()) => metrics::counter!("chorus_presence_last_seen_written_total").increment(1),
                Err(e) => {
                    metrics::counter!("chorus_presence_last_seen_failures_total").increment(1);
                    tracing::warn!(%user, error = %e, "writing last seen failed");
                }
            }
        });
    }

    /// Pushes a frame nobody stores (`typing`) to every session of `user`:
    /// through its User entity, unless that entity would run on this node and
    /// does not — then every session of the user is in this node's directory,
    /// and starting an actor for a frame that is not kept would be waste.
    pub(crate) fn push_ephemeral(&self, user: &str, frame: &SharedFrame) {
        if self.user_is_dormant(user) {
            for session in self.sessions().of(user) {
                session.push(frame.clone());
            }
        } else {
            let frame = frame.clone();
            self.tell_user(
                user,
                UserMsg::Deliver {
                    frame,
                    except: None,
                },
            );
        }
    }
}

impl Entity for User {
    const KIND: EntityKind = EntityKind::User;
    type Key = String;

    type Shared = ();

    fn actor() -> Self {
        User
    }

    fn shard_key(user: &String) -> String {
        format!("user:{user}")
    }

    fn registry_key(user: &String) -> String {
        user.clone()
    }

    fn arguments(region: &ShardRegion, user: &String) -> UserArgs {
        UserArgs {
            user: user.clone(),
            region: region.clone(),
        }
    }

    fn cap(settings: &Settings) -> usize {
        settings.max_users
    }

    fn shared(_: &Settings) {}

    /// A User with sessions or watchers here restarts at once: its sessions
    /// must keep receiving, its watchers hearing.
    fn failed(region: &ShardRegion, user: &str) {
        if !region.sessions().of(user).is_empty() || !region.sessions().watchers_of(user).is_empty()
        {
            region.tell_user(user, UserMsg::Refresh);
        }
    }

    /// The messages that cross nodes become `UserAttach`, `UserDetach`,
    /// `UserDeliver`, `UserKick`, `UserWatch` and `UserUnwatch` envelopes.
    fn forward(region: &ShardRegion, node: &Arc<str>, user: &String, msg: UserMsg, hops: u8) {
        let user = user.clone();
        let envelope = match msg {
            UserMsg::Attach(session, reply) => {
                let call = match reply {
                    Attached::Call(call) => call,
                    Attached::Nobody => 0,
                    Attached::Port(port) => {
                        let (call, answered) = region.link().call(node);
                        tokio::spawn(async move {
                            if answered.await.is_ok() {
                                let _ = port.send(());
                            }
                        });
                        call
                    }
                };
                EntityEnvelope::UserAttach {
                    user,
                    session: session.addr(region.link()),
                    call,
                }
            }
            UserMsg::Detach(session) => EntityEnvelope::UserDetach { user, session },
            UserMsg::Deliver { frame, except } => EntityEnvelope::UserDeliver {
                user,
                frame: NestedFrame(frame.frame().clone()),
                except,
            },
            UserMsg::Kick => EntityEnvelope::UserKick { user },
            UserMsg::Watch { session, renew } => EntityEnvelope::UserWatch {
                user,
                session: session.addr(region.link()),
                renew,
            },
            UserMsg::Unwatch(session) => EntityEnvelope::UserUnwatch { user, session },
            // Housekeeping of a local actor: meaningless elsewhere.
            UserMsg::Refresh | UserMsg::PresenceCheck | UserMsg::Lifecycle(_) => return,
        };
        region.link().send_entity(node, hops, envelope);
    }

    /// `UserAttach`, `UserDetach`, `UserDeliver`, `UserKick`, `UserWatch` and
    /// `UserUnwatch` back into messages.
    fn receive(
        region: &ShardRegion,
        _from: &str,
        hops: u8,
        msg: EntityEnvelope,
    ) -> Result<(), EntityEnvelope> {
        match msg {
            EntityEnvelope::UserAttach {
                user,
                session,
                call,
            } => {
                if let Some(session) = region.session_ref(session) {
                    let reply = if call == 0 {
                        Attached::Nobody
                    } else {
                        Attached::Call(call)
                    };
                    region.route::<User>(&user, UserMsg::Attach(session, reply), hops, true);
                }
            }
            EntityEnvelope::UserDetach { user, session } => {
                region.route::<User>(&user, UserMsg::Detach(session), hops, true);
            }
            EntityEnvelope::UserDeliver {
                user,
                frame,
                except,
            } => {
                let frame = OutFrame::new(frame.0);
                region.route::<User>(&user, UserMsg::Deliver { frame, except }, hops, true);
            }
            EntityEnvelope::UserKick { user } => {
                region.route::<User>(&user, UserMsg::Kick, hops, true)
            }
            EntityEnvelope::UserWatch {
                user,
                session,
                renew,
            } => {
                if let Some(session) = region.session_ref(session) {
                    let msg = UserMsg::Watch { session, renew };
                    region.route::<User>(&user, msg, hops, true);
                }
            }
            EntityEnvelope::UserUnwatch { user, session } => {
                region.route::<User>(&user, UserMsg::Unwatch(session), hops, true);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

impl EntityMessage for UserMsg {
    fn counted(&self) -> bool {
        !matches!(self, Self::Lifecycle(_) | Self::PresenceCheck)
    }

    fn lifecycle(msg: Lifecycle) -> Self {
        Self::Lifecycle(msg)
    }
}

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
    sessions: Vec<SessionRef>,
    /// When the last session left (None while any is attached).
    empty_since: Option<Instant>,
    /// What was delivered in the first [`REPLAY_WINDOW`] of this actor's life,
    /// with the session each frame skipped.
    replay: VecDeque<(SharedFrame, Option<SessionId>)>,
    replay_until: Instant,
    /// What its watchers know.
    presence: Presence,
    /// Whether a `PresenceCheck` is on its way.
    check_pending: bool,
    stage: Stage,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Life for UserState {
    type Msg = UserMsg;
    const KIND: EntityKind = EntityKind::User;

    fn parts(&mut self) -> (&mut Stage, &ShardRegion, &str) {
        (&mut self.stage, &self.region, &self.user)
    }

    /// No session for `user_idle` (closed ones dropped first), and nobody
    /// watching.
    fn is_idle(&mut self) -> bool {
        self.sessions.retain(|s| !s.is_closed());
        if self.presence.is_watched() {
            return false;
        }
        if self.sessions.is_empty() && self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
        }
        let idle = self.region.settings().user_idle;
        self.empty_since.is_some_and(|t| t.elapsed() >= idle)
    }

    /// Under pressure a User leaves only if that loses nothing: sessions of
    /// other nodes attached once and would be lost; in a cluster, a User in its
    /// replay window still owes sessions re-attached after a move what they
    /// missed. Sessions of this node are found in the directory by the next
    /// User.
    fn may_leave(&self) -> bool {
        let remote = self.sessions.iter().any(|s| s.remote_node().is_some());
        let replaying = self.region.link().is_clustered() && Instant::now() < self.replay_until;
        !remote && !replaying && !self.presence_pins()
    }
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
        let sessions: Vec<SessionRef> = args
            .region
            .sessions()
            .of(&args.user)
            .into_iter()
            .filter(|s| !s.is_closed())
            .map(SessionRef::Local)
            .collect();
        let idle = args.region.settings().user_idle;
        let me = myself.clone();
        let ticker = crate::spawn_ticker(
            me,
            (idle / 2).max(std::time::Duration::from_millis(50)),
            || UserMsg::Lifecycle(Lifecycle::tick()),
        );
        let empty_since = sessions.is_empty().then(Instant::now);
        let mut presence = Presence::new(!sessions.is_empty(), None);
        // Watchers of this node, after a restart or a move (the one whose
        // `Watch` started it, too: that message tells it the presence); those
        // of other nodes watch again when their placement changes.
        for watcher in args.region.sessions().watchers_of(&args.user) {
            presence.watch(&args.user, SessionRef::Local(watcher), Watch::Restored);
        }
        Ok(UserState {
            user: args.user,
            region: args.region,
            sessions,
            empty_since,
            replay: VecDeque::new(),
            replay_until: Instant::now() + REPLAY_WINDOW,
            presence,
            check_pending: false,
            stage: Stage::default(),
            _ticker: ticker,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if msg.counted() {
            state.stage.count();
        }
        match msg {
            UserMsg::Attach(session, reply) => {
                let node = session.remote_node().map(str::to_string);
                if matches!(reply, Attached::Nobody) && Instant::now() < state.replay_until {
                    // Re-attached after a move: what it missed while on its way.
                    for (frame, except) in &state.replay {
                        if *except != Some(session.id()) {
                            session.push(frame.clone());
                        }
                    }
                }
                if let Some(old) = state.sessions.iter_mut().find(|s| s.id() == session.id()) {
                    *old = session;
                } else {
                    state.sessions.push(session);
                }
                state.empty_since = None;
                state.presence_changed(&myself);
                match (reply, node) {
                    (Attached::Port(port), _) => {
                        let _ = port.send(());
                    }
                    (Attached::Call(call), Some(node)) => {
                        state.region.link().send(&node, &Envelope::Reply { call });
                    }
                    _ => {}
                }
            }
            UserMsg::Detach(id) => {
                state.sessions.retain(|s| s.id() != id);
                if state.sessions.is_empty() {
                    state.empty_since = Some(Instant::now());
                }
                state.presence_changed(&myself);
            }
            UserMsg::Deliver { frame, except } => {
                if Instant::now() >= state.replay_until {
                    if !state.replay.is_empty() {
                        state.replay = VecDeque::new();
                    }
                } else if !matches!(frame.frame(), ServerFrame::Typing { .. }) {
                    // `typing` is never replayed (docs/protocol.md §5.5), nor
                    // may it push a message out of the replay.
                    if state.replay.len() == REPLAY_FRAMES {
                        state.replay.pop_front();
                    }
                    state.replay.push_back((frame.clone(), except));
                }
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
                    state.presence_changed(&myself);
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
                        state.sessions.push(SessionRef::Local(s));
                    }
                }
                state.presence_changed(&myself);
            }
            UserMsg::Watch { session, renew } => {
                if state.presence.needs_last_seen() {
                    match state.region.store().last_seen(&state.user).await {
                        Ok(at) => state.presence.stored_last_seen(at),
                        // Told without it (`null`); read again for the next watcher.
                        Err(e) => {
                            tracing::warn!(user = %state.user, error = %e, "reading last seen failed")
                        }
                    }
                }
                let how = if renew { Watch::Renewed } else { Watch::New };
                state.presence.watch(&state.user, session, how);
                // A watched User with sessions elsewhere starts polling them.
                state.presence_changed(&myself);
            }
            UserMsg::Unwatch(id) => state.presence.unwatch(id),
            UserMsg::PresenceCheck => {
                state.check_pending = false;
                state.sessions.retain(|s| !s.is_closed());
                if state.sessions.is_empty() && state.empty_since.is_none() {
                    state.empty_since = Some(Instant::now());
                }
                state.presence_changed(&myself);
            }
            // The new owner of a handed-off User hears of every session from
            // its node's re-attachment.
            UserMsg::Lifecycle(msg) => lifecycle::on_lifecycle(state, msg)?,
        }
        lifecycle::settle(state, &myself);
        Ok(())
    }
}

impl UserState {
    /// Whether watchers keep this User running (a User pinned by them stays
    /// under pressure, see [`Life::may_leave`]).
    fn presence_pins(&self) -> bool {
        // `may_leave` has `&self`: closed watchers are dropped by the next
        // tick's `is_idle`.
        self.presence.has_watchers()
    }

    /// After the sessions changed, or a check came due: lets the presence
    /// show what it must, and schedules the next check.
    fn presence_changed(&mut self, myself: &ActorRef<UserMsg>) {
        let remote = self.sessions.iter().any(|s| s.remote_node().is_some());
        let (next, offline_at) = self.presence.sessions_are(
            &self.user,
            !self.sessions.is_empty(),
            remote,
            Instant::now(),
            crate::now_ms(),
        );
        if let Some(at_ms) = offline_at {
            self.region.store_last_seen(&self.user, at_ms);
        }
        if let Next::CheckIn(after) = next
            && !self.check_pending
        {
            self.check_pending = true;
            myself.send_after(after, || UserMsg::PresenceCheck);
        }
    }
}
