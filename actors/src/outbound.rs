//! The way out to a client: frames encoded once, and each session's bounded queue.
//!
//! Entities never touch sockets. They push an [`OutFrame`] into a
//! [`SessionHandle`]; the gateway's writer task drains the queue to the socket.
//! A frame fanned out to many sessions is encoded at most once per encoding, and
//! the same `Bytes` are written to every socket that uses that encoding.
//!
//! A session's queue is bounded twice: in frames and in bytes (as encoded for the
//! session). A push over either bound means the client is not reading fast enough,
//! and the session is closed as a slow consumer; nothing ever waits on a client.
//! An answer carries its request's share of the session's [`RequestBudget`] until
//! the writer has written it, which is what keeps a client that pipelines requests
//! (and reads) from ever filling its queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use bytes::Bytes;
use chorus_wire::codec::Frame;
use chorus_wire::{Encoding, ErrorCode, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::budget::{AnswerKey, Held, RequestBudget};

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
    /// The budget units of the request this frame answers (see `budget`), freed
    /// with the frame once it is written: an answer goes to one session. Kept
    /// here rather than beside the frame in the queue, so an idle session's
    /// queue reserves a pointer per slot, not three.
    held: OnceLock<Held>,
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
            held: OnceLock::new(),
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

/// How much one session may hold back: the limits of its queues and requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// The encoding of the connection (the one its frames are counted in).
    pub encoding: Encoding,
    /// Frames waiting for the socket at most.
    pub queue_frames: usize,
    /// Bytes (as encoded) waiting for the socket at most.
    pub queue_bytes: usize,
    /// Units of the request budget (see [`RequestBudget`]).
    pub inflight: usize,
    /// Live batches waiting at most.
    pub lane: usize,
    /// A viewer further behind than this is disconnected.
    pub max_lag: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            encoding: Encoding::Binary,
            queue_frames: 1_024,
            queue_bytes: 4 << 20,
            inflight: 256,
            lane: 64,
            max_lag: Duration::from_secs(5),
        }
    }
}

/// One frame waiting in a session's queue.
#[derive(Debug)]
pub struct Queued {
    /// The frame (holding the units of the request it answers, if any).
    pub frame: SharedFrame,
}

impl std::ops::Deref for Queued {
    type Target = OutFrame;
    fn deref(&self) -> &OutFrame {
        &self.frame
    }
}

/// The receiving half of a session's queue, drained by the gateway's writer.
#[derive(Debug)]
pub struct OutboundQueue {
    rx: mpsc::Receiver<Queued>,
    handle: SessionHandle,
}

impl OutboundQueue {
    /// The next frame; None when every handle is gone.
    pub async fn recv(&mut self) -> Option<Queued> {
        self.rx.recv().await
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Queued> {
        self.rx.try_recv().ok()
    }

    /// Frames taken from the queue have been written (or dropped): their bytes
    /// leave the count, and the units they held are freed with them.
    pub fn written(&self, frames: impl IntoIterator<Item = Queued>) {
        // The size counted when the frame was queued: its encoding is cached.
        let encoding = self.handle.0.encoding;
        let bytes: usize = frames
            .into_iter()
            .map(|q| q.frame.bytes(encoding).len())
            .sum();
        if bytes > 0 {
            self.handle
                .0
                .queued_bytes
                .fetch_sub(bytes, Ordering::AcqRel);
            metrics::gauge!("chorus_outbound_queued_bytes").decrement(bytes as f64);
        }
    }
}

impl Drop for OutboundQueue {
    /// What was never written leaves the counts with the queue.
    fn drop(&mut self) {
        self.rx.close();
        let mut left = Vec::new();
        while let Ok(q) = self.rx.try_recv() {
            left.push(q);
        }
        self.written(left);
    }
}

#[derive(Debug)]
struct HandleInner {
    id: SessionId,
    user: String,
    tx: mpsc::Sender<Queued>,
    encoding: Encoding,
    /// Bytes queued now, and the most allowed.
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    budget: RequestBudget,
    close: CancellationToken,
    /// Mirrors `close` for the hot checks: a token's `is_cancelled` takes a lock.
    closing: AtomicBool,
    close_reason: OnceLock<CloseReason>,
    slow: AtomicBool,
    /// The client sent a protocol 1.1 frame, so it can decode `typing`,
    /// which it gets without asking; a v1 client is never sent one.
    speaks_1_1: AtomicBool,
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

impl SessionHandle {
    /// A handle and its queue; `capacity` bounds the frames waiting for the socket.
    pub fn new(id: SessionId, user: String, capacity: usize) -> (Self, OutboundQueue) {
        Self::with_limits(
            id,
            user,
            SessionLimits {
                queue_frames: capacity,
                ..SessionLimits::default()
            },
        )
    }

    /// A handle with explicit limits.
    pub fn with_limits(
        id: SessionId,
        user: String,
        limits: SessionLimits,
    ) -> (Self, OutboundQueue) {
        let SessionLimits {
            encoding,
            queue_frames,
            queue_bytes,
            inflight,
            lane,
            max_lag,
        } = limits;
        let (tx, rx) = mpsc::channel(queue_frames.max(1));
        let inner = HandleInner {
            id,
            user,
            tx,
            encoding,
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes: queue_bytes.max(1),
            budget: RequestBudget::new(inflight),
            close: CancellationToken::new(),
            closing: AtomicBool::new(false),
            close_reason: OnceLock::new(),
            slow: AtomicBool::new(false),
            speaks_1_1: AtomicBool::new(false),
            live: LiveLane {
                state: Mutex::new(LaneState::default()),
                notify: Notify::new(),
                capacity: lane.max(1),
                max_lag,
            },
        };
        let handle = Self(Arc::new(inner));
        let queue = OutboundQueue {
            rx,
            handle: handle.clone(),
        };
        (handle, queue)
    }

    /// The client sent a protocol 1.1 frame: from now on it is sent `typing`.
    pub fn speaks_1_1(&self) {
        self.0.speaks_1_1.store(true, Ordering::Relaxed);
    }

    /// The session's request budget.
    pub fn budget(&self) -> &RequestBudget {
        &self.0.budget
    }

    /// The encoding of the connection.
    pub fn encoding(&self) -> Encoding {
        self.0.encoding
    }

    /// Bytes waiting in the queue now.
    pub fn queued_bytes(&self) -> usize {
        self.0.queued_bytes.load(Ordering::Acquire)
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
        if matches!(frame.frame(), ServerFrame::Typing { .. })
            && !self.0.speaks_1_1.load(Ordering::Relaxed)
        {
            return true; // A v1 client could not decode it: not its frame.
        }
        // An answer takes over the units its request holds (see `budget`).
        let held = AnswerKey::of(frame.frame()).and_then(|key| self.0.budget.answered(key));
        // Encoded here, once per encoding (cached in the frame): the size is what
        // the byte bound counts, and the writer then has it ready.
        let bytes = frame.bytes(self.0.encoding).len();
        let queued = self.0.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if queued > self.0.max_queued_bytes {
            self.0.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.slow_consumer("bytes");
            return false;
        }
        if let Some(held) = held {
            // Only a frame pushed to a second session (the ack of a duplicate
            // send, to the retrying session too) already holds units: that
            // session's are freed now instead of after the write.
            let _ = frame.held.set(held);
        }
        let item = Queued { frame };
        match self.0.tx.try_send(item) {
            Ok(()) => {
                metrics::gauge!("chorus_outbound_queued_bytes").increment(bytes as f64);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.0.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                self.slow_consumer("frames");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.0.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                false
            }
        }
    }

    /// Closes a session whose queue is full (`bound`: which of its bounds).
    fn slow_consumer(&self, bound: &'static str) {
        if !self.0.slow.swap(true, Ordering::Relaxed) {
            metrics::counter!("chorus_slow_consumer_disconnects_total", "bound" => bound)
                .increment(1);
            tracing::info!(session = self.0.id, user = %self.0.user, bound, "outbound queue full: disconnecting slow consumer");
        }
        self.close(CloseReason::SlowConsumer);
    }

    /// Queues a live batch on the viewer's lane. Returns false if the viewer was
    /// disconnected as too slow (or is closed).
    pub fn push_live(&self, entry: LiveEntry) -> bool {
        if self.is_closed() {
            return false;
        }
        let lane = &self.0.live;
        let mut st = lane.state.lock();
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
        let mut st = self.0.live.state.lock();
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
