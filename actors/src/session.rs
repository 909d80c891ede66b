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

use std::collections::HashSet;

use chorus_store::ListQuery;
use chorus_wire::fit;
use chorus_wire::limits::{MAX_PRESENCE_SUBS, MAX_REF};
use chorus_wire::{ClientFrame, ConvId, ErrorCode, LiveItem, ServerFrame, Target, Trailing};

pub use chorus_wire::identity::{Identity, Role, Roles};

use self::request::{Limits, Refusal, Request, Weight};
use crate::budget::Held;
use crate::conversation::{self, ConversationMsg, SendRequest};
use crate::live::LiveRoomMsg;
use crate::moderation::Outcome;
use crate::outbound::SessionHandle;
use crate::region::ShardRegion;
use crate::remote::SessionRef;
use crate::user::{Attached, UserMsg};

mod request;

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
    /// Users whose presence this session watches (at most
    /// [`MAX_PRESENCE_SUBS`]), to stop when it closes.
    watching: HashSet<String>,
    /// What its frames are checked against.
    limits: Limits,
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
            limits: Limits::of(region.settings()),
            region,
            rooms: Vec::new(),
            watching: HashSet::new(),
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
        for user in &self.watching {
            self.unwatch(user);
        }
        self.region
            .sessions()
            .unregister(&self.identity.user, self.handle.id());
        // A User started from here on no longer finds the session; one running
        // must be told (and records the last-seen time when the user goes
        // offline). Without one, all of the user's sessions are here.
        if !self.region.user_is_dormant(&self.identity.user) {
            self.region
                .tell_user(&self.identity.user, UserMsg::Detach(self.handle.id()));
        } else if self.region.sessions().of(&self.identity.user).is_empty() {
            self.region
                .store_last_seen(&self.identity.user, crate::now_ms());
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

    fn request(&self, reference: String) -> conversation::Request {
        conversation::Request {
            user: self.user().to_string(),
            reference,
            reply: SessionRef::Local(self.handle.clone()),
        }
    }

    /// Handles one frame after `welcome`: validates it into a request, takes
    /// the request's share of the session's budget — waiting for it, which is
    /// where a client that pipelines requests is slowed down to the pace of its
    /// answers — then carries the request out. A refused frame is answered at
    /// once when its answer cannot be matched, else after the same wait.
    pub async fn handle_frame(&mut self, frame: ClientFrame) {
        if frame.is_1_1() {
            self.handle.speaks_1_1();
        }
        let (work, cost) = match Request::parse(frame, &self.limits) {
            Ok((request, cost)) => (Ok(request), cost),
            Err(Refusal { answer, cost: None }) => {
                if let Some(answer) = answer {
                    self.handle.send(*answer);
                }
                return;
            }
            Err(Refusal {
                answer,
                cost: Some(cost),
            }) => (Err(answer), cost),
        };
        let budget = self.handle.budget();
        let weight = match cost.weight {
            Weight::One => 1,
            Weight::Large => budget.large(),
        };
        let held = budget.acquire(weight).await;
        let held = match (cost.key, held) {
            (Some(key), Some(held)) => {
                budget.expect(key, held);
                None
            }
            // A `read` has no answer: it keeps its units until it is stored.
            (_, held) => held,
        };
        match work {
            Ok(request) => self.apply(request, held),
            Err(Some(answer)) => {
                self.handle.send(*answer);
            }
            Err(None) => {}
        }
    }

    /// Carries out a valid request.
    fn apply(&mut self, request: Request, held: Option<Held>) {
        match request {
            Request::Ping => {
                self.handle.send(ServerFrame::Pong);
            }
            Request::Send { id, to, body } => self.on_send(id, to, body),
            Request::Read { conv, seq } => {
                let user = self.user().to_string();
                self.region
                    .tell_conversation(&conv, ConversationMsg::Read { user, seq, held });
            }
            Request::History {
                reference,
                conv,
                query,
            } => {
                let req = self.request(reference);
                self.region
                    .tell_conversation(&conv, ConversationMsg::History(req, query));
            }
            Request::Conversations {
                reference,
                query,
                paged,
            } => self.on_conversations(reference, query, paged),
            Request::Group {
                reference,
                conv,
                op,
            } => {
                let req = self.request(reference);
                self.region
                    .tell_conversation(&conv, ConversationMsg::group(req, op));
            }
            Request::LiveJoin { reference, room } => self.on_live_join(reference, room),
            Request::LiveLeave { reference, room } => {
                if let Some(pos) = self.rooms.iter().position(|r| *r == room) {
                    let room = self.rooms.swap_remove(pos);
                    self.leave_room(&room, Some(reference));
                } else {
                    // Not watching it: leaving is already done.
                    self.handle.send(ServerFrame::Ok { reference });
                }
            }
            Request::Danmaku { id, room, body } => self.on_danmaku(id, room, body),
            Request::PresenceSub { reference, users } => self.on_presence_sub(reference, users),
            Request::PresenceUnsub { reference, users } => {
                for user in users {
                    if self.watching.remove(&user) {
                        self.unwatch(&user);
                    }
                }
                self.handle.send(ServerFrame::Ok { reference });
            }
            Request::Typing { conv, state } => {
                // `typing` has no answer: its budget units go back now.
                drop(held);
                let msg = ConversationMsg::Typing {
                    user: self.user().to_string(),
                    state,
                    reply: SessionRef::Local(self.handle.clone()),
                };
                self.region.tell_conversation(&conv, msg);
            }
        }
    }

    /// `presence_sub`: refused whole if the users it adds would take the
    /// session past [`MAX_PRESENCE_SUBS`]; else `ok`, then each User tells
    /// the session its presence (so `ok` is queued first).
    fn on_presence_sub(&mut self, reference: String, users: Vec<String>) {
        let adding = users.iter().filter(|u| !self.watching.contains(*u)).count();
        if self.watching.len() + adding > MAX_PRESENCE_SUBS {
            return self.error(
                Some(&reference),
                ErrorCode::Invalid,
                format!(
                    "watching {} more users would exceed {MAX_PRESENCE_SUBS}",
                    adding
                ),
            );
        }
        self.handle.send(ServerFrame::Ok { reference });
        for user in users {
            self.region.sessions().watch(&user, &self.handle);
            let me = SessionRef::Local(self.handle.clone());
            self.region.tell_user(
                &user,
                UserMsg::Watch {
                    session: me,
                    renew: false,
                },
            );
            self.watching.insert(user);
        }
    }

    /// Stops watching `user`: a User that is not running has no watchers to
    /// drop, so it is not started for this.
    fn unwatch(&self, user: &str) {
        self.region.sessions().unwatch(user, self.handle.id());
        if !self.region.user_is_dormant(user) {
            self.region
                .tell_user(user, UserMsg::Unwatch(self.handle.id()));
        }
    }

    fn on_send(&mut self, id: String, target: Target, body: String) {
        let Some(body) = self.moderate(&id, body) else {
            return;
        };
        let conv = target.conv_for(self.user());
        let req = SendRequest {
            sender: self.user().to_string(),
            answer: conversation::Answer::new(SessionRef::Local(self.handle.clone()), id),
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

    /// One page of the user's conversation list. A v1 request (no page) gets the
    /// first page that fits one frame, without `more`.
    fn on_conversations(&mut self, reference: String, query: ListQuery, paged: bool) {
        let max_frame = self.region.settings().max_frame;
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
}
