//! The way out to a client: frames encoded once, and each session's bounded queue.
//!
//! Entities never touch sockets. They push an [`OutFrame`] into a
//! [`SessionHandle`]; the gateway's writer task drains the queue to the socket.
//! A frame fanned out to many sessions is encoded at most once per encoding, and
//! the same `Bytes` are written to every socket that uses that encoding.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chorus_wire::codec::Frame;
use chorus_wire::{Encoding, ErrorCode, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// A server frame shared between sessions, with its encodings cached on first use.
#[derive(Debug)]
pub struct OutFrame {
    frame: ServerFrame,
    json: OnceLock<Bytes>,
    binary: OnceLock<Bytes>,
    /// One transport-specific wrapping of an encoding, made once and shared by every
    /// session (the WebSocket gateway keeps its validated text message here, so a
    /// frame fanned out to many viewers is checked as UTF-8 once, not per viewer).
    transport: OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// A shared, immutable frame on its way to one or more sessions.
pub type SharedFrame = Arc<OutFrame>;

impl OutFrame {
    /// Wraps a frame for sending; the server's own free text in it (an error's
    /// message) is bounded here, where every frame passes.
    pub fn new(frame: ServerFrame) -> SharedFrame {
        Arc::new(Self {
            frame: chorus_wire::fit::bounded(frame),
            json: OnceLock::new(),
            binary: OnceLock::new(),
            transport: OnceLock::new(),
        })
    }

    /// The transport's own form of this frame, made by `make` on first use and
    /// shared afterwards; `None` if a different type was cached first.
    pub fn transport_form<T: Clone + Send + Sync + 'static>(
        &self,
        make: impl FnOnce(&Self) -> T,
    ) -> Option<T> {
        self.transport
            .get_or_init(|| Box::new(make(self)))
            .downcast_ref::<T>()
            .cloned()
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

/// The `reject` answering `send`/`danmaku` `id`, counted in
/// `chorus_send_rejected_total{code}`; the echoed id is cut to 128 characters,
/// since it may be hostile input. Every session kind rejects through this.
pub(crate) fn reject_frame(
    id: &str,
    code: ErrorCode,
    message: String,
    retry_after_ms: Option<u64>,
) -> ServerFrame {
    metrics::counter!("chorus_send_rejected_total", "code" => code.as_str()).increment(1);
    ServerFrame::Reject {
        id: id.chars().take(128).collect(),
        code,
        message,
        retry_after_ms,
    }
}

/// A session id, unique within a node.
pub type SessionId = u64;

/// Why a session's connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its outbound queue overflowed: the client does not read fast enough.
    SlowConsumer,
    /// It fell too far behind a live room.
    SlowViewer,
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
    /// Mirrors `close` for the hot checks: a token's `is_cancelled` takes a lock.
    closing: AtomicBool,
    close_reason: OnceLock<CloseReason>,
    slow: AtomicBool,
    live: LiveLane,
}

/// One `live_batch` waiting for a viewer.
#[derive(Debug)]
pub struct LiveEntry {
    /// The batch, encoded once for every viewer of the node.
    pub frame: SharedFrame,
    /// Room id.
    pub room: String,
    /// Items in the batch plus the room's `dropped` it reports: what a viewer
    /// misses if this batch is dropped for it.
    pub weight: u64,
    /// False when the batch holds `paid`/`system` items: it is never dropped.
    pub ordinary: bool,
    /// When it was queued, for the lag limit.
    pub queued: Instant,
}

/// A viewer's bounded queue of live batches, beside its main queue.
///
/// When full, the oldest ordinary batch is dropped and what it carried is owed
/// to the viewer's next batch of that room (its `dropped` grows), so per viewer
/// accepted = delivered + Σ dropped still holds. A viewer whose oldest batch is
/// older than the lag limit, or whose queue is full of batches that may not be
/// dropped, is disconnected.
#[derive(Debug)]
struct LiveLane {
    state: Mutex<LaneState>,
    notify: Notify,
    capacity: usize,
    max_lag: Duration,
}

#[derive(Debug, Default)]
struct LaneState {
    entries: VecDeque<LiveEntry>,
    /// Items dropped for this viewer per room, not yet reported.
    owed: HashMap<String, u64>,
    /// Set at the first drop after the lane was last empty.
    behind_since: Option<Instant>,
}

/// A cheap, cloneable address of one connected session: pushes never block.
#[derive(Debug, Clone)]
pub struct SessionHandle(Arc<HandleInner>);

/// The receiving half the gateway's writer drains.
pub type OutboundQueue = mpsc::Receiver<SharedFrame>;

impl SessionHandle {
    /// A handle and its queue; `capacity` bounds the frames waiting for the socket.
    pub fn new(id: SessionId, user: String, capacity: usize) -> (Self, OutboundQueue) {
        Self::with_live_limits(id, user, capacity, 64, Duration::from_secs(5))
    }

    /// A handle with explicit live-lane limits: `lane` batches at most, and a
    /// viewer more than `max_lag` behind is disconnected.
    pub fn with_live_limits(
        id: SessionId,
        user: String,
        capacity: usize,
        lane: usize,
        max_lag: Duration,
    ) -> (Self, OutboundQueue) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = HandleInner {
            id,
            user,
            tx,
            close: CancellationToken::new(),
            closing: AtomicBool::new(false),
            close_reason: OnceLock::new(),
            slow: AtomicBool::new(false),
            live: LiveLane {
                state: Mutex::new(LaneState::default()),
                notify: Notify::new(),
                capacity: lane.max(1),
                max_lag,
            },
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

    /// Queues a live batch on the viewer's lane. Returns false if the viewer was
    /// disconnected as too slow (or is closed).
    pub fn push_live(&self, entry: LiveEntry) -> bool {
        if self.is_closed() {
            return false;
        }
        let lane = &self.0.live;
        let mut st = lane.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.entries.len() >= lane.capacity {
            // Behind since the first drop after the lane was last empty: a viewer
            // that never catches up within the lag limit is cut off.
            let behind = *st.behind_since.get_or_insert_with(Instant::now);
            let too_late = behind.elapsed() > lane.max_lag
                || st
                    .entries
                    .front()
                    .is_some_and(|e| e.queued.elapsed() > lane.max_lag);
            let victim = if too_late {
                None
            } else {
                st.entries.iter().position(|e| e.ordinary)
            };
            match victim {
                Some(i) => {
                    if let Some(old) = st.entries.remove(i) {
                        *st.owed.entry(old.room).or_default() += old.weight;
                        metrics::counter!("chorus_live_viewer_batches_dropped_total").increment(1);
                    }
                }
                None => {
                    drop(st);
                    metrics::counter!("chorus_live_slow_viewer_disconnects_total").increment(1);
                    tracing::info!(session = self.0.id, user = %self.0.user, "live viewer too far behind: disconnecting");
                    self.close(CloseReason::SlowViewer);
                    return false;
                }
            }
        }
        st.entries.push_back(entry);
        drop(st);
        lane.notify.notify_one();
        true
    }

    /// The next live batch for the socket, with anything owed folded into its
    /// `dropped` (re-encoded for this viewer only then).
    pub fn pop_live(&self) -> Option<SharedFrame> {
        let mut st = self.0.live.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = st.entries.pop_front()?;
        if st.entries.is_empty() {
            st.behind_since = None;
        }
        let owed = st.owed.remove(&entry.room).unwrap_or(0);
        drop(st);
        if owed == 0 {
            return Some(entry.frame);
        }
        match entry.frame.frame().clone() {
            ServerFrame::LiveBatch {
                room,
                items,
                viewers,
                dropped,
            } => Some(OutFrame::new(ServerFrame::LiveBatch {
                room,
                items,
                viewers,
                dropped: dropped + owed,
            })),
            _ => Some(entry.frame),
        }
    }

    /// Makes the next [`live_ready`](Self::live_ready) complete at once.
    pub fn nudge_live(&self) {
        self.0.live.notify.notify_one();
    }

    /// Completes when a live batch may be waiting (cancel-safe).
    pub async fn live_ready(&self) {
        self.0.live.notify.notified().await;
    }

    /// Answers a `send` or `danmaku` with `reject` (counted in
    /// `chorus_send_rejected_total{code}`); the echoed id is cut to 128 characters,
    /// since it may be hostile input.
    pub fn reject(
        &self,
        id: &str,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) {
        self.send(reject_frame(id, code, message.into(), retry_after_ms));
    }

    /// Wraps and queues a frame meant for this session alone.
    pub fn send(&self, frame: ServerFrame) -> bool {
        self.push(OutFrame::new(frame))
    }

    /// Asks the gateway to close the connection.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.0.close_reason.set(reason);
        self.0.closing.store(true, Ordering::Release);
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
        self.0.closing.load(Ordering::Acquire) || self.0.tx.is_closed()
    }
}

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
