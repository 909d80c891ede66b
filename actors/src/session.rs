//! The protocol logic of one authenticated connection, after `welcome`.
//!
//! The gateway (in the node) owns the socket, the handshake and the heartbeat; it
//! hands every later frame to [`Session::handle`]. A session validates content
//! (bad content is answered with `reject`/`error` and the connection stays open),
//! then routes the request to the entity that owns it. Answers come back through
//! the session's [`SessionHandle`].
//!
//! Backpressure instead of unbounded queues: every request takes its share of the
//! session's budget ([`crate::budget`]) until its answer is written; when the budget
//! is spent `handle_frame` waits, so the gateway stops reading the socket and TCP
//! pushes back on the client.

use chorus_store::{HistoryQuery, ListQuery};
use chorus_wire::fit;
use chorus_wire::ids::validate_id;
use chorus_wire::limits::{MAX_GROUP_NAME, MAX_REF};
use chorus_wire::{
    ClientFrame, ConvId, ConversationsPage, ErrorCode, LiveItem, ServerFrame, Target, Trailing,
};

pub use chorus_wire::identity::{Identity, Role, Roles};

use crate::budget::{AnswerKey, Held};
use crate::conversation::{ConversationMsg, Request, SendRequest};
use crate::live::LiveRoomMsg;
use crate::moderation::Outcome;
use crate::outbound::SessionHandle;
use crate::region::ShardRegion;
use crate::remote::SessionRef;
use crate::user::{Attached, UserMsg};

/// Live rooms one session may watch at once.
const MAX_ROOMS_PER_SESSION: usize = 16;

/// One authenticated connection's protocol state.
#[derive(Debug)]
pub struct Session {
    identity: Identity,
    handle: SessionHandle,
    region: ShardRegion,
    /// Live rooms this session watches, to leave them when it closes.
    rooms: Vec<String>,
}

impl Session {
    /// Brings a session online: registered on this node and attached to its User
    /// entity. Send `welcome` only after this returns (docs/protocol.md §7.5).
    pub async fn open(region: ShardRegion, identity: Identity, handle: SessionHandle) -> Self {
        region.sessions().register(&handle);
        // A User of this node that is not running finds the session in the directory
        // when it starts; an idle connection then costs no actor.
        if !region.user_is_dormant(&identity.user) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let port: ractor::RpcReplyPort<()> = tx.into();
            region.tell_user(
                &identity.user,
                UserMsg::Attach(SessionRef::Local(handle.clone()), Attached::Port(port)),
            );
            // If the User entity died before answering, the supervisor restarts it
            // from the session directory, which already holds this session.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        }
        Self {
            identity,
            handle,
            region,
            rooms: Vec::new(),
        }
    }

    /// The session's outbound handle.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// The authenticated identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Takes the session offline.
    pub fn close(&self) {
        for room in &self.rooms {
            self.leave_room(room, None);
        }
        self.region
            .sessions()
            .unregister(&self.identity.user, self.handle.id());
        // A User started from here on no longer finds the session; one running
        // must be told.
        if !self.region.user_is_dormant(&self.identity.user) {
            self.region
                .tell_user(&self.identity.user, UserMsg::Detach(self.handle.id()));
        }
    }

    fn user(&self) -> &str {
        &self.identity.user
    }

    fn error(&self, reference: Option<&str>, code: ErrorCode, message: impl Into<String>) {
        self.handle.send(ServerFrame::Error {
            reference: reference.map(|r| r.chars().take(MAX_REF).collect()),
            code,
            message: message.into(),
        });
    }

    fn reject(&self, id: &str, code: ErrorCode, message: impl Into<String>) {
        self.handle.reject(id, code, message, None);
    }

    fn request(&self, reference: String) -> Request {
        Request {
            user: self.user().to_string(),
            reference,
            reply: SessionRef::Local(self.handle.clone()),
        }
    }

    /// Handles one frame after `welcome`: checks the fields its answer is matched
    /// by, takes the request's share of the session's budget — waiting for it, which
    /// is where a client that pipelines requests is slowed down to the pace of its
    /// answers — then carries the request out.
    pub async fn handle_frame(&mut self, frame: ClientFrame) {
        let Some((weight, key)) = self.admit(&frame) else {
            return;
        };
        let budget = self.handle.budget();
        let held = budget.acquire(weight).await;
        let held = match (key, held) {
            (Some(key), Some(held)) => {
                budget.expect(key, held);
                None
            }
            // A `read` has no answer: it keeps its units until it is stored.
            (_, held) => held,
        };
        self.dispatch(frame, held).await;
    }

    /// What a request costs and what its answer is matched by; `None` when it
    /// was answered at once (its `ref` or id cannot be echoed, or it is a second
    /// `hello`).
    fn admit(&self, frame: &ClientFrame) -> Option<(u32, Option<AnswerKey>)> {
        let large = self.handle.budget().large();
        let by_ref = |reference: &String, weight: u32| {
            if reference.len() > MAX_REF {
                self.error(Some(reference), ErrorCode::Invalid, "ref is too long");
                return None;
            }
            Some((weight, Some(AnswerKey::Ref(reference.clone()))))
        };
        let by_id = |id: &String| {
            if let Err(e) = validate_id("id", id) {
                self.reject(id, ErrorCode::Invalid, e.to_string());
                return None;
            }
            Some((1, Some(AnswerKey::Id(id.clone()))))
        };
        match frame {
            ClientFrame::Hello { .. } => {
                self.error(None, ErrorCode::Invalid, "already authenticated");
                None
            }
            ClientFrame::Ping { .. } => Some((1, Some(AnswerKey::Pong))),
            ClientFrame::Send { id, .. } | ClientFrame::Danmaku { id, .. } => by_id(id),
            ClientFrame::Read { .. } => Some((1, None)),
            ClientFrame::History { reference, .. }
            | ClientFrame::Conversations { reference, .. }
            | ClientFrame::GroupCreate { reference, .. }
            | ClientFrame::GroupAdd { reference, .. }
            | ClientFrame::GroupRemove { reference, .. }
            | ClientFrame::GroupInfo { reference, .. }
            | ClientFrame::LiveJoin { reference, .. } => by_ref(reference, large),
            ClientFrame::GroupLeave { reference, .. }
            | ClientFrame::LiveLeave { reference, .. } => by_ref(reference, 1),
        }
    }

    /// Carries out an admitted request.
    async fn dispatch(&mut self, frame: ClientFrame, held: Option<Held>) {
        match frame {
            // Answered in `admit`.
            ClientFrame::Hello { .. } => {}
            ClientFrame::Ping { .. } => {
                self.handle.send(ServerFrame::Pong);
            }
            ClientFrame::Send { id, to, body } => self.on_send(id, to, body),
            ClientFrame::History {
                reference,
                conv,
                after,
                before,
                limit,
            } => self.on_history(reference, conv, after, before, limit),
            ClientFrame::Conversations { reference, page } => {
                self.on_conversations(reference, page)
            }
            ClientFrame::Read { conv, seq } => {
                if let Ok(conv @ (ConvId::Dm(..) | ConvId::Group(_))) = ConvId::parse(&conv) {
                    self.region.tell_conversation(
                        &conv,
                        ConversationMsg::Read {
                            user: self.user().to_string(),
                            seq,
                            held,
                        },
                    );
                }
            }
            ClientFrame::GroupCreate {
                reference,
                id,
                name,
                members,
            } => self.on_group_create(reference, id, name, members),
            ClientFrame::GroupAdd {
                reference,
                id,
                members,
            } => {
                if let Some(conv) = self.group_target(&reference, &id, &members) {
                    let req = self.request(reference);
                    self.region
                        .tell_conversation(&conv, ConversationMsg::GroupAdd(req, members));
                }
            }
            ClientFrame::GroupRemove {
                reference,
                id,
                members,
            } => {
                if let Some(conv) = self.group_target(&reference, &id, &members) {
                    let req = self.request(reference);
                    self.region
                        .tell_conversation(&conv, ConversationMsg::GroupRemove(req, members));
                }
            }
            ClientFrame::GroupLeave { reference, id } => {
                if let Some(conv) = self.group_target(&reference, &id, &[]) {
                    let req = self.request(reference);
                    self.region
                        .tell_conversation(&conv, ConversationMsg::GroupLeave(req));
                }
            }
            ClientFrame::GroupInfo { reference, id } => {
                if let Some(conv) = self.group_target(&reference, &id, &[]) {
                    let req = self.request(reference);
                    self.region
                        .tell_conversation(&conv, ConversationMsg::GroupInfo(req));
                }
            }
            ClientFrame::LiveJoin { reference, room } => self.on_live_join(reference, room),
            ClientFrame::LiveLeave { reference, room } => {
                if let Some(pos) = self.rooms.iter().position(|r| *r == room) {
                    let room = self.rooms.swap_remove(pos);
                    self.leave_room(&room, Some(reference));
                } else {
                    // Not watching it: leaving is already done.
                    self.handle.send(ServerFrame::Ok { reference });
                }
            }
            ClientFrame::Danmaku { id, room, body } => self.on_danmaku(id, room, body),
        }
    }

    fn on_send(&mut self, id: String, to: String, body: String) {
        let target = match Target::parse(&to) {
            Ok(t) => t,
            Err(e) => return self.reject(&id, ErrorCode::Invalid, e.to_string()),
        };
        let max_body = self.region.settings().max_body;
        if body.len() > max_body {
            return self.reject(
                &id,
                ErrorCode::TooLarge,
                format!("body of {} bytes exceeds {max_body}", body.len()),
            );
        }
        let Some(body) = self.moderate(&id, body) else {
            return;
        };
        let conv = target.conv_for(self.user());
        let req = SendRequest {
            sender: self.user().to_string(),
            session: SessionRef::Local(self.handle.clone()),
            client_id: id,
            body,
        };
        self.region
            .tell_conversation(&conv, ConversationMsg::Send(req));
    }

    /// Applies the word filter (docs/protocol.md §7.10): the body to use, or None
    /// after answering `reject` `filtered`.
    fn moderate(&self, id: &str, body: String) -> Option<String> {
        match self
            .region
            .moderation()
            .apply(self.region.settings().moderation, &body)
        {
            Outcome::Clean => Some(body),
            Outcome::Masked(masked) => Some(masked),
            Outcome::Rejected => {
                self.reject(
                    id,
                    ErrorCode::Filtered,
                    "the message contains a filtered word",
                );
                None
            }
        }
    }

    fn on_live_join(&mut self, reference: String, room: String) {
        if let Err(e) = validate_id("room id", &room) {
            return self.error(Some(&reference), ErrorCode::Invalid, e.to_string());
        }
        if self.rooms.len() >= MAX_ROOMS_PER_SESSION && !self.rooms.contains(&room) {
            return self.error(
                Some(&reference),
                ErrorCode::Invalid,
                "watching too many rooms",
            );
        }
        if self
            .region
            .fanouts()
            .join(&self.region, &room, self.handle.clone())
            .is_none()
        {
            return self.error(
                Some(&reference),
                ErrorCode::Internal,
                "cannot join the room now",
            );
        };
        let new_viewer = !self.rooms.contains(&room);
        if new_viewer {
            self.rooms.push(room.clone());
        }
        let msg = LiveRoomMsg::Join {
            reference,
            viewer: SessionRef::Local(self.handle.clone()),
            node: self.region.settings().node_id.clone(),
            new_viewer,
        };
        self.region.tell_live_room(&ConvId::Live(room), msg);
    }

    fn leave_room(&self, room: &str, reference: Option<String>) {
        self.region.fanouts().leave(room, self.handle.id());
        let msg = LiveRoomMsg::Leave {
            reply: reference
                .is_some()
                .then(|| SessionRef::Local(self.handle.clone())),
            reference,
            node: self.region.settings().node_id.clone(),
        };
        self.region
            .tell_live_room(&ConvId::Live(room.to_string()), msg);
    }

    fn on_danmaku(&mut self, id: String, room: String, body: String) {
        if let Err(e) = validate_id("room id", &room) {
            return self.reject(&id, ErrorCode::Invalid, e.to_string());
        }
        let max_body = self.region.settings().max_body;
        if body.len() > max_body {
            return self.reject(
                &id,
                ErrorCode::TooLarge,
                format!("body of {} bytes exceeds {max_body}", body.len()),
            );
        }
        let Some(body) = self.moderate(&id, body) else {
            return;
        };
        if let Err(wait) = self.region.danmaku_rate().check(self.user()) {
            let retry = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1));
            self.handle.reject(
                &id,
                ErrorCode::RateLimited,
                "too many danmaku; slow down",
                retry,
            );
            return;
        }
        let prio = self.identity.roles.prio();
        let item = LiveItem {
            seq: 0,
            id,
            from: self.user().to_string(),
            body,
            ts_ms: crate::now_ms(),
            prio,
        };
        self.region.tell_live_room(
            &ConvId::Live(room),
            LiveRoomMsg::Danmaku {
                item,
                reply: SessionRef::Local(self.handle.clone()),
            },
        );
    }

    fn on_history(
        &mut self,
        reference: String,
        conv: String,
        after: Option<u64>,
        before: Option<u64>,
        limit: Option<u32>,
    ) {
        let conv = match ConvId::parse(&conv) {
            Ok(c @ (ConvId::Dm(..) | ConvId::Group(_))) => c,
            Ok(ConvId::Live(_)) => {
                return self.error(
                    Some(&reference),
                    ErrorCode::Invalid,
                    "live rooms have no history",
                );
            }
            Err(e) => return self.error(Some(&reference), ErrorCode::Invalid, e.to_string()),
        };
        let settings = self.region.settings();
        let limit = match limit {
            None => settings.history_default,
            Some(0) => {
                return self.error(
                    Some(&reference),
                    ErrorCode::Invalid,
                    "limit must be at least 1",
                );
            }
            Some(n) => n.min(settings.history_max),
        };
        let req = self.request(reference);
        self.region.tell_conversation(
            &conv,
            ConversationMsg::History(
                req,
                HistoryQuery {
                    after,
                    before,
                    limit,
                },
            ),
        );
    }

    /// One page of the user's conversation list. A v1 request (no page) gets the
    /// first page that fits one frame, without `more`.
    fn on_conversations(&mut self, reference: String, page: Trailing<ConversationsPage>) {
        let settings = self.region.settings();
        let (after, limit) = match page.get() {
            None => (None, settings.list_max),
            Some(ConversationsPage { limit: Some(0), .. }) => {
                return self.error(
                    Some(&reference),
                    ErrorCode::Invalid,
                    "limit must be at least 1",
                );
            }
            Some(ConversationsPage { after, limit }) => {
                if let Some(after) = after
                    && let Err(e) = ConvId::parse(after)
                {
                    return self.error(Some(&reference), ErrorCode::Invalid, e.to_string());
                }
                (
                    after.clone(),
                    limit.unwrap_or(settings.list_max).min(settings.list_max),
                )
            }
        };
        let query = ListQuery {
            after,
            limit: limit as usize,
        };
        let paged = page.get().is_some();
        let max_frame = settings.max_frame;
        let region = self.region.clone();
        let user = self.user().to_string();
        let reply = self.handle.clone();
        tokio::spawn(async move {
            let turn = region.store_read_turn().await;
            let page = region.store().conversation_page(&user, query).await;
            drop(turn);
            let frame = match page {
                Ok(slice) => fit::conversation_list(
                    reference,
                    slice.items,
                    if paged {
                        Trailing::some(slice.more)
                    } else {
                        Trailing::ABSENT
                    },
                    max_frame,
                ),
                Err(e) => ServerFrame::Error {
                    reference: Some(reference),
                    code: ErrorCode::Internal,
                    message: format!("store: {e}"),
                },
            };
            reply.send(frame);
        });
    }

    fn on_group_create(
        &mut self,
        reference: String,
        id: Option<String>,
        name: String,
        members: Vec<String>,
    ) {
        let id = id.unwrap_or_else(|| format!("g{:016x}", rand::random::<u64>()));
        if name.len() > MAX_GROUP_NAME {
            return self.error(
                Some(&reference),
                ErrorCode::Invalid,
                "group name is too long",
            );
        }
        if let Some(conv) = self.group_target(&reference, &id, &members) {
            let req = self.request(reference);
            self.region
                .tell_conversation(&conv, ConversationMsg::GroupCreate(req, name, members));
        }
    }

    /// Validates a group request's ids; answers `invalid` and returns None if bad.
    fn group_target(&self, reference: &str, id: &str, members: &[String]) -> Option<ConvId> {
        if let Err(e) = validate_id("group id", id) {
            self.error(Some(reference), ErrorCode::Invalid, e.to_string());
            return None;
        }
        if members.len() > self.region.settings().max_group_members {
            self.error(Some(reference), ErrorCode::Invalid, "too many members");
            return None;
        }
        for m in members {
            if let Err(e) = validate_id("member", m) {
                self.error(Some(reference), ErrorCode::Invalid, e.to_string());
                return None;
            }
        }
        Some(ConvId::Group(id.to_string()))
    }
}
