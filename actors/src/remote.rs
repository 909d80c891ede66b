//! The region's way to other nodes: sessions named across the cluster, and the
//! bookkeeping of requests whose answer comes back from another node.
//!
//! The node provides an [`Outbox`] (the transport); this module never sees
//! sockets. An entity answers a [`SessionRef`] without knowing where the session
//! is: a local one gets the frame in its queue, a remote one gets an
//! [`Envelope::Sessions`] to its node.
//!
//! **Answers across nodes.** A session's request budget stays on its node (see
//! [`crate::budget`]): an answer from another node frees it when it is queued
//! here. A send that goes to a Conversation on another node is remembered here,
//! in [`Link`], until the `ack`/`reject` for that id comes back; if the owner's
//! node goes away first (or never answers), the send is rejected with `internal`
//! so that the client retries with the same id; the store's idempotency window
//! makes the retry safe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use chorus_wire::cluster::{CloseCode, EntityEnvelope, Envelope, RequestEnvelope, SessionAddr};
use chorus_wire::codec::encode_envelope;
use chorus_wire::{ErrorCode, ServerFrame};

use crate::outbound::{CloseReason, OutFrame, SessionHandle, SessionId, SharedFrame};

/// How long a send forwarded to another node, or a call to one, may wait for
/// its answer: as long as the session's budget holds the request's units.
pub const REMOTE_ANSWER_TIMEOUT: Duration = crate::budget::STALE_AFTER;

/// Where the region's envelopes go: the node's transport.
pub trait Outbox: Send + Sync + 'static {
    /// Queues `bytes` for `node`; false if there is no session to it.
    fn send(&self, node: &str, bytes: Vec<u8>) -> bool;
    /// The generation of `node` if it is connected now.
    fn generation(&self, node: &str) -> Option<u64>;
}

/// A send whose answer is awaited from another node.
#[derive(Debug)]
struct RemoteSend {
    node: Arc<str>,
    session: SessionHandle,
    since: Instant,
}

/// A call (e.g. attaching a session to a remote User) awaiting its reply.
#[derive(Debug)]
struct Call {
    node: Arc<str>,
    reply: tokio::sync::oneshot::Sender<()>,
    since: Instant,
}

/// What a session is told when the node owning what it asked for cannot be
/// reached; its client retries.
pub(crate) const UNREACHABLE: &str = "the node owning this is unreachable; retry";

/// A request that carries a `ref` and is answered to one session.
#[derive(Debug)]
pub struct Request {
    /// Who asks.
    pub user: String,
    /// The request's `ref`.
    pub reference: String,
    /// Where the answer goes.
    pub reply: SessionRef,
}

impl Request {
    /// The request as it travels to another node.
    pub(crate) fn envelope(&self, link: &Link) -> RequestEnvelope {
        RequestEnvelope {
            user: self.user.clone(),
            reference: self.reference.clone(),
            reply: self.reply.addr(link),
        }
    }

    /// Answers that the node owning it is unreachable.
    pub(crate) fn unreachable(&self) {
        self.reply.send(ServerFrame::Error {
            reference: Some(self.reference.clone()),
            code: ErrorCode::Internal,
            message: UNREACHABLE.into(),
        });
    }
}

/// This node's end of the cluster: its identity, the outbox, and what it awaits
/// from other nodes.
pub struct Link {
    node_id: Arc<str>,
    generation: AtomicU64,
    outbox: OnceLock<Arc<dyn Outbox>>,
    next_call: AtomicU64,
    calls: Mutex<HashMap<u64, Call>>,
    sends: Mutex<HashMap<(SessionId, String), RemoteSend>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node_id", &self.node_id)
            .field("connected", &self.outbox.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Link {
    pub(crate) fn new(node_id: &str) -> Self {
        Self {
            node_id: Arc::from(node_id),
            generation: AtomicU64::new(0),
            outbox: OnceLock::new(),
            next_call: AtomicU64::new(1),
            calls: Mutex::new(HashMap::new()),
            sends: Mutex::new(HashMap::new()),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &Arc<str> {
        &self.node_id
    }

    /// This node's incarnation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Connects the link to the transport (once).
    pub(crate) fn connect(&self, generation: u64, outbox: Arc<dyn Outbox>) {
        self.generation.store(generation, Ordering::Relaxed);
        let _ = self.outbox.set(outbox);
    }

    /// Encodes and sends an envelope; false if `node` is not reachable.
    /// Sends an entity message that was forwarded `hops` times to `node`.
    pub(crate) fn send_entity(&self, node: &str, hops: u8, msg: EntityEnvelope) -> bool {
        self.send(node, &Envelope::Entity { hops, msg })
    }

    pub(crate) fn send(&self, node: &str, envelope: &Envelope) -> bool {
        let Some(outbox) = self.outbox.get() else {
            return false;
        };
        let sent = outbox.send(node, encode_envelope(envelope));
        if !sent {
            metrics::counter!("chorus_cluster_send_failures_total").increment(1);
        }
        sent
    }

    /// Whether this node is part of a cluster (connected to a transport).
    pub(crate) fn is_clustered(&self) -> bool {
        self.outbox.get().is_some()
    }

    /// Whether this node holds a transport session to `node` now.
    pub(crate) fn is_connected(&self, node: &str) -> bool {
        self.outbox
            .get()
            .is_some_and(|o| o.generation(node).is_some())
    }

    /// Whether a session of `addr` can still exist: its node is connected in the
    /// same incarnation.
    fn reachable(&self, addr: &SessionAddr) -> bool {
        self.outbox
            .get()
            .and_then(|o| o.generation(&addr.node))
            .is_some_and(|g| g == addr.generation)
    }

    /// The address of a session of this node.
    pub(crate) fn addr_of(&self, session: &SessionHandle) -> SessionAddr {
        SessionAddr {
            node: self.node_id.to_string(),
            generation: self.generation(),
            id: session.id(),
            user: session.user().to_string(),
        }
    }

    /// Registers a call to `node`; the receiver completes when it is answered and
    /// fails (is dropped) if `node` goes away first or the answer takes longer
    /// than [`REMOTE_ANSWER_TIMEOUT`].
    pub(crate) fn call(&self, node: &Arc<str>) -> (u64, tokio::sync::oneshot::Receiver<()>) {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut calls = self.calls.lock();
        calls.insert(
            id,
            Call {
                node: node.clone(),
                reply: tx,
                since: Instant::now(),
            },
        );
        (id, rx)
    }

    /// A reply arrived.
    pub(crate) fn complete_call(&self, call: u64) {
        let done = {
            let mut calls = self.calls.lock();
            calls.remove(&call)
        };
        if let Some(c) = done {
            let _ = c.reply.send(());
        }
    }

    /// Remembers a forwarded send until its answer comes back.
    pub(crate) fn await_answer(&self, node: &Arc<str>, session: &SessionHandle, client_id: &str) {
        let mut sends = self.sends.lock();
        sends.insert(
            (session.id(), client_id.to_string()),
            RemoteSend {
                node: node.clone(),
                session: session.clone(),
                since: Instant::now(),
            },
        );
    }

    /// An `ack`/`reject` for a local session arrived from another node.
    pub(crate) fn answered(&self, session: SessionId, client_id: &str) {
        let mut sends = self.sends.lock();
        sends.remove(&(session, client_id.to_string()));
    }

    /// Fails what waits on nodes that are gone, and sends and calls unanswered for
    /// too long: their clients retry (with the same id) instead of waiting forever.
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&self, now: Instant) {
        let Some(outbox) = self.outbox.get() else {
            return;
        };
        let late = |since: Instant| now.saturating_duration_since(since) > REMOTE_ANSWER_TIMEOUT;
        let gone = |node: &str| outbox.generation(node).is_none();
        let lost: Vec<((SessionId, String), RemoteSend)> = {
            let mut sends = self.sends.lock();
            let keys: Vec<(SessionId, String)> = sends
                .iter()
                .filter(|(_, s)| gone(&s.node) || late(s.since) || s.session.is_closed())
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| sends.remove_entry(&k))
                .collect()
        };
        for ((_, client_id), send) in lost {
            send.session.reject(
                &client_id,
                ErrorCode::Internal,
                "the conversation's node did not answer; retry",
                None,
            );
        }
        let mut calls = self.calls.lock();
        calls.retain(|_, c| !gone(&c.node) && !late(c.since));
    }

    #[cfg(test)]
    fn calls_waiting(&self) -> usize {
        self.calls.lock().len()
    }
}

/// A session somewhere in the cluster, as an entity holds it.
#[derive(Debug, Clone)]
pub enum SessionRef {
    /// Connected to this node.
    Local(SessionHandle),
    /// Connected to another node.
    Remote(Arc<RemoteSession>),
}

/// A session on another node.
#[derive(Debug)]
pub struct RemoteSession {
    addr: SessionAddr,
    link: Arc<Link>,
}

impl From<SessionHandle> for SessionRef {
    fn from(handle: SessionHandle) -> Self {
        Self::Local(handle)
    }
}

impl SessionRef {
    /// A session of another node.
    pub(crate) fn remote(addr: SessionAddr, link: Arc<Link>) -> Self {
        Self::Remote(Arc::new(RemoteSession { addr, link }))
    }

    /// The session's id (unique in the cluster).
    pub fn id(&self) -> SessionId {
        match self {
            Self::Local(h) => h.id(),
            Self::Remote(r) => r.addr.id,
        }
    }

    /// The node holding the session's socket, if not this one.
    pub fn remote_node(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote(r) => Some(&r.addr.node),
        }
    }

    /// The session's address, as another node names it.
    pub(crate) fn addr(&self, link: &Link) -> SessionAddr {
        match self {
            Self::Local(h) => link.addr_of(h),
            Self::Remote(r) => r.addr.clone(),
        }
    }

    /// Queues a frame (see [`SessionHandle::push`]); for a remote session, sends it
    /// to its node. False when the frame was not queued or sent.
    pub fn push(&self, frame: SharedFrame) -> bool {
        match self {
            Self::Local(h) => h.push(frame),
            Self::Remote(r) => r.link.send(
                &r.addr.node,
                &Envelope::Sessions {
                    ids: vec![r.addr.id],
                    user: r.addr.user.clone(),
                    frame: chorus_wire::cluster::NestedFrame(frame.frame().clone()),
                },
            ),
        }
    }

    /// Wraps and queues a frame meant for this session alone.
    pub fn send(&self, frame: ServerFrame) -> bool {
        match self {
            Self::Local(h) => h.send(frame),
            Self::Remote(_) => self.push(OutFrame::new(frame)),
        }
    }

    /// Answers a `send`/`danmaku` with `reject` (see [`SessionHandle::reject`]).
    pub fn reject(
        &self,
        id: &str,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: Option<u64>,
    ) {
        match self {
            Self::Local(h) => h.reject(id, code, message, retry_after_ms),
            Self::Remote(_) => {
                self.send(crate::outbound::reject_frame(
                    id,
                    code,
                    message.into(),
                    retry_after_ms,
                ));
            }
        }
    }

    /// Closes the session's connection.
    pub fn close(&self, reason: CloseReason) {
        match self {
            Self::Local(h) => h.close(reason),
            Self::Remote(r) => {
                let reason = match reason {
                    CloseReason::Kicked => CloseCode::Kicked,
                    CloseReason::SlowConsumer | CloseReason::SlowViewer => CloseCode::SlowConsumer,
                    CloseReason::Shutdown => CloseCode::Shutdown,
                };
                r.link.send(
                    &r.addr.node,
                    &Envelope::Close {
                        ids: vec![r.addr.id],
                        reason,
                    },
                );
            }
        }
    }

    /// Whether the session is gone: closed here, or its node is no longer
    /// connected in the incarnation that held it.
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Local(h) => h.is_closed(),
            Self::Remote(r) => !r.link.reachable(&r.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport on which every node is connected, in generation 1.
    struct AllConnected;

    impl Outbox for AllConnected {
        fn send(&self, _node: &str, _bytes: Vec<u8>) -> bool {
            true
        }
        fn generation(&self, _node: &str) -> Option<u64> {
            Some(1)
        }
    }

    #[test]
    fn a_call_never_answered_is_dropped_after_the_answer_timeout() {
        let link = Link::new("n1");
        link.connect(1, Arc::new(AllConnected));
        let node: Arc<str> = Arc::from("n2");
        let (_, mut waiting) = link.call(&node);
        let (answered_id, mut answered) = link.call(&node);
        link.complete_call(answered_id);
        assert_eq!(answered.try_recv(), Ok(()));
        link.sweep_at(Instant::now() + REMOTE_ANSWER_TIMEOUT / 2);
        assert_eq!(link.calls_waiting(), 1, "still within its time");
        link.sweep_at(Instant::now() + REMOTE_ANSWER_TIMEOUT + Duration::from_secs(1));
        assert_eq!(link.calls_waiting(), 0);
        assert!(
            matches!(
                waiting.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ),
            "the caller learns the call failed"
        );
    }
}
