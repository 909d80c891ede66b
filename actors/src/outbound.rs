//! The way out to a client: frames encoded once, and each session's bounded queue.
//!
//! Entities never touch sockets. They push an [`OutFrame`] into a
//! [`SessionHandle`]; the gateway's writer task drains the queue to the socket.
//! A frame fanned out to many sessions is encoded at most once per encoding, and
//! the same `Bytes` are written to every socket that uses that encoding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chorus_wire::codec::Frame;
use chorus_wire::{Encoding, ServerFrame};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A server frame shared between sessions, with its encodings cached on first use.
#[derive(Debug)]
pub struct OutFrame {
    frame: ServerFrame,
    json: OnceLock<Bytes>,
    binary: OnceLock<Bytes>,
}

/// A shared, immutable frame on its way to one or more sessions.
pub type SharedFrame = Arc<OutFrame>;

impl OutFrame {
    /// Wraps a frame for sending.
    pub fn new(frame: ServerFrame) -> SharedFrame {
        Arc::new(Self {
            frame,
            json: OnceLock::new(),
            binary: OnceLock::new(),
        })
    }

    /// The frame itself.
    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    /// The frame in `encoding` (the binary form without the TCP length prefix),
    /// encoded on the first call and shared afterwards.
    pub fn bytes(&self, encoding: Encoding) -> &Bytes {
        match encoding {
            Encoding::Json => self.json.get_or_init(|| self.frame.encode(Encoding::Json)),
            Encoding::Binary => self
                .binary
                .get_or_init(|| self.frame.encode(Encoding::Binary)),
        }
    }
}

/// A session id, unique within a node.
pub type SessionId = u64;

/// Why a session's connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outbound queue overflowed: the client does not read fast enough.
    SlowConsumer,
    /// An operator kicked the user.
    Kicked,
    /// The node is shutting down or draining.
    Shutdown,
}

#[derive(Debug)]
struct HandleInner {
    id: SessionId,
    user: String,
    tx: mpsc::Sender<SharedFrame>,
    close: CancellationToken,
    close_reason: OnceLock<CloseReason>,
    slow: AtomicBool,
}

/// A cheap, cloneable address of one connected session: pushes never block.
#[derive(Debug, Clone)]
pub struct SessionHandle(Arc<HandleInner>);

/// The receiving half the gateway's writer drains.
pub type OutboundQueue = mpsc::Receiver<SharedFrame>;

impl SessionHandle {
    /// A handle and its queue; `capacity` bounds the frames waiting for the socket.
    pub fn new(id: SessionId, user: String, capacity: usize) -> (Self, OutboundQueue) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = HandleInner {
            id,
            user,
            tx,
            close: CancellationToken::new(),
            close_reason: OnceLock::new(),
            slow: AtomicBool::new(false),
        };
        (Self(Arc::new(inner)), rx)
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.0.id
    }

    /// The authenticated user of the session.
    pub fn user(&self) -> &str {
        &self.0.user
    }

    /// Queues a frame. A full queue means the client is not reading: the session is
    /// closed as a slow consumer instead of letting it hold up the sender.
    /// Returns false when the frame was not queued.
    pub fn push(&self, frame: SharedFrame) -> bool {
        match self.0.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.0.slow.swap(true, Ordering::Relaxed) {
                    metrics::counter!("chorus_slow_consumer_disconnects_total").increment(1);
                    tracing::info!(session = self.0.id, user = %self.0.user, "outbound queue full: disconnecting slow consumer");
                }
                self.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Wraps and queues a frame meant for this session alone.
    pub fn send(&self, frame: ServerFrame) -> bool {
        self.push(OutFrame::new(frame))
    }

    /// Asks the gateway to close the connection.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.0.close_reason.set(reason);
        self.0.close.cancel();
    }

    /// Why the session was closed by the server, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.close_reason.get().copied()
    }

    /// Completes when someone asked for the connection to close.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.0.close.cancelled()
    }

    /// Whether the connection was asked to close.
    pub fn is_closed(&self) -> bool {
        self.0.close.is_cancelled() || self.0.tx.is_closed()
    }
}

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
