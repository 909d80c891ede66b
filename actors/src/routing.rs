//! Entity messages to and from other nodes: each message that may cross nodes
//! becomes an [`EntityEnvelope`] on the way out and a message again on the way
//! in. Sessions inside become [`SessionAddr`]s and come back as
//! [`SessionRef::Remote`]. What cannot be sent (the owner is unreachable) is
//! answered here: a `send` gets `reject` `internal` and is retried by its client,
//! a request gets `error` `internal`, a fan-out is dropped (history repairs it).

use std::sync::Arc;

use chorus_store::HistoryQuery;
use chorus_wire::cluster::{
    CloseCode, EntityEnvelope, Envelope, GroupOp, NestedFrame, RequestEnvelope, SessionAddr,
};
use chorus_wire::codec::decode_envelope;
use chorus_wire::ids::validate_id;
use chorus_wire::{ConvId, ErrorCode, ServerFrame};

use crate::conversation::{Answer, ConversationMsg, Request, SendRequest};
use crate::live::LiveRoomMsg;
use crate::outbound::{CloseReason, OutFrame};
use crate::region::ShardRegion;
use crate::remote::SessionRef;
use crate::user::{Attached, UserMsg};

const UNREACHABLE: &str = "the node owning this is unreachable; retry";

fn send_entity(region: &ShardRegion, node: &str, hops: u8, msg: EntityEnvelope) -> bool {
    region.link().send(node, &Envelope::Entity { hops, msg })
}

fn request_envelope(region: &ShardRegion, req: &Request) -> RequestEnvelope {
    RequestEnvelope {
        user: req.user.clone(),
        reference: req.reference.clone(),
        reply: req.reply.addr(region.link()),
    }
}

fn request_failed(req: &Request) {
    req.reply.send(ServerFrame::Error {
        reference: Some(req.reference.clone()),
        code: ErrorCode::Internal,
        message: UNREACHABLE.into(),
    });
}

/// Sends a User message to the node that owns the user.
pub(crate) fn forward_user(
    region: &ShardRegion,
    node: &Arc<str>,
    user: &str,
    msg: UserMsg,
    hops: u8,
) {
    let user = user.to_string();
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
        // Housekeeping of a local actor: meaningless elsewhere.
        UserMsg::Refresh | UserMsg::Tick | UserMsg::Passivate(_) | UserMsg::HandOff => return,
    };
    send_entity(region, node, hops, envelope);
}

/// Sends a Conversation message to the node that owns the conversation.
pub(crate) fn forward_conversation(
    region: &ShardRegion,
    node: &Arc<str>,
    conv: &str,
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
            if send_entity(region, node, hops, envelope) {
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
                request: request_envelope(region, &req),
                after: query.after,
                before: query.before,
                limit: query.limit,
            };
            if !send_entity(region, node, hops, envelope) {
                request_failed(&req);
            }
        }
        // The budget units of a read stay here: it has no answer to bring them back.
        ConversationMsg::Read { user, seq, .. } => {
            send_entity(
                region,
                node,
                hops,
                EntityEnvelope::ConvRead { conv, user, seq },
            );
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
        ConversationMsg::Persisted(_)
        | ConversationMsg::Fail
        | ConversationMsg::Panic
        | ConversationMsg::Tick
        | ConversationMsg::Passivate(_)
        | ConversationMsg::HandOff => {}
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
        request: request_envelope(region, &req),
        op,
    };
    if !send_entity(region, node, hops, envelope) {
        request_failed(&req);
    }
}

/// Sends a LiveRoom message to the node that owns the room.
pub(crate) fn forward_live_room(
    region: &ShardRegion,
    node: &Arc<str>,
    room: &str,
    msg: LiveRoomMsg,
    hops: u8,
) {
    let room = room.to_string();
    match msg {
        LiveRoomMsg::Danmaku { item, reply } => {
            let id = item.id.clone();
            let envelope = EntityEnvelope::LiveDanmaku {
                room,
                item,
                reply: reply.addr(region.link()),
            };
            if !send_entity(region, node, hops, envelope) {
                reply.reject(&id, ErrorCode::Internal, UNREACHABLE, None);
            }
        }
        LiveRoomMsg::Join {
            reference,
            viewer,
            new_viewer,
            ..
        } => {
            let envelope = EntityEnvelope::LiveJoin {
                room,
                reference: reference.clone(),
                viewer: viewer.addr(region.link()),
                new_viewer,
            };
            if !send_entity(region, node, hops, envelope) {
                viewer.send(ServerFrame::Error {
                    reference: Some(reference),
                    code: ErrorCode::Internal,
                    message: UNREACHABLE.into(),
                });
            }
        }
        LiveRoomMsg::Leave {
            reference,
            reply,
            node: viewer_node,
        } => {
            let envelope = EntityEnvelope::LiveLeave {
                room,
                reference,
                reply: reply.map(|r| r.addr(region.link())),
                node: viewer_node,
            };
            send_entity(region, node, hops, envelope);
        }
        LiveRoomMsg::ViewerCount {
            node: viewer_node,
            count,
        } => {
            let envelope = EntityEnvelope::LiveViewers {
                room,
                node: viewer_node,
                count,
            };
            send_entity(region, node, hops, envelope);
        }
        LiveRoomMsg::SlowMode { seconds } => {
            // Already stored: should the owner be unreachable, the room reads it
            // when it next starts.
            send_entity(
                region,
                node,
                hops,
                EntityEnvelope::LiveSlowMode { room, seconds },
            );
        }
        LiveRoomMsg::Flush(_)
        | LiveRoomMsg::Tick
        | LiveRoomMsg::Passivate(_)
        | LiveRoomMsg::HandOff
        | LiveRoomMsg::SettingsLoaded(_) => {}
    }
}

/// The session an address names, as seen from this node: a local handle when it
/// is one of ours (`None` if it is gone), else a remote reference.
fn session_ref(region: &ShardRegion, addr: SessionAddr) -> Option<SessionRef> {
    if addr.node == **region.link().node_id() {
        let handle = region
            .sessions()
            .get(addr.id)
            .filter(|h| h.user() == addr.user)?;
        return (addr.generation == region.link().generation())
            .then_some(SessionRef::Local(handle));
    }
    Some(SessionRef::remote(addr, region.link().clone()))
}

fn request(region: &ShardRegion, req: RequestEnvelope) -> Option<Request> {
    let reply = session_ref(region, req.reply)?;
    Some(Request {
        user: req.user,
        reference: req.reference,
        reply,
    })
}

/// Handles one envelope from `from`.
pub(crate) fn receive(region: &ShardRegion, from: &str, bytes: &[u8]) -> bool {
    let envelope = match decode_envelope(bytes) {
        Ok(e) => e,
        Err(e) => {
            metrics::counter!("chorus_cluster_bad_envelopes_total").increment(1);
            tracing::warn!(peer = from, error = %e, "dropping an undecodable envelope");
            return false;
        }
    };
    match envelope {
        Envelope::Entity { hops, msg } => receive_entity(region, from, hops, msg),
        Envelope::Sessions { ids, user, frame } => {
            let frame = frame.0;
            let answered = match &frame {
                ServerFrame::Ack { id, .. } | ServerFrame::Reject { id, .. } => Some(id.clone()),
                _ => None,
            };
            let frame = OutFrame::new(frame);
            for id in ids {
                match region.sessions().get(id).filter(|s| s.user() == user) {
                    Some(session) => {
                        if let Some(client_id) = &answered {
                            region.link().answered(id, client_id);
                        }
                        session.push(frame.clone());
                    }
                    // Gone: tell its User, wherever it runs, to stop sending here.
                    None => region.tell_user(&user, UserMsg::Detach(id)),
                }
            }
        }
        Envelope::Close { ids, reason } => {
            let reason = match reason {
                CloseCode::Kicked => CloseReason::Kicked,
                CloseCode::SlowConsumer => CloseReason::SlowConsumer,
                CloseCode::Shutdown => CloseReason::Shutdown,
            };
            for id in ids {
                if let Some(session) = region.sessions().get(id) {
                    session.close(reason);
                }
            }
        }
        Envelope::Reply { call } => region.link().complete_call(call),
        Envelope::HandoffQuery { shard, call } => region.handoff_query(from, shard, call),
        Envelope::LiveBatch {
            room,
            frame,
            weight,
            ordinary,
        } => {
            region
                .fanouts()
                .batch(&room, OutFrame::new(frame.0), weight, ordinary);
        }
    }
    true
}

fn bad_key(from: &str, key: &str) {
    metrics::counter!("chorus_cluster_bad_envelopes_total").increment(1);
    tracing::warn!(
        peer = from,
        key,
        "dropping an envelope with an invalid entity key"
    );
}

fn receive_entity(region: &ShardRegion, from: &str, hops: u8, msg: EntityEnvelope) {
    match msg {
        EntityEnvelope::UserAttach {
            user,
            session,
            call,
        } => {
            if let Some(session) = session_ref(region, session) {
                let reply = if call == 0 {
                    Attached::Nobody
                } else {
                    Attached::Call(call)
                };
                region.route_user(&user, UserMsg::Attach(session, reply), hops, true);
            }
        }
        EntityEnvelope::UserDetach { user, session } => {
            region.route_user(&user, UserMsg::Detach(session), hops, true);
        }
        EntityEnvelope::UserDeliver {
            user,
            frame,
            except,
        } => {
            let frame = OutFrame::new(frame.0);
            region.route_user(&user, UserMsg::Deliver { frame, except }, hops, true);
        }
        EntityEnvelope::UserKick { user } => region.route_user(&user, UserMsg::Kick, hops, true),
        EntityEnvelope::ConvSend {
            conv,
            sender,
            session,
            client_id,
            body,
        } => {
            let Some(session) = session_ref(region, session) else {
                return;
            };
            let Ok(conv_id @ (ConvId::Dm(..) | ConvId::Group(_))) = ConvId::parse(&conv) else {
                session.reject(&client_id, ErrorCode::Invalid, "invalid conversation", None);
                return bad_key(from, &conv);
            };
            let req = SendRequest {
                sender,
                answer: Answer::new(session, client_id),
                body,
            };
            region.route_conversation(&conv_id, ConversationMsg::Send(req), hops, true);
        }
        EntityEnvelope::ConvHistory {
            conv,
            request: req,
            after,
            before,
            limit,
        } => {
            let Some(req) = request(region, req) else {
                return;
            };
            let Ok(conv_id) = ConvId::parse(&conv) else {
                return bad_key(from, &conv);
            };
            let query = HistoryQuery {
                after,
                before,
                limit,
            };
            region.route_conversation(&conv_id, ConversationMsg::History(req, query), hops, true);
        }
        EntityEnvelope::ConvRead { conv, user, seq } => {
            let Ok(conv_id) = ConvId::parse(&conv) else {
                return bad_key(from, &conv);
            };
            let read = ConversationMsg::Read {
                user,
                seq,
                held: None,
            };
            region.route_conversation(&conv_id, read, hops, true);
        }
        EntityEnvelope::ConvGroup {
            conv,
            request: req,
            op,
        } => {
            let Some(req) = request(region, req) else {
                return;
            };
            let Ok(conv_id @ ConvId::Group(_)) = ConvId::parse(&conv) else {
                return bad_key(from, &conv);
            };
            let msg = ConversationMsg::group(req, op);
            region.route_conversation(&conv_id, msg, hops, true);
        }
        EntityEnvelope::LiveJoin {
            room,
            reference,
            viewer,
            new_viewer,
        } => {
            let node = viewer.node.clone();
            if let Some(viewer) = session_ref(region, viewer) {
                let msg = LiveRoomMsg::Join {
                    reference,
                    viewer,
                    node,
                    new_viewer,
                };
                region.route_live_room(&ConvId::Live(room), msg, hops, true);
            }
        }
        EntityEnvelope::LiveLeave {
            room,
            reference,
            reply,
            node,
        } => {
            let reply = reply.and_then(|r| session_ref(region, r));
            let msg = LiveRoomMsg::Leave {
                reference,
                reply,
                node,
            };
            region.route_live_room(&ConvId::Live(room), msg, hops, true);
        }
        EntityEnvelope::LiveViewers { room, node, count } => {
            region.route_live_room(
                &ConvId::Live(room),
                LiveRoomMsg::ViewerCount { node, count },
                hops,
                true,
            );
        }
        EntityEnvelope::LiveDanmaku { room, item, reply } => {
            if let Some(reply) = session_ref(region, reply) {
                region.route_live_room(
                    &ConvId::Live(room),
                    LiveRoomMsg::Danmaku { item, reply },
                    hops,
                    true,
                );
            }
        }
        EntityEnvelope::LiveSlowMode { room, seconds } => {
            if validate_id("room id", &room).is_err() {
                return bad_key(from, &room);
            }
            region.route_live_room(
                &ConvId::Live(room),
                LiveRoomMsg::SlowMode { seconds },
                hops,
                true,
            );
        }
    }
}
