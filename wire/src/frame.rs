//! Every frame of protocol v1 (docs/protocol.md §5).
//!
//! One Rust type serves both encodings: serde (internally tagged by `"type"`) for
//! JSON, bincode's own derives (variant index, then fields in order) for binary.
//! **Variants and fields are appended only, never reordered**: the binary encoding
//! of a frame is its variant index followed by its fields in declaration order.
//!
//! The field the protocol calls `ref` is named `reference` here (`ref` is a Rust
//! keyword); on the wire it is always `ref`.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub use crate::trailing::Trailing;

/// The protocol version this crate speaks (`hello.protocol`, `welcome.protocol`).
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// 0. The first frame of every connection.
    Hello {
        /// Protocol version; must be 1.
        protocol: u32,
        /// A JWT (`auth.mode = "jwt"`) or the user id (`"dev"`).
        token: String,
        /// Free-form device label, for operators.
        #[serde(default)]
        device: Option<String>,
    },
    /// 1. Heartbeat; answered with `pong`.
    Ping {
        /// The client's current heartbeat interval in seconds.
        #[serde(default)]
        interval_s: Option<u32>,
    },
    /// 2. A chat message to a user or group; answered with `ack` or `reject`.
    Send {
        /// Client message id; a retry reuses it.
        id: String,
        /// `user:<uid>` or `group:<gid>`.
        to: String,
        /// UTF-8 text, at most `limits.max_body` bytes.
        body: String,
    },
    /// 3. A page of a conversation's history.
    History {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Conversation id (`dm:a:b` or `group:g`).
        conv: String,
        /// Only messages with `seq` > `after`.
        #[serde(default)]
        after: Option<u64>,
        /// Only messages with `seq` < `before`.
        #[serde(default)]
        before: Option<u64>,
        /// Page size; default 50, at most 200.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// 4. The user's conversations with their last and read seqs.
    Conversations {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Paging (an addition to v1, see [`ConversationsPage`]): absent, the answer
        /// is the first page that fits one frame, without `more`.
        #[serde(flatten)]
        page: Trailing<ConversationsPage>,
    },
    /// 5. Marks a conversation read up to `seq`; other members get `receipt`.
    Read {
        /// Conversation id.
        conv: String,
        /// Highest seq read.
        seq: u64,
    },
    /// 6. Creates a group; the creator is owner and member.
    GroupCreate {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Wanted group id; the server makes one when absent.
        #[serde(default)]
        id: Option<String>,
        /// Display name.
        name: String,
        /// Initial members (user ids) besides the creator.
        members: Vec<String>,
    },
    /// 7. Adds members (owner only).
    GroupAdd {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Group id.
        id: String,
        /// User ids to add.
        members: Vec<String>,
    },
    /// 8. Removes members (owner only).
    GroupRemove {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Group id.
        id: String,
        /// User ids to remove.
        members: Vec<String>,
    },
    /// 9. Leaves a group.
    GroupLeave {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Group id.
        id: String,
    },
    /// 10. A group's name, owner and members (members only).
    GroupInfo {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Group id.
        id: String,
    },
    /// 11. Starts watching a live room.
    LiveJoin {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Room id.
        room: String,
    },
    /// 12. Stops watching a live room.
    LiveLeave {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// Room id.
        room: String,
    },
    /// 13. A danmaku item for a live room; answered with `ack` or `reject`.
    Danmaku {
        /// Client item id.
        id: String,
        /// Room id.
        room: String,
        /// UTF-8 text.
        body: String,
    },
    /// 14. Watches users' presence (protocol 1.1).
    ///
    /// Answered with `ok`, then one `presence` per user at once and on every change.
    PresenceSub {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// User ids.
        users: Vec<String>,
    },
    /// 15. Stops watching users' presence (protocol 1.1); answered with `ok`.
    PresenceUnsub {
        /// Echoed in the answer.
        #[serde(rename = "ref")]
        reference: String,
        /// User ids.
        users: Vec<String>,
    },
    /// 16. The sender started or stopped typing in `conv` (protocol 1.1).
    ///
    /// It has no answer; the other members' sessions get `typing`.
    Typing {
        /// Conversation id (`dm:a:b` or `group:g`).
        conv: String,
        /// `start` or `stop`.
        state: TypingState,
    },
}

impl ClientFrame {
    /// The JSON `type` of every variant, indexed by the variant's binary index.
    pub const TYPES: [&'static str; 17] = [
        "hello",
        "ping",
        "send",
        "history",
        "conversations",
        "read",
        "group_create",
        "group_add",
        "group_remove",
        "group_leave",
        "group_info",
        "live_join",
        "live_leave",
        "danmaku",
        "presence_sub",
        "presence_unsub",
        "typing",
    ];

    /// Whether this frame was added by protocol 1.1: a client that sends one
    /// can decode the 1.1 frames it did not ask for (`typing`).
    pub fn is_1_1(&self) -> bool {
        matches!(
            self,
            Self::PresenceSub { .. } | Self::PresenceUnsub { .. } | Self::Typing { .. }
        )
    }

    /// This frame's JSON `type`.
    pub fn type_name(&self) -> &'static str {
        Self::TYPES[match self {
            Self::Hello { .. } => 0,
            Self::Ping { .. } => 1,
            Self::Send { .. } => 2,
            Self::History { .. } => 3,
            Self::Conversations { .. } => 4,
            Self::Read { .. } => 5,
            Self::GroupCreate { .. } => 6,
            Self::GroupAdd { .. } => 7,
            Self::GroupRemove { .. } => 8,
            Self::GroupLeave { .. } => 9,
            Self::GroupInfo { .. } => 10,
            Self::LiveJoin { .. } => 11,
            Self::LiveLeave { .. } => 12,
            Self::Danmaku { .. } => 13,
            Self::PresenceSub { .. } => 14,
            Self::PresenceUnsub { .. } => 15,
            Self::Typing { .. } => 16,
        }]
    }
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// 0. The answer to a good `hello`.
    Welcome {
        /// Protocol version spoken.
        protocol: u32,
        /// The authenticated user id.
        user: String,
        /// This connection's session id.
        session: String,
        /// The node's id.
        node: String,
        /// Heartbeat bounds.
        heartbeat: HeartbeatInfo,
        /// Size limits.
        limits: LimitsInfo,
    },
    /// 1. The answer to `ping`.
    Pong,
    /// 2. A `send` (or `danmaku`) is durably accepted.
    Ack {
        /// The client message id.
        id: String,
        /// Conversation id.
        conv: String,
        /// The message's seq.
        seq: u64,
        /// Server time of acceptance, ms since the Unix epoch.
        ts_ms: u64,
    },
    /// 3. A `send` or `danmaku` was refused.
    Reject {
        /// The client message id.
        id: String,
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// When to try again (rate limits).
        #[serde(default)]
        retry_after_ms: Option<u64>,
    },
    /// 4. A message delivered to a session.
    Msg(Message),
    /// 5. A member read a conversation up to `seq`.
    Receipt {
        /// Conversation id.
        conv: String,
        /// Who read.
        user: String,
        /// Up to which seq.
        seq: u64,
    },
    /// 6. The answer to `history`.
    HistoryPage {
        /// The request's `ref`.
        #[serde(rename = "ref")]
        reference: String,
        /// Conversation id.
        conv: String,
        /// Messages in ascending seq.
        messages: Vec<Message>,
        /// Whether more exist in the page's direction.
        more: bool,
    },
    /// 7. The answer to `conversations`.
    ConversationList {
        /// The request's `ref`.
        #[serde(rename = "ref")]
        reference: String,
        /// One entry per conversation, in conversation id order.
        items: Vec<ConversationItem>,
        /// Whether conversations after the last item exist (an addition to v1): present
        /// only in the answer to a request that asked for a page.
        #[serde(default, skip_serializing_if = "Trailing::is_absent")]
        more: Trailing<bool>,
    },
    /// 8. A group's state (answer to the `group_*` requests).
    Group {
        /// The request's `ref`.
        #[serde(rename = "ref")]
        reference: String,
        /// Group id.
        id: String,
        /// Display name.
        name: String,
        /// Owner's user id.
        owner: String,
        /// Member user ids.
        members: Vec<String>,
    },
    /// 9. A request without other answer succeeded.
    Ok {
        /// The request's `ref`.
        #[serde(rename = "ref")]
        reference: String,
    },
    /// 10. The answer to `live_join`.
    LiveJoined {
        /// The request's `ref`.
        #[serde(rename = "ref")]
        reference: String,
        /// Room id.
        room: String,
        /// Cluster-wide viewer count.
        viewers: u64,
        /// Up to the last 20 items.
        recent: Vec<LiveItem>,
    },
    /// 11. A batch of danmaku items.
    LiveBatch {
        /// Room id.
        room: String,
        /// Items in ascending seq.
        items: Vec<LiveItem>,
        /// Cluster-wide viewer count.
        viewers: u64,
        /// Accepted items sampled away since this connection's previous batch.
        dropped: u64,
    },
    /// 12. A request failed.
    Error {
        /// The request's `ref`, when it had one.
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// 13. The node is going away; reconnect elsewhere.
    Goaway {
        /// Why.
        reason: String,
        /// When the node closes the connection.
        reconnect_after_ms: u64,
        /// Client addresses of other nodes.
        nodes: Vec<String>,
    },
    /// 14. A watched user's presence (protocol 1.1).
    ///
    /// Sent at once after a `presence_sub`, then on every change.
    Presence {
        /// User id.
        user: String,
        /// `online` or `offline`.
        status: PresenceStatus,
        /// When the user's last session closed, ms since the Unix epoch; `null`
        /// while online or if never seen.
        last_seen_ms: Option<u64>,
    },
    /// 15. A member of `conv` started or stopped typing (protocol 1.1).
    Typing {
        /// Conversation id.
        conv: String,
        /// Who.
        user: String,
        /// `start` or `stop`.
        state: TypingState,
    },
}

impl ServerFrame {
    /// The JSON `type` of every variant, indexed by the variant's binary index.
    pub const TYPES: [&'static str; 16] = [
        "welcome",
        "pong",
        "ack",
        "reject",
        "msg",
        "receipt",
        "history_page",
        "conversation_list",
        "group",
        "ok",
        "live_joined",
        "live_batch",
        "error",
        "goaway",
        "presence",
        "typing",
    ];

    /// This frame's JSON `type`.
    pub fn type_name(&self) -> &'static str {
        Self::TYPES[match self {
            Self::Welcome { .. } => 0,
            Self::Pong => 1,
            Self::Ack { .. } => 2,
            Self::Reject { .. } => 3,
            Self::Msg(_) => 4,
            Self::Receipt { .. } => 5,
            Self::HistoryPage { .. } => 6,
            Self::ConversationList { .. } => 7,
            Self::Group { .. } => 8,
            Self::Ok { .. } => 9,
            Self::LiveJoined { .. } => 10,
            Self::LiveBatch { .. } => 11,
            Self::Error { .. } => 12,
            Self::Goaway { .. } => 13,
            Self::Presence { .. } => 14,
            Self::Typing { .. } => 15,
        }]
    }
}

/// Whether a user has a session connected to the cluster (`presence.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// At least one session connected to some node.
    Online,
    /// No session connected (after the flap window).
    Offline,
}

/// `typing.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    /// Started (or still) typing; counts as `stop` after 6 s without another.
    Start,
    /// Stopped typing.
    Stop,
}

/// A stored chat message as clients see it (`msg` and `history_page.messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Message {
    /// Conversation id.
    pub conv: String,
    /// Position in the conversation, ≥ 1.
    pub seq: u64,
    /// The sender's client message id.
    pub id: String,
    /// Sender's user id.
    pub from: String,
    /// Text.
    pub body: String,
    /// Server time of acceptance, ms since the Unix epoch.
    pub ts_ms: u64,
}

/// Which part of the conversation list a `conversations` request asks for.
///
/// An addition to v1, carried as a [`Trailing`] field: in JSON the members `after`
/// and `limit` of the request (a request with neither is a v1 request); in binary
/// the option that follows `ref`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode)]
pub struct ConversationsPage {
    /// Only conversations whose id sorts after this one (byte order): the last
    /// `conv` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Most items wanted; the server may give fewer (its own maximum, or what fits
    /// one frame), and says `more`.
    #[serde(default)]
    pub limit: Option<u32>,
}

impl crate::trailing::MeansAbsent for ConversationsPage {
    fn means_absent(&self) -> bool {
        self.after.is_none() && self.limit.is_none()
    }
}

/// One entry of `conversation_list.items`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ConversationItem {
    /// Conversation id.
    pub conv: String,
    /// Highest seq stored (0 when empty).
    pub last_seq: u64,
    /// The user's read position (0 when never read).
    pub read_seq: u64,
}

/// One danmaku item (`live_batch.items`, `live_joined.recent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct LiveItem {
    /// Room-local seq.
    pub seq: u64,
    /// The sender's item id.
    pub id: String,
    /// Sender's user id.
    pub from: String,
    /// Text.
    pub body: String,
    /// Server time of acceptance, ms since the Unix epoch.
    pub ts_ms: u64,
    /// Priority, from the sender's roles.
    pub prio: Prio,
}

/// `welcome.heartbeat`: whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct HeartbeatInfo {
    /// Smallest interval the server honours.
    pub min_s: u32,
    /// Largest interval the server honours.
    pub max_s: u32,
    /// The idle timeout for an announced interval of `max_s`.
    pub idle_timeout_s: u32,
}

/// `welcome.limits`: bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct LimitsInfo {
    /// Largest frame.
    pub max_frame: u32,
    /// Largest body.
    pub max_body: u32,
}

/// Error codes of docs/protocol.md §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded.
    BadFrame,
    /// `hello.protocol` is not 1.
    UnsupportedVersion,
    /// Missing, bad or expired token.
    Unauthenticated,
    /// Not a member / not the owner.
    Forbidden,
    /// No such conversation or group.
    NotFound,
    /// Over a size limit.
    TooLarge,
    /// Decodable but bad content.
    Invalid,
    /// Too many requests; see `retry_after_ms`.
    RateLimited,
    /// Refused by the word filter.
    Filtered,
    /// The node sheds load.
    Overloaded,
    /// A server-side failure (e.g. the store); nothing was acked.
    Internal,
}

impl ErrorCode {
    /// The code's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::TooLarge => "too_large",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::Filtered => "filtered",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Priority of a live item (`prio`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Prio {
    /// Ordinary viewers; sampled away under overload.
    Normal,
    /// Preferred over `normal` under overload.
    Vip,
    /// Never dropped.
    Paid,
    /// Never dropped.
    System,
}
