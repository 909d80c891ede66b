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
//! - `groups`: create, add, remove, leave, info, and the groups-per-user bound.
//!
//! Before its first message an entity passes its hand-off gate (see
//! `region::handoff`): a conversation that just moved here waits until its
//! previous owner's writes are settled, so its seqs never overtake theirs. The
//! store's dedup is the last word on retries: a message whose key the store
//! already holds is acked with the first seq, never stored twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use chorus_store::{
    AppendBatch, AppendOutcome, Appended, DEDUP_WINDOW_MS, DedupKey, GroupRecord, HistoryQuery,
    MessageStore, SeqBlock,
};
use chorus_wire::fit::{self, Keep};
use chorus_wire::{ConvId, ErrorCode, Message, ServerFrame};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::budget::Held;
use crate::outbound::OutFrame;
use crate::region::registry::EntityMessage;
use crate::region::{EntityKind, PassivateReason, ShardRegion};
use crate::remote::SessionRef;
use crate::user::UserMsg;

mod groups;

/// Client message ids remembered in memory per conversation (the store remembers
/// all of them for 24 h).
const DEDUP_CACHE: usize = 4096;

/// Group counts of a create or an add running at once.
const GROUP_COUNTS_IN_FLIGHT: usize = 16;

/// A member and how many groups the store counted for them.
type GroupCount = (String, chorus_store::StoreResult<u64>);

/// A `send` on its way in.
#[derive(Debug)]
pub struct SendRequest {
    /// Sender's user id.
    pub sender: String,
    /// The sending session: gets the `ack` or `reject`, not the `msg`.
    pub session: SessionRef,
    /// The client's message id.
    pub client_id: String,
    /// Text, already validated.
    pub body: String,
}

/// A [`SendRequest`] taken over by its Conversation, which now owes it an answer.
struct Accepted {
    sender: String,
    session: SessionRef,
    client_id: String,
    body: String,
}

impl SendRequest {
    /// Takes the request apart to forward it to another node: (sender, session,
    /// client id, body). The request left behind has nothing to answer.
    pub(crate) fn into_parts(self) -> (String, SessionRef, String, String) {
        let a = self.accept();
        (a.sender, a.session, a.client_id, a.body)
    }

    /// Takes the request over; the request left behind has nothing to answer.
    fn accept(mut self) -> Accepted {
        Accepted {
            sender: std::mem::take(&mut self.sender),
            session: self.session.clone(),
            client_id: std::mem::take(&mut self.client_id),
            body: std::mem::take(&mut self.body),
        }
    }
}

impl Drop for SendRequest {
    /// A request dropped before its Conversation accepted it (ids are never empty,
    /// so one still holding its id was not accepted) was lost on the way: most
    /// often queued behind a failure, as ractor drops a failed actor's mailbox.
    /// Answer it, so that the client retries now instead of waiting for an ack
    /// that never comes.
    fn drop(&mut self) {
        if !self.client_id.is_empty() {
            reject(
                &self.session,
                &self.client_id,
                ErrorCode::Internal,
                "conversation restarted; retry",
            );
        }
    }
}

/// A request that carries a `ref` and is answered to one session.
#[derive(Debug)]
pub struct Request {
    /// Who asks.
    pub user: String,
    /// The request's `ref`.
    pub reference: String,
    /// Where the answer goes.
    pub reply: SessionRef,
}

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
    /// Makes the entity fail, to exercise supervision (tests and operators).
    Fail,
    /// Makes the entity panic in its handler, to exercise supervision.
    Panic,
    /// The in-flight write finished (sent by the entity to itself).
    Persisted(Result<AppendOutcome, String>),
    /// Periodic idle check.
    Tick,
    /// The region asks the entity to passivate (its kind is over its cap).
    Passivate(PassivateReason),
    /// The conversation's shard moved to another node: finish what was
    /// accepted, then stop. The region no longer sends it anything.
    HandOff,
}

impl ractor::Message for ConversationMsg {}

impl EntityMessage for ConversationMsg {
    fn counted(&self) -> bool {
        !matches!(
            self,
            Self::Persisted(_) | Self::Tick | Self::Passivate(_) | Self::HandOff
        )
    }

    fn passivate_request(reason: PassivateReason) -> Self {
        Self::Passivate(reason)
    }
}

impl ConversationMsg {
    /// Answers the message as refused, the way the entity would: `reject` for a
    /// send, `error` for a request with a `ref`, nothing for a `read`.
    pub(crate) fn refuse(self, code: ErrorCode, message: &str) {
        match self {
            Self::Send(req) => {
                let req = req.accept();
                reject(&req.session, &req.client_id, code, message);
            }
            Self::History(req, _)
            | Self::GroupCreate(req, ..)
            | Self::GroupAdd(req, _)
            | Self::GroupRemove(req, _)
            | Self::GroupLeave(req)
            | Self::GroupInfo(req) => error(&req, code, message),
            _ => {}
        }
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

#[derive(Debug)]
struct Pending {
    message: Message,
    session: SessionRef,
    started: Instant,
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
    /// `(sender, client id) → (seq, ts_ms)` of recent acked messages.
    dedup: HashMap<(String, String), (u64, u64)>,
    dedup_order: VecDeque<(String, String)>,
    /// Sessions waiting on a message that is pending or in flight, by its key.
    waiting: HashMap<(String, String), Vec<SessionRef>>,
    pending: Vec<Pending>,
    inflight: Option<Vec<Pending>>,
    /// Whether the dm has been linked into both users' conversation lists.
    linked: bool,
    last_activity: Instant,
    /// Counted messages handled (see `region::registry`): the entity may leave
    /// the registry only when the registry sent no more than this.
    handled: u64,
    /// Whether the hand-off gate was passed (before the first message).
    gated: bool,
    /// Asked to passivate: done as soon as nothing is pending or in flight,
    /// unless a message arrived meanwhile.
    passivate: Option<PassivateReason>,
    /// Handed off: stop once nothing is pending or in flight.
    handing_off: bool,
    /// The idle check; stops with the state.
    _ticker: crate::Ticker,
}

impl Drop for ConversationState {
    /// Runs however the entity ends: ractor calls `post_stop` only on a clean stop,
    /// not after a failure, which is when sends can still be pending.
    fn drop(&mut self) {
        // Anything still waiting gets an answer rather than silence (only possible
        // after a failure; a passivated entity has nothing pending). The write in
        // flight is not ours to judge: its task answers its senders with the real
        // outcome (see `flush`), so a client never retries a message that was in
        // fact stored. Retries that waited on it are told to retry; the new
        // incarnation finds the stored seq in the idempotency window.
        for p in self.inflight.take().into_iter().flatten() {
            let key = (p.message.from.clone(), p.message.id.clone());
            for session in self.waiting.remove(&key).unwrap_or_default() {
                reject(
                    &session,
                    &p.message.id,
                    ErrorCode::Internal,
                    "conversation restarted; retry",
                );
            }
        }
        let stuck: Vec<Pending> = self.pending.drain(..).collect();
        for p in stuck {
            let key = (p.message.from.clone(), p.message.id.clone());
            let retries = self.waiting.remove(&key).unwrap_or_default();
            for session in std::iter::once(&p.session).chain(&retries) {
                reject(
                    session,
                    &p.message.id,
                    ErrorCode::Internal,
                    "conversation restarted; retry",
                );
            }
        }
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
            || ConversationMsg::Tick,
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
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            waiting: HashMap::new(),
            pending: Vec::new(),
            inflight: None,
            linked: false,
            last_activity: Instant::now(),
            handled: 0,
            gated: false,
            passivate: None,
            handing_off: false,
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
            state.handled += 1;
            state.last_activity = Instant::now();
            if !state.gated {
                state.pass_gate(myself.get_id()).await;
            }
        }
        match msg {
            ConversationMsg::Send(req) => state.on_send(&myself, req).await,
            ConversationMsg::Persisted(result) => {
                state.on_persisted(&myself, result);
                state.settle(&myself);
            }
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
            ConversationMsg::Fail => return Err("failure requested".into()),
            #[allow(clippy::panic)] // The point of this message.
            ConversationMsg::Panic => panic!("panic requested"),
            ConversationMsg::Tick => {
                let idle = state.region.settings().conversation_idle;
                if state.passivate.is_none() && state.last_activity.elapsed() >= idle {
                    state.passivate = Some(PassivateReason::Idle);
                    state.settle(&myself);
                }
            }
            ConversationMsg::Passivate(reason) => {
                state.passivate = Some(reason);
                state.settle(&myself);
            }
            ConversationMsg::HandOff => {
                state.handing_off = true;
                state.settle(&myself);
            }
        }
        Ok(())
    }
}

fn reject(session: &SessionRef, id: &str, code: ErrorCode, message: &str) {
    session.reject(id, code, message, None);
}

fn error(req: &Request, code: ErrorCode, message: impl Into<String>) {
    req.reply.send(ServerFrame::Error {
        reference: Some(req.reference.clone()),
        code,
        message: message.into(),
    });
}

/// The `ack` of message `m`, as the store stored it: at its own seq, or at the
/// first seq of its key.
fn ack_of(m: &Message, appended: Appended) -> ServerFrame {
    let (seq, ts_ms) = match appended {
        Appended::Stored => (m.seq, m.ts_ms),
        Appended::Duplicate(first) => (first.seq, first.ts_ms),
    };
    ServerFrame::Ack {
        id: m.id.clone(),
        conv: m.conv.clone(),
        seq,
        ts_ms,
    }
}

fn group_frame(reference: &str, g: &GroupRecord) -> ServerFrame {
    ServerFrame::Group {
        reference: reference.to_string(),
        id: g.id.clone(),
        name: g.name.clone(),
        owner: g.owner.clone(),
        members: g.members.clone(),
    }
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

    /// Whether nothing is pending or in flight.
    fn is_quiet(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_none()
    }

    /// Stops when asked to and quiet: a handed-off entity at once (the region
    /// sends it nothing more); a passivating one if it can leave the registry,
    /// which it cannot while something is queued for it — then it stays, as
    /// that was activity.
    fn settle(&mut self, myself: &ActorRef<ConversationMsg>) {
        if !self.is_quiet() {
            return;
        }
        if self.handing_off {
            myself.stop(Some("handed off".into()));
            return;
        }
        let Some(reason) = self.passivate.take() else {
            return;
        };
        let idle = self.region.settings().conversation_idle;
        if reason == PassivateReason::Idle && self.last_activity.elapsed() < idle {
            return; // Busy again since the idle check.
        }
        if self.region.passivate(
            EntityKind::Conversation,
            &self.key,
            myself.get_id(),
            self.handled,
            reason,
        ) {
            myself.stop(Some("passivated".into()));
        }
    }

    /// Loads the group record once.
    async fn group(&mut self) -> Result<Option<&GroupRecord>, String> {
        if let (GroupState::Unknown, ConvId::Group(id)) = (&self.group, &self.conv) {
            self.group = match self.store.group(id).await {
                Ok(Some(g)) => GroupState::Present(g),
                Ok(None) => GroupState::Absent,
                Err(e) => return Err(e.to_string()),
            };
            self.publish_group();
        }
        Ok(match &self.group {
            GroupState::Present(g) => Some(g),
            _ => None,
        })
    }

    /// Whether `user` may use this conversation: `Err((code, message))` if not.
    async fn check_access(&mut self, user: &str) -> Result<(), (ErrorCode, String)> {
        match &self.conv {
            ConvId::Dm(..) => {
                if self.conv.is_dm_party(user) {
                    Ok(())
                } else {
                    Err((
                        ErrorCode::Forbidden,
                        "not a party of this conversation".into(),
                    ))
                }
            }
            ConvId::Group(_) => match self.group().await {
                Err(e) => Err((ErrorCode::Internal, format!("store: {e}"))),
                Ok(None) => Err((ErrorCode::NotFound, "no such group".into())),
                Ok(Some(g)) if g.members.binary_search_by(|m| m.as_str().cmp(user)).is_ok() => {
                    Ok(())
                }
                Ok(Some(_)) => Err((ErrorCode::Forbidden, "not a member of this group".into())),
            },
            ConvId::Live(_) => Err((ErrorCode::Invalid, "live rooms have no history".into())),
        }
    }

    fn members(&self) -> Vec<String> {
        match (&self.conv, &self.group) {
            (ConvId::Dm(a, b), _) if a == b => vec![a.clone()],
            (ConvId::Dm(a, b), _) => vec![a.clone(), b.clone()],
            (_, GroupState::Present(g)) => g.members.clone(),
            _ => Vec::new(),
        }
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

    async fn on_send(&mut self, myself: &ActorRef<ConversationMsg>, req: SendRequest) {
        let req = req.accept();
        if let Err((code, message)) = self.check_access(&req.sender).await {
            return reject(&req.session, &req.client_id, code, &message);
        }
        let key = (req.sender.clone(), req.client_id.clone());
        let now = crate::now_ms();
        // Idempotent retry: the same sender and id in this conversation within 24 h.
        if let Some(&(seq, ts_ms)) = self.dedup.get(&key)
            && now.saturating_sub(ts_ms) < DEDUP_WINDOW_MS
        {
            req.session.send(ServerFrame::Ack {
                id: req.client_id,
                conv: self.key.clone(),
                seq,
                ts_ms,
            });
            return;
        }
        if let Some(waiters) = self.waiting.get_mut(&key) {
            waiters.push(req.session);
            return;
        }
        let dedup_key = DedupKey {
            conv: self.key.clone(),
            sender: req.sender.clone(),
            client_id: req.client_id.clone(),
        };
        match self.store.find_dedup(&dedup_key, now).await {
            Ok(Some(hit)) => {
                self.remember(key, hit.seq, hit.ts_ms);
                req.session.send(ServerFrame::Ack {
                    id: req.client_id,
                    conv: self.key.clone(),
                    seq: hit.seq,
                    ts_ms: hit.ts_ms,
                });
                return;
            }
            Ok(None) => {}
            Err(e) => {
                return reject(
                    &req.session,
                    &req.client_id,
                    ErrorCode::Internal,
                    &format!("store: {e}"),
                );
            }
        }
        let seq = match self.next_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                return reject(
                    &req.session,
                    &req.client_id,
                    ErrorCode::Internal,
                    &format!("store: {e}"),
                );
            }
        };
        let message = Message {
            conv: self.key.clone(),
            seq,
            id: req.client_id,
            from: req.sender,
            body: req.body,
            ts_ms: now,
        };
        self.waiting.insert(key, Vec::new());
        self.pending.push(Pending {
            message,
            session: req.session,
            started: Instant::now(),
        });
        if self.inflight.is_none() {
            self.flush(myself);
        }
    }

    async fn next_seq(&mut self) -> Result<u64, String> {
        if let Some(b) = &mut self.block
            && b.start < b.end
        {
            let seq = b.start;
            b.start += 1;
            return Ok(seq);
        }
        let size = self.region.settings().seq_block.max(1);
        let mut block = self
            .store
            .allocate_seq_block(&self.key, size)
            .await
            .map_err(|e| e.to_string())?;
        let seq = block.start;
        block.start += 1;
        self.block = Some(block);
        Ok(seq)
    }

    /// Starts writing everything pending as one batch.
    fn flush(&mut self, myself: &ActorRef<ConversationMsg>) {
        if self.pending.is_empty() {
            return;
        }
        let batch: Vec<Pending> = std::mem::take(&mut self.pending);
        let mut append = AppendBatch {
            messages: batch.iter().map(|p| p.message.clone()).collect(),
            links: Vec::new(),
        };
        if !self.linked && matches!(self.conv, ConvId::Dm(..)) {
            append.links = self
                .members()
                .into_iter()
                .map(|u| (u, self.key.clone()))
                .collect();
        }
        // Who to answer if this entity dies before the write completes.
        let senders: Vec<(SessionRef, Message)> = batch
            .iter()
            .map(|p| (p.session.clone(), p.message.clone()))
            .collect();
        self.inflight = Some(batch);
        let store = self.store.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = store.append(append).await.map_err(|e| e.to_string());
            let Err(ractor::MessagingErr::SendErr(ConversationMsg::Persisted(result))) =
                me.send_message(ConversationMsg::Persisted(result))
            else {
                return;
            };
            // The entity failed meanwhile: the outcome is still ours to tell.
            for (i, (session, m)) in senders.into_iter().enumerate() {
                match &result {
                    Ok(outcome) => {
                        session.send(ack_of(&m, outcome.of(i)));
                    }
                    Err(_) => reject(
                        &session,
                        &m.id,
                        ErrorCode::Internal,
                        "message could not be stored; retry",
                    ),
                }
            }
        });
    }

    fn on_persisted(
        &mut self,
        myself: &ActorRef<ConversationMsg>,
        result: Result<AppendOutcome, String>,
    ) {
        let batch = self.inflight.take().unwrap_or_default();
        match result {
            Ok(outcome) => {
                self.linked = true;
                let members = self.members();
                for (i, p) in batch.into_iter().enumerate() {
                    let m = p.message;
                    let key = (m.from.clone(), m.id.clone());
                    let appended = outcome.of(i);
                    let ack = OutFrame::new(ack_of(&m, appended));
                    p.session.push(ack.clone());
                    for w in self.waiting.remove(&key).unwrap_or_default() {
                        w.push(ack.clone());
                    }
                    let (seq, ts_ms) = match appended {
                        Appended::Stored => (m.seq, m.ts_ms),
                        Appended::Duplicate(first) => {
                            // Stored before (by an earlier owner, or before a
                            // restart): acked with its first seq, and not
                            // delivered again.
                            metrics::counter!("chorus_messages_deduplicated_total").increment(1);
                            self.remember(key, first.seq, first.ts_ms);
                            continue;
                        }
                    };
                    self.last_seq = Some(self.last_seq.unwrap_or(0).max(seq));
                    metrics::counter!("chorus_messages_acked_total").increment(1);
                    metrics::histogram!("chorus_ack_latency_seconds")
                        .record(p.started.elapsed().as_secs_f64());
                    self.remember(key, seq, ts_ms);
                    let except = Some(p.session.id());
                    let frame = OutFrame::new(ServerFrame::Msg(m));
                    for member in &members {
                        self.region.tell_user(
                            member,
                            UserMsg::Deliver {
                                frame: frame.clone(),
                                except,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(conv = %self.key, error = %e, "append failed: rejecting the batch");
                for p in batch {
                    let key = (p.message.from.clone(), p.message.id.clone());
                    reject(
                        &p.session,
                        &p.message.id,
                        ErrorCode::Internal,
                        "message could not be stored; retry",
                    );
                    for w in self.waiting.remove(&key).unwrap_or_default() {
                        reject(
                            &w,
                            &p.message.id,
                            ErrorCode::Internal,
                            "message could not be stored; retry",
                        );
                    }
                }
            }
        }
        self.flush(myself);
    }

    fn remember(&mut self, key: (String, String), seq: u64, ts_ms: u64) {
        if self.dedup.insert(key.clone(), (seq, ts_ms)).is_none() {
            self.dedup_order.push_back(key);
            while self.dedup_order.len() > DEDUP_CACHE {
                if let Some(old) = self.dedup_order.pop_front() {
                    self.dedup.remove(&old);
                }
            }
        }
    }

    async fn on_history(&mut self, req: Request, query: HistoryQuery) {
        if let Err((code, message)) = self.check_access(&req.user).await {
            return error(&req, code, message);
        }
        let store = self.store.clone();
        let conv = self.key.clone();
        let max_frame = self.region.settings().max_frame;
        let region = self.region.clone();
        // A page read forward keeps its oldest messages when it must be cut; one
        // read backward (or the newest) keeps its newest.
        let keep = if query.after.is_some() {
            Keep::First
        } else {
            Keep::Last
        };
        // Reading can take a while; the entity keeps sequencing meanwhile.
        tokio::spawn(async move {
            let turn = region.store_read_turn().await;
            let page = store.history(&conv, query).await;
            drop(turn);
            match page {
                Ok(page) => {
                    req.reply.send(fit::history_page(
                        req.reference,
                        conv,
                        page.messages,
                        page.more,
                        keep,
                        max_frame,
                    ));
                }
                Err(e) => error(&req, ErrorCode::Internal, format!("store: {e}")),
            }
        });
    }

    async fn on_read(&mut self, user: String, seq: u64, held: Option<Held>) {
        if self.check_access(&user).await.is_err() {
            return; // `read` has no answer; a non-member's read is ignored.
        }
        let Ok(last) = self.last_seq().await else {
            return;
        };
        let seq = seq.min(last);
        if seq == 0 {
            return;
        }
        let store = self.store.clone();
        let region = self.region.clone();
        let conv = self.key.clone();
        let others: Vec<String> = self.members().into_iter().filter(|m| *m != user).collect();
        tokio::spawn(async move {
            let _held = held;
            match store.set_read(&user, &conv, seq).await {
                Ok(position) => {
                    let frame = OutFrame::new(ServerFrame::Receipt {
                        conv,
                        user,
                        seq: position,
                    });
                    for member in others {
                        region.tell_user(
                            &member,
                            UserMsg::Deliver {
                                frame: frame.clone(),
                                except: None,
                            },
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "storing a read position failed"),
            }
        });
    }
}
