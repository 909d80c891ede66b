//! The `Endpoint`: the one actor of a node that other nodes send to.
//!
//! Every node's Endpoint is a member of the process group [`ENDPOINT_GROUP`];
//! ractor_cluster mirrors the group across sessions, so each node holds a
//! `RemoteActor` stand-in for the Endpoint of every connected peer, and a send to
//! that stand-in crosses the wire. The message type carries one `Vec<u8>`; decoding
//! happens here, fallibly, so nothing a peer sends can fail the actor.

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::frame;
use super::{ENDPOINT_GROUP, Inbound};

/// The `variant` tag of the one message that crosses nodes.
const FRAME_VARIANT: &str = "chorus.frame";

/// Messages of the Endpoint.
#[derive(Debug)]
pub(crate) enum EndpointMsg {
    /// A frame ([`frame`] header + payload). **Crosses nodes**: serialized as a
    /// ractor cast whose variant is `chorus.frame` and whose arguments are the
    /// bytes, unchanged.
    Frame(Vec<u8>),
    /// Something arrived from a peer that is not a frame (a call, a reply, an
    /// unknown variant). Only ever produced by deserialization; never sent.
    Malformed(&'static str),
}

impl ractor::Message for EndpointMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            Self::Frame(bytes) => Ok(SerializedMessage::Cast {
                variant: FRAME_VARIANT.to_string(),
                args: bytes,
                metadata: None,
            }),
            Self::Malformed(_) => Err(BoxedDowncastErr),
        }
    }

    /// Never fails: anything that is not a frame becomes [`EndpointMsg::Malformed`],
    /// so the Endpoint counts it instead of ractor dropping it silently.
    fn deserialize(message: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        Ok(match message {
            SerializedMessage::Cast { variant, args, .. } if variant == FRAME_VARIANT => {
                Self::Frame(args)
            }
            SerializedMessage::Cast { .. } => Self::Malformed("unknown variant"),
            // Dropping the reply port tells the caller there is no answer.
            SerializedMessage::Call { .. } => Self::Malformed("call"),
            SerializedMessage::CallReply(..) => Self::Malformed("call reply"),
        })
    }
}

/// The Endpoint actor.
pub(crate) struct Endpoint;

/// The Endpoint's state: where decoded frames go.
pub(crate) struct EndpointState {
    inbox: mpsc::Sender<Inbound>,
}

impl Actor for Endpoint {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = mpsc::Sender<Inbound>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        inbox: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Joined before the NodeServer exists, so every session, from the first,
        // advertises it.
        ractor::pg::join(ENDPOINT_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(EndpointState { inbox })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let bytes = match message {
            EndpointMsg::Frame(bytes) => bytes,
            EndpointMsg::Malformed(what) => {
                refuse(what);
                return Ok(());
            }
        };
        let len = bytes.len();
        match frame::decode(bytes) {
            Ok((from, payload)) => {
                // Waiting here holds further frames in the mailbox until the
                // consumer catches up. A closed inbox means the node is shutting
                // down: drop.
                let _ = state.inbox.send(Inbound { from, payload }).await;
            }
            Err(error) => {
                tracing::warn!(len, %error, "dropped a malformed frame from a peer");
                metrics::counter!("chorus_cluster_malformed_frames_total").increment(1);
            }
        }
        Ok(())
    }
}

fn refuse(what: &'static str) {
    tracing::warn!(what, "dropped a message that is not a frame from a peer");
    metrics::counter!("chorus_cluster_malformed_frames_total").increment(1);
}
