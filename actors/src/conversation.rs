//! The Conversation entity: the one place a conversation's seqs are handed out.
//!
//! A send goes through, in order:
//! 1. access (the two users of a dm; the members of a group),
//! 2. the idempotency window (memory first, then the store, so a retry after a
//!    restart still finds its seq),
//! 3. a seq from the current block (a new block is reserved in the store when it
//!    runs out, so two owners of one conversation never collide),
//! 4. group commit: messages accumulate while one write is in flight; when it is
//!    durable, every message of that write is acked, in seq order, and fanned out
//!    to the members' User entities; then the next accumulated batch is written.
//!
//! Group membership is also owned here, so a membership change and a send are
//! never interleaved, and so is the bound on the groups one user belongs to
//! (`max_groups_per_user`): a create or an add that would take a member past it
//! is refused with `invalid`, naming the member.
//!
//! - `access`: a request the asker may not use is answered without starting
//!   the entity, from the node's cache of the groups it owns.
//! - `send`: the send pipeline (access, idempotency, seqs, group commit, fan-out).
//! - `answer`: [`Answer`], the `ack`/`reject` a send is owed, given even when the
//!   entity fails.
//! - `dedup`: the recent acks of the idempotency window.
//! - `groups`: membership and access; create, add, remove, leave, info, and the
//!   groups-per-user bound.
//! - `reads`: history pages and read positions.
//! - `typing`: `typing` to the other members, rate-limited, never stored.
//!
//! Before its first message an entity passes its hand-off gate (see
//! `region::handoff`): a conversation that just moved here waits until its
//! previous owner's writes are settled, so its seqs never overtake theirs. The
//! store's dedup is the last word on retries: a message whose key the store
//! already holds is acked with the first seq, never stored twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chorus_store::{GroupRecord, HistoryQuery, MessageStore, SeqBlock};
use chorus_wire::cluster::{EntityEnvelope, GroupOp};
use chorus_wire::{ConvId, ErrorCode, ServerFrame, TypingState};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use self::access::GroupCache;
use self::dedup::{RecentAcks, SendKey};
use self::send::Pending;
use crate::budget::Held;
use crate::region::entity::Entity;
use crate::region::lifecycle::{self, Life, Lifecycle, Stage};
use crate::region::registry::EntityMessage;
use crate::region::{EntityKind, ShardRegion, bad_key};
use crate::remote::{SessionRef, UNREACHABLE};
use crate::settings::Settings;

pub(crate) mod access;
mod answer;
mod dedup;
mod groups;
mod reads;
mod send;
mod typing;

pub use self::answer::Answer;
pub use self::send::Written;

/// A `send` on its way in.
#[derive(Debug)]
pub struct SendRequest {
    /// Sender's user id.
    pub sender: String,
    /// The `ack` or `reject` the sending session is owed (it does not get the `msg`).
    pub answer: Answer,
    /// Text, already validated.
    pub body: String,
}

pub use crate::remote::Request;

/// Messages to a Conversation entity. Those that may cross nodes have an envelope
/// in `chorus_wire::cluster::EntityEnvelope`. The last four are the entity's
/// lifecycle, sent by itself or by the region, never through the registry.
#[derive(Debug)]
pub enum ConversationMsg {
    /// A chat message to store and deliver.
    Send(SendRequest),
    /// A page of history.
    History(Request, HistoryQuery),
    /// A member read up to `seq`.
    Read {
        /// Who read.
        user: String,
        /// Up to which seq.
        seq: u64,
        /// The reading session's budget units, held until the position is
        /// stored (`read` has no answer to carry them); none when it came from
        /// another node.
        held: Option<Held>,
    },
    /// Creates this group.
    GroupCreate(Request, String, Vec<String>),
    /// Adds members (owner only).
    GroupAdd(Request, Vec<String>),
    /// Removes members (owner only).
    GroupRemove(Request, Vec<String>),
    /// The asking member leaves.
    GroupLeave(Request),
    /// The group's state (members only).
    GroupInfo(Request),
    /// A member started or stopped typing: forwarded to the other members,
    /// never stored (protocol 1.1).
    Typing {
        /// Who types.
        user: String,
        /// `start` or `stop`.
        state: TypingState,
        /// The typing session, told `error` if it may not.
        reply: SessionRef,
    },
    /// The in-flight write finished (sent by the entity's write task).
    Persisted(Written),
    /// Idle ticks, passivation, hand-off (the shard moved: finish what was
    /// accepted, then stop) and failure hooks: see `region::lifecycle`.
    Lifecycle(Lifecycle),
}

impl ractor::Message for ConversationMsg {}

impl EntityMessage for ConversationMsg {
    fn counted(&self) -> bool {
        !matches!(self, Self::Persisted(_) | Self::Lifecycle(_))
    }

    fn lifecycle(msg: Lifecycle) -> Self {
        Self::Lifecycle(msg)
    }
}

impl ConversationMsg {
    /// The message of a group operation asked by `req`.
    pub(crate) fn group(req: Request, op: GroupOp) -> Self {
        match op {
            GroupOp::Create { name, members } => Self::GroupCreate(req, name, members),
            GroupOp::Add(members) => Self::GroupAdd(req, members),
            GroupOp::Remove(members) => Self::GroupRemove(req, members),
            GroupOp::Leave => Self::GroupLeave(req),
            GroupOp::Info => Self::GroupInfo(req),
        }
    }

    /// Answers the message as refused, the way the entity would: `reject` for a
    /// send, `error` for a request with a `ref`, nothing for a `read`.
    pub(crate) fn refuse(self, code: ErrorCode, message: &str) {
        match self {
            Self::Send(req) => req.answer.reject(code, message),
            Self::History(req, _)
            | Self::GroupCreate(req, ..)
            | Self::GroupAdd(req, _)
            | Self::GroupRemove(req, _)
            | Self::GroupLeave(req)
            | Self::GroupInfo(req) => error(&req, code, message),
            Self::Typing { reply, .. } => typing::refuse(&reply, code, message),
            _ => {}
        }
    }
}

impl ShardRegion {
    /// Sends to the Conversation entity of `conv`, spawning it if needed.
    pub fn tell_conversation(&self, conv: &ConvId, msg: ConversationMsg) {
        self.route::<Conversation>(conv, msg, 0, true);
    }

    /// The running actor of a conversation, if any (for tests and operators).
    pub fn conversation_actor(&self, conv: &ConvId) -> Option<ActorRef<ConversationMsg>> {
        self.registry::<Conversation>().get(&conv.to_string())
    }

    /// What this node knows of the groups it owns.
    pub(crate) fn group_cache(&self) -> &GroupCache {
        self.shared::<Conversation>()
    }
}

impl Entity for Conversation {
    const KIND: EntityKind = EntityKind::Conversation;
    type Key = ConvId;
    type Shared = GroupCache;

    fn actor() -> Self {
        Conversation
    }

    fn shard_key(conv: &ConvId) -> String {
        conv.to_string()
    }

    fn arguments(region: &ShardRegion, conv: &ConvId) -> ConversationArgs {
        ConversationArgs {
            conv: conv.clone(),
            region: region.clone(),
        }
    }

    fn cap(settings: &Settings) -> usize {
        settings.max_conversations
    }

    /// What this node knows of the groups it owns, for access checks.
    fn shared(settings: &Settings) -> GroupCache {
        GroupCache::new(settings.group_cache_members)
    }

    /// A conversation that does not run here is spawned only for a request
    /// that passes the access check (see `access`).
    fn deliver(region: &ShardRegion, conv: &ConvId, msg: ConversationMsg) {
        region.local_conversation(conv, &conv.to_string(), msg);
    }

    /// `send` becomes `ConvSend` (its answer is then owed by the owner's
    /// node), `history` `ConvHistory`, `read` `ConvRead`, the group operations
    /// `ConvGroup`, `typing` `ConvTyping`; the entity's own messages stay here.
    fn forward(
        region: &ShardRegion,
        node: &Arc<str>,
        conv: &ConvId,
        msg: ConversationMsg,
        hops: u8,
    ) {
        let conv = conv.to_string();
        match msg {
            ConversationMsg::Send(SendRequest {
                sender,
                answer,
                body,
            }) => {
                let session = answer.session();
                if let SessionRef::Local(handle) = session {
                    region.link().await_answer(node, handle, answer.id());
                }
                let envelope = EntityEnvelope::ConvSend {
                    conv,
                    sender,
                    session: session.addr(region.link()),
                    client_id: answer.id().to_string(),
                    body,
                };
                if region.link().send_entity(node, hops, envelope) {
                    answer.forwarded();
                } else {
                    if let SessionRef::Local(handle) = answer.session() {
                        region.link().answered(handle.id(), answer.id());
                    }
                    answer.reject(ErrorCode::Internal, UNREACHABLE);
                }
            }
            ConversationMsg::History(req, query) => {
                let envelope = EntityEnvelope::ConvHistory {
                    conv,
                    request: req.envelope(region.link()),
                    after: query.after,
                    before: query.before,
                    limit: query.limit,
                };
                if !region.link().send_entity(node, hops, envelope) {
                    req.unreachable();
                }
            }
            // The budget units of a read stay here: it has no answer to bring them back.
            ConversationMsg::Read { user, seq, .. } => {
                region
                    .link()
                    .send_entity(node, hops, EntityEnvelope::ConvRead { conv, user, seq });
            }
            ConversationMsg::GroupCreate(req, name, members) => {
                forward_group(
                    region,
                    node,
                    hops,
                    conv,
                    req,
                    GroupOp::Create { name, members },
                );
            }
            ConversationMsg::GroupAdd(req, members) => {
                forward_group(region, node, hops, conv, req, GroupOp::Add(members));
            }
            ConversationMsg::GroupRemove(req, members) => {
                forward_group(region, node, hops, conv, req, GroupOp::Remove(members));
            }
            ConversationMsg::GroupLeave(req) => {
                forward_group(region, node, hops, conv, req, GroupOp::Leave);
            }
            ConversationMsg::GroupInfo(req) => {
                forward_group(region, node, hops, conv, req, GroupOp::Info);
            }
            ConversationMsg::Typing { user, state, reply } => {
                let envelope = EntityEnvelope::ConvTyping {
                    conv,
                    user,
                    state,
                    reply: reply.addr(region.link()),
                };
                region.link().send_entity(node, hops, envelope);
            }
            ConversationMsg::Persisted(_) | ConversationMsg::Lifecycle(_) => {}
        }
    }

    /// `ConvSend`, `ConvHistory`, `ConvRead`, `ConvGroup` and `ConvTyping` back
    /// into messages.
    fn receive(
        region: &ShardRegion,
        from: &str,
        hops: u8,
        msg: EntityEnvelope,
    ) -> Result<(), EntityEnvelope> {
        match msg {
            EntityEnvelope::ConvSend {
                conv,
                sender,
                session,
                client_id,
                body,
            } => {
                let Some(session) = region.session_ref(session) else {
                    return Ok(());
                };
                let Ok(conv_id @ (ConvId::Dm(..) | ConvId::Group(_))) = ConvId::parse(&conv) else {
                    session.reject(&client_id, ErrorCode::Invalid, "invalid conversation", None);
                    {
                        bad_key(from, &conv);
                        return Ok(());
                    }
                };
                let req = SendRequest {
                    sender,
                    answer: Answer::new(session, client_id),
                    body,
                };
                region.route::<Conversation>(&conv_id, ConversationMsg::Send(req), hops, true);
            }
            EntityEnvelope::ConvHistory {
                conv,
                request: req,
                after,
                before,
                limit,
            } => {
                let Some(req) = region.request_from(req) else {
                    return Ok(());
                };
                let Ok(conv_id) = ConvId::parse(&conv) else {
                    {
                        bad_key(from, &conv);
                        return Ok(());
                    }
                };
                let query = HistoryQuery {
                    after,
                    before,
                    limit,
                };
                region.route::<Conversation>(
                    &conv_id,
                    ConversationMsg::History(req, query),
                    hops,
                    true,
                );
            }
            EntityEnvelope::ConvRead { conv, user, seq } => {
                let Ok(conv_id) = ConvId::parse(&conv) else {
                    {
                        bad_key(from, &conv);
                        return Ok(());
                    }
                };
                let read = ConversationMsg::Read {
                    user,
                    seq,
                    held: None,
                };
                region.route::<Conversation>(&conv_id, read, hops, true);
            }
            EntityEnvelope::ConvGroup {
                conv,
                request: req,
                op,
            } => {
                let Some(req) = region.request_from(req) else {
                    return Ok(());
                };
                let Ok(conv_id @ ConvId::Group(_)) = ConvId::parse(&conv) else {
                    {
                        bad_key(from, &conv);
                        return Ok(());
                    }
                };
                let msg = ConversationMsg::group(req, op);
                region.route::<Conversation>(&conv_id, msg, hops, true);
            }
            EntityEnvelope::ConvTyping {
                conv,
                user,
                state,
                reply,
            } => {
                let Some(reply) = region.session_ref(reply) else {
                    return Ok(());
                };
                let Ok(conv_id @ (ConvId::Dm(..) | ConvId::Group(_))) = ConvId::parse(&conv) else {
                    bad_key(from, &conv);
                    return Ok(());
                };
                let msg = ConversationMsg::Typing { user, state, reply };
                region.route::<Conversation>(&conv_id, msg, hops, true);
            }
            other => return Err(other),
        }
        Ok(())
    }
}

fn forward_group(
    region: &ShardRegion,
    node: &str,
    hops: u8,
    conv: String,
    req: Request,
    op: GroupOp,
) {
    let envelope = EntityEnvelope::ConvGroup {
        conv,
        request: req.envelope(region.link()),
        op,
    };
    if !region.link().send_entity(node, hops, envelope) {
        req.unreachable();
    }
}

/// The Conversation actor.
#[derive(Debug)]
pub struct Conversation;

/// How a Conversation starts.
#[derive(Debug)]
pub struct ConversationArgs {
    /// Which conversation.
    pub conv: ConvId,
    /// The region, for fan-out and passivation.
    pub region: ShardRegion,
}

/// What the entity knows about its group (groups only).
#[derive(Debug)]
enum GroupState {
    /// Not read from the store yet.
    Unknown,
    /// The store has no such group.
    Absent,
    /// The group.
    Present(GroupRecord),
}

/// A Conversation's state.
pub struct ConversationState {
    conv: ConvId,
    key: String,
    region: ShardRegion,
    store: Arc<dyn MessageStore>,
    /// Next seq to hand out and the end of the reserved block; `None` until the
    /// first send needs one.
    block: Option<SeqBlock>,
    /// Highest seq known durable (loaded lazily).
    last_seq: Option<u64>,
    group: GroupState,
    /// Recent acks, for retries.
    recent: RecentAcks,
    /// Retries of a message that is pending or in flight, by its key: they get
    /// its answer.
    waiting: HashMap<SendKey, Vec<Answer>>,
    /// Messages with their seqs, waiting for the write in flight to end.
    pending: Vec<Pending>,
    /// Whether a write is in flight (its batch travels with it).
    writing: bool,
    /// Whether the dm has been linked into both users' conversation lists.
    linked: bool,
    /// When each member's last `typing` was forwarded (the rate limit).
    typing: typing::Recent,
    last_activity: Instant,
    /// Whether the hand-off gate was passed (before the first message).
    gated: bool,
    /// Asked to passivate or handed off: done as soon as nothing is pending
    /// or in flight.
    stage: Stage,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Life for ConversationState {
    type Msg = ConversationMsg;
    const KIND: EntityKind = EntityKind::Conversation;

    fn parts(&mut self) -> (&mut Stage, &ShardRegion, &str) {
        (&mut self.stage, &self.region, &self.key)
    }

    /// No counted message for `conversation_idle`.
    fn is_idle(&mut self) -> bool {
        self.last_activity.elapsed() >= self.region.settings().conversation_idle
    }

    /// Nothing pending or in flight: every accepted message is answered first.
    fn is_quiet(&self) -> bool {
        self.pending.is_empty() && !self.writing
    }
}

impl Actor for Conversation {
    type Msg = ConversationMsg;
    type State = ConversationState;
    type Arguments = ConversationArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Nothing here may fail: loading happens lazily on the first message, so a
        // store outage turns into `internal` answers, not a dead entity.
        let idle = args.region.settings().conversation_idle;
        let me = myself.clone();
        let ticker = crate::spawn_ticker(
            me,
            (idle / 2).max(std::time::Duration::from_millis(50)),
            || ConversationMsg::Lifecycle(Lifecycle::tick()),
        );
        let group = match args.conv {
            ConvId::Group(_) => GroupState::Unknown,
            _ => GroupState::Absent,
        };
        Ok(ConversationState {
            key: args.conv.to_string(),
            conv: args.conv,
            store: args.region.store().clone(),
            region: args.region,
            block: None,
            last_seq: None,
            group,
            recent: RecentAcks::default(),
            waiting: HashMap::new(),
            pending: Vec::new(),
            writing: false,
            linked: false,
            typing: typing::Recent::default(),
            last_activity: Instant::now(),
            gated: false,
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
            state.last_activity = Instant::now();
            if !state.gated {
                state.pass_gate(myself.get_id()).await;
            }
        }
        match msg {
            ConversationMsg::Send(req) => state.on_send(&myself, req).await,
            ConversationMsg::Persisted(written) => state.on_persisted(&myself, written),
            ConversationMsg::History(req, query) => state.on_history(req, query).await,
            ConversationMsg::Read { user, seq, held } => state.on_read(user, seq, held).await,
            ConversationMsg::GroupCreate(req, name, members) => {
                state.on_group_create(req, name, members).await
            }
            ConversationMsg::GroupAdd(req, members) => {
                state.on_group_change(req, members, true).await
            }
            ConversationMsg::GroupRemove(req, members) => {
                state.on_group_change(req, members, false).await
            }
            ConversationMsg::GroupLeave(req) => state.on_group_leave(req).await,
            ConversationMsg::GroupInfo(req) => state.on_group_info(req).await,
            ConversationMsg::Typing {
                user,
                state: typing,
                reply,
            } => state.on_typing(user, typing, reply).await,
            ConversationMsg::Lifecycle(msg) => lifecycle::on_lifecycle(state, msg)?,
        }
        lifecycle::settle(state, &myself);
        Ok(())
    }
}

fn error(req: &Request, code: ErrorCode, message: impl Into<String>) {
    req.reply.send(ServerFrame::Error {
        reference: Some(req.reference.clone()),
        code,
        message: message.into(),
    });
}

impl ConversationState {
    /// Waits at the hand-off gate (see `region::handoff`), once.
    async fn pass_gate(&mut self, me: ractor::ActorId) {
        self.gated = true;
        let gate = self.region.gate(&self.key, Some(me));
        if gate.is_open() {
            return;
        }
        let started = Instant::now();
        gate.wait().await;
        metrics::histogram!("chorus_handoff_wait_seconds").record(started.elapsed().as_secs_f64());
    }

    async fn last_seq(&mut self) -> Result<u64, String> {
        if let Some(s) = self.last_seq {
            return Ok(s);
        }
        let s = self
            .store
            .last_seq(&self.key)
            .await
            .map_err(|e| e.to_string())?;
        self.last_seq = Some(s);
        Ok(s)
    }
}
