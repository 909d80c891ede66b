//! Entity messages between nodes. On the way out each entity kind turns its own
//! messages into [`EntityEnvelope`]s (`Entity::forward`, next to the
//! messages' definitions); on the way in, [`ShardRegion::receive`]
//! turns envelopes back into messages and routes them. Sessions inside become
//! [`SessionAddr`]s and come back as [`SessionRef::Remote`]. What cannot be sent
//! (the owner is unreachable) is answered where it was to be sent: a `send` gets
//! `reject` `internal` and is retried by its client, a request gets `error`
//! `internal`, a fan-out is dropped (history repairs it).

use chorus_wire::ServerFrame;
use chorus_wire::cluster::{CloseCode, EntityEnvelope, Envelope};
use chorus_wire::codec::decode_envelope;

use crate::conversation::Conversation;
use crate::live::LiveRoom;
use crate::outbound::{CloseReason, OutFrame};
use crate::region::ShardRegion;
use crate::region::entity::Entity;
use crate::user::{User, UserMsg};

impl ShardRegion {
    /// Handles the bytes of one envelope from node `from`; garbage is counted
    /// and dropped. Returns false if the bytes were not an envelope.
    pub fn receive(&self, from: &str, bytes: &[u8]) -> bool {
        receive(self, from, bytes)
    }
}

/// Handles one envelope from `from`.
fn receive(region: &ShardRegion, from: &str, bytes: &[u8]) -> bool {
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

fn receive_entity(region: &ShardRegion, from: &str, hops: u8, msg: EntityEnvelope) {
    // Each kind takes its own envelopes back (`Entity::receive`, next to its
    // messages) and hands on the rest.
    let Err(msg) = User::receive(region, from, hops, msg) else {
        return;
    };
    let Err(msg) = Conversation::receive(region, from, hops, msg) else {
        return;
    };
    let Err(msg) = LiveRoom::receive(region, from, hops, msg) else {
        return;
    };
    metrics::counter!("chorus_cluster_bad_envelopes_total").increment(1);
    tracing::warn!(peer = from, envelope = ?msg, "dropping an entity envelope no kind takes");
}
