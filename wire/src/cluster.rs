//! What nodes say to each other: one [`Envelope`] per inter-node message.
//!
//! The transport carries opaque bytes; these types are their meaning. They are
//! encoded by [`codec::encode_envelope`](crate::codec::encode_envelope) (bincode,
//! like the binary client frames) and decoded fallibly by
//! [`codec::decode_envelope`](crate::codec::decode_envelope): bytes from a peer are
//! checked like bytes from a client, never trusted.
//!
//! An envelope names an entity by key (a user id, a conversation or room id) and
//! never an actor: the receiving node routes it by its own placement table. A
//! session on another node is named by a [`SessionAddr`].

use bincode::{Decode, Encode};

use crate::frame::{LiveItem, ServerFrame, TypingState};

/// A server frame inside an envelope, written as its own binary frame with its
/// length in front. A frame's trailing fields (see `crate::trailing`) are absent
/// by ending where the frame ends; nested in an envelope with fields after it,
/// the frame must end where its length says, or what follows would be read as
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedFrame(pub ServerFrame);

impl Encode for NestedFrame {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        crate::codec::Frame::to_binary(&self.0).encode(encoder)
    }
}

impl<Context> Decode<Context> for NestedFrame {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        // The envelope's decoder counts these bytes against its allocation limit.
        let bytes: Vec<u8> = Decode::decode(decoder)?;
        <ServerFrame as crate::codec::Frame>::from_binary(&bytes)
            .map(Self)
            .map_err(|e| bincode::error::DecodeError::OtherString(format!("nested frame: {e}")))
    }
}

bincode::impl_borrow_decode!(NestedFrame);

/// A session connected to some node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct SessionAddr {
    /// The node holding the socket.
    pub node: String,
    /// That node's incarnation: a session of an earlier life of the node is gone.
    pub generation: u64,
    /// The session's id, unique in the cluster.
    pub id: u64,
    /// Its authenticated user, checked by the node that holds it.
    pub user: String,
}

/// A request answered to one session (`ref`-carrying requests).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct RequestEnvelope {
    /// Who asks.
    pub user: String,
    /// The request's `ref`.
    pub reference: String,
    /// Where the answer goes.
    pub reply: SessionAddr,
}

/// A group operation.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum GroupOp {
    /// Create the group with a name and members.
    Create {
        /// Name.
        name: String,
        /// Members.
        members: Vec<String>,
    },
    /// Add members.
    Add(Vec<String>),
    /// Remove members.
    Remove(Vec<String>),
    /// The asking member leaves.
    Leave,
    /// The group's state.
    Info,
}

/// A message for the entity that owns a key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum EntityEnvelope {
    /// A session of `user` came online; answered with [`Envelope::Reply`] `call`.
    UserAttach {
        /// User id.
        user: String,
        /// The session.
        session: SessionAddr,
        /// The caller's call number.
        call: u64,
    },
    /// A session of `user` went away.
    UserDetach {
        /// User id.
        user: String,
        /// Session id.
        session: u64,
    },
    /// A frame for every session of `user` but `except`.
    UserDeliver {
        /// User id.
        user: String,
        /// The frame.
        frame: NestedFrame,
        /// The sending session, which has its `ack` instead.
        except: Option<u64>,
    },
    /// Close every session of `user`.
    UserKick {
        /// User id.
        user: String,
    },
    /// A chat message to sequence, store and fan out.
    ConvSend {
        /// Conversation id.
        conv: String,
        /// Sender's user id.
        sender: String,
        /// The sending session (gets `ack`/`reject`).
        session: SessionAddr,
        /// Client message id.
        client_id: String,
        /// Text, validated and filtered by the sending node.
        body: String,
    },
    /// A page of history.
    ConvHistory {
        /// Conversation id.
        conv: String,
        /// The request.
        request: RequestEnvelope,
        /// Lower bound (exclusive).
        after: Option<u64>,
        /// Upper bound (exclusive).
        before: Option<u64>,
        /// Page size, already clamped.
        limit: u32,
    },
    /// A member read up to `seq`.
    ConvRead {
        /// Conversation id.
        conv: String,
        /// Who read.
        user: String,
        /// Up to which seq.
        seq: u64,
    },
    /// A group operation.
    ConvGroup {
        /// Conversation id (`group:..`).
        conv: String,
        /// The request.
        request: RequestEnvelope,
        /// What to do.
        op: GroupOp,
    },
    /// A viewer joined `room`; its node's fanout already has it.
    LiveJoin {
        /// Room id (without `live:`).
        room: String,
        /// The request's `ref`.
        reference: String,
        /// The viewer.
        viewer: SessionAddr,
        /// False when the session already watched the room (it is not counted again).
        new_viewer: bool,
    },
    /// A viewer on `node` left `room`.
    LiveLeave {
        /// Room id.
        room: String,
        /// The request's `ref`, if the client asked.
        reference: Option<String>,
        /// Who gets `ok`.
        reply: Option<SessionAddr>,
        /// The viewer's node.
        node: String,
    },
    /// A node's count of its viewers of `room`.
    LiveViewers {
        /// Room id.
        room: String,
        /// The node.
        node: String,
        /// Its viewers.
        count: u64,
    },
    /// A danmaku item to accept.
    LiveDanmaku {
        /// Room id.
        room: String,
        /// The item, `seq` 0.
        item: LiveItem,
        /// The sending session.
        reply: SessionAddr,
    },
    /// An operator changed the slow mode of `room`; the store already holds it.
    LiveSlowMode {
        /// Room id.
        room: String,
        /// Seconds between one user's accepted danmaku (0: off); `None` follows
        /// the owner's `[live] slow_mode_s`.
        seconds: Option<u32>,
    },
    /// A session watches the presence of `user` (protocol 1.1).
    UserWatch {
        /// The watched user.
        user: String,
        /// The watching session (gets `presence`).
        session: SessionAddr,
        /// A renewal after the placement changed: a watcher the entity
        /// already has is not told again.
        renew: bool,
    },
    /// A session stops watching `user`.
    UserUnwatch {
        /// The watched user.
        user: String,
        /// The watching session's id.
        session: u64,
    },
    /// `user` started or stopped typing in `conv` (protocol 1.1).
    ConvTyping {
        /// Conversation id.
        conv: String,
        /// Who types.
        user: String,
        /// `start` or `stop`.
        state: TypingState,
        /// The typing session (gets `error` if it may not).
        reply: SessionAddr,
    },
}

impl EntityEnvelope {
    /// The key of the entity this is for, as placement hashes it.
    pub fn entity_key(&self) -> String {
        match self {
            Self::UserAttach { user, .. }
            | Self::UserDetach { user, .. }
            | Self::UserDeliver { user, .. }
            | Self::UserKick { user }
            | Self::UserWatch { user, .. }
            | Self::UserUnwatch { user, .. } => format!("user:{user}"),
            Self::ConvSend { conv, .. }
            | Self::ConvTyping { conv, .. }
            | Self::ConvHistory { conv, .. }
            | Self::ConvRead { conv, .. }
            | Self::ConvGroup { conv, .. } => conv.clone(),
            Self::LiveJoin { room, .. }
            | Self::LiveLeave { room, .. }
            | Self::LiveViewers { room, .. }
            | Self::LiveDanmaku { room, .. }
            | Self::LiveSlowMode { room, .. } => format!("live:{room}"),
        }
    }
}

/// Why a node asks another to close sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum CloseCode {
    /// An operator kicked the user.
    Kicked,
    /// Too slow to keep up.
    SlowConsumer,
    /// The node is shutting down.
    Shutdown,
}

/// One inter-node message.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Envelope {
    /// For the owner of an entity. `hops` counts forwards, so two nodes whose
    /// placement tables disagree for a moment cannot bounce a message forever.
    Entity {
        /// Forwards so far.
        hops: u8,
        /// The message.
        msg: EntityEnvelope,
    },
    /// A frame for sessions of the receiving node.
    Sessions {
        /// Session ids.
        ids: Vec<u64>,
        /// The user they belong to, checked by the receiver.
        user: String,
        /// The frame.
        frame: NestedFrame,
    },
    /// Close sessions of the receiving node.
    Close {
        /// Session ids.
        ids: Vec<u64>,
        /// Why.
        reason: CloseCode,
    },
    /// The answer to a call (e.g. [`EntityEnvelope::UserAttach`]).
    Reply {
        /// The caller's call number.
        call: u64,
    },
    /// A `live_batch` for the receiving node's viewers of `room`.
    LiveBatch {
        /// Room id.
        room: String,
        /// The frame (`live_batch`).
        frame: NestedFrame,
        /// Items plus `dropped`: what a viewer misses if the batch is dropped.
        weight: u64,
        /// False when the batch carries `paid`/`system` items.
        ordinary: bool,
    },
    /// The sender now owns `shard`, which the receiver owned before: answer
    /// with [`Envelope::Reply`] `call` once the receiver no longer owns it and
    /// none of its conversations of that shard runs any more (their writes are
    /// settled), so that the new owner's seqs never overtake theirs.
    HandoffQuery {
        /// The shard.
        shard: u32,
        /// The caller's call number.
        call: u64,
    },
}
