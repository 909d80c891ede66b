//! Entity messages between nodes. On the way out each entity kind turns its own
//! messages into [`EntityEnvelope`]s (`Entity::forward`, next to the
//! messages' definitions, with the helpers here); on the way in, [`receive`]
//! turns envelopes back into messages and routes them. Sessions inside become
//! [`SessionAddr`]s and come back as [`SessionRef::Remote`]. What cannot be sent
//! (the owner is unreachable) is answered where it was to be sent: a `send` gets
//! `reject` `internal` and is retried by its client, a request gets `error`
//! `internal`, a fan-out is dropped (history repairs it).

use chorus_store::HistoryQuery;
use chorus_wire::cluster::{CloseCode, EntityEnvelope, Envelope, RequestEnvelope, SessionAddr};
use chorus_wire::codec::decode_envelope;
use chorus_wire::ids::validate_id;
use chorus_wire::{ConvId, ErrorCode, ServerFrame};

use crate::conversation::{Answer, Conversation, ConversationMsg, Request, SendRequest};
use crate::live::{LiveRoom, LiveRoomMsg};
use crate::outbound::{CloseReason, OutFrame};
use crate::region::ShardRegion;
use crate::remote::SessionRef;
use crate::user::{Attached, User, UserMsg};

pub(crate) const UNREACHABLE: &str = "the node owning this is unreachable; retry";

pub(crate) fn send_entity(region: &ShardRegion, node: &str, hops: u8, msg: EntityEnvelope) -> bool {
    region.link().send(node, &Envelope::Entity { hops, msg })
}

pub(crate) fn request_envelope(region: &ShardRegion, req: &Request) -> RequestEnvelope {
    RequestEnvelope {
        user: req.user.clone(),
        reference: req.reference.clone(),
        reply: req.reply.addr(region.link()),
    }
}

pub(crate) fn request_failed(req: &Request) {
    req.reply.send(ServerFrame::Error {
        reference: Some(req.reference.clone()),
        code: ErrorCode::Internal,
        message: UNREACHABLE.into(),
    });
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
        EntityEnvelope::UserKick { user } => region.route::<User>(&user, UserMsg::Kick, hops, true),
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
            region.route::<Conversation>(&conv_id, ConversationMsg::Send(req), hops, true);
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
            region.route::<Conversation>(
                &conv_id,
                ConversationMsg::History(req, query),
                hops,
                true,
            );
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
            region.route::<Conversation>(&conv_id, read, hops, true);
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
            region.route::<Conversation>(&conv_id, msg, hops, true);
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
                region.route::<LiveRoom>(&room, msg, hops, true);
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
            region.route::<LiveRoom>(&room, msg, hops, true);
        }
        EntityEnvelope::LiveViewers { room, node, count } => {
            region.route::<LiveRoom>(&room, LiveRoomMsg::ViewerCount { node, count }, hops, true);
        }
        EntityEnvelope::LiveDanmaku { room, item, reply } => {
            if let Some(reply) = session_ref(region, reply) {
                region.route::<LiveRoom>(&room, LiveRoomMsg::Danmaku { item, reply }, hops, true);
            }
        }
        EntityEnvelope::LiveSlowMode { room, seconds } => {
            if validate_id("room id", &room).is_err() {
                return bad_key(from, &room);
            }
            region.route::<LiveRoom>(&room, LiveRoomMsg::SlowMode { seconds }, hops, true);
        }
    }
}
