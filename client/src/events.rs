//! The stream of what the node pushes, after de-duplication and gap repair.

use std::pin::Pin;
use std::task::{Context, Poll};

use chorus_wire::{ErrorCode, LiveItem, Message, PresenceStatus, TypingState};
use futures_util::Stream;
use tokio::sync::mpsc;

/// Capacity of the event queue between the connection and [`Events`]. When it is
/// full the connection stops reading the socket until the application catches up.
pub(crate) const EVENT_QUEUE: usize = 4096;

/// Something that happened on the client's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message, at most once per `(conv, seq)` and in `seq` order within its
    /// conversation (gaps are repaired from history before later messages).
    Message(Message),
    /// Another member read `conv` up to `seq`.
    Receipt {
        /// Conversation id.
        conv: String,
        /// Who read.
        user: String,
        /// Up to which seq.
        seq: u64,
    },
    /// A watched user's presence: once after [`Client::subscribe_presence`]
    /// (and after every reconnect), then on every change.
    ///
    /// [`Client::subscribe_presence`]: crate::Client::subscribe_presence
    Presence {
        /// User id.
        user: String,
        /// Online or offline.
        status: PresenceStatus,
        /// When the user's last session closed (ms since the epoch); `None`
        /// while online or if never seen.
        last_seen_ms: Option<u64>,
    },
    /// Another member started or stopped typing in `conv`. A `Start` not
    /// followed by another within 6 s counts as `Stop`.
    Typing {
        /// Conversation id.
        conv: String,
        /// Who.
        user: String,
        /// Start or stop.
        state: TypingState,
    },
    /// The node refused a frame that has no answer (a `typing` in a
    /// conversation the user is not a member of); the connection stays open.
    Refused {
        /// Why.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// A batch of danmaku items of a live room this client has joined.
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
    /// A connection was established (the first one, and every reconnect).
    Connected {
        /// The session id from `welcome`.
        session: String,
        /// The node id from `welcome`.
        node: String,
    },
    /// The connection was lost; the client reconnects unless configured not to.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// The node is draining; the client reconnects after the announced delay,
    /// preferring `nodes`.
    Goaway {
        /// The node's reason.
        reason: String,
        /// Client addresses of other nodes.
        nodes: Vec<String>,
    },
    /// The catch-up of `conv` after a (re)connect is complete: `count` messages came
    /// from history, all emitted before this event.
    Resynced {
        /// Conversation id.
        conv: String,
        /// Messages emitted by this resync.
        count: u64,
    },
}

/// The receiving end of a client's events. Ends (`None`) when the client is closed or
/// gives up reconnecting.
///
/// Keep taking events, or drop this: a full queue makes the client stop reading from
/// the node, which also holds back the answers to requests.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is already queued, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
