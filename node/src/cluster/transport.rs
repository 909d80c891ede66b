//! Transport: opaque byte frames between nodes over ractor_cluster.
//!
//! ```text
//!   Transport::send(node, bytes)                     mpsc::Receiver<Inbound>
//!         │ routes[node]                                     ▲
//!         ▼                                                  │ decode header
//!   RemoteActor(peer's Endpoint) ─ NodeSession ═TCP═ NodeSession ─► Endpoint
//!                                  (cookie auth)
//! ```
//!
//! - One `Peers` actor (`transport/peers.rs`) per node supervises the ractor_cluster
//!   `NodeServer` (listening on `listen.cluster`, [`NodeConnectionMode::Isolated`]
//!   so ractor never dials on its own) and the `Endpoint`. It dials live members
//!   and keeps the routing table.
//! - The `Endpoint` (`transport/endpoint.rs`) is the only actor other nodes can reach. It joins
//!   the process group [`ENDPOINT_GROUP`], which ractor_cluster mirrors to every
//!   peer at the end of the handshake; the peer's stand-in for it carries the
//!   session's number in its `ActorId`, which Peers maps to the node id from the
//!   session's authenticated ractor name, `node_id~generation@host`.
//! - With `[tls]` (`tls.cluster`), sessions run over mutual TLS
//!   (`transport/tls.rs`): the node's own listener handshakes each connection in
//!   its own task, and dials check the peer's certificate against `tls.ca`.
//! - Each message is one frame (`transport/frame.rs`): a small header naming the
//!   sender, then the payload. Delivery is at most once and in order per session; a payload in
//!   flight when a session drops is lost, and nothing is retried here.
//!
//! [`NodeConnectionMode::Isolated`]: ractor_cluster::node::NodeConnectionMode::Isolated

mod endpoint;
mod frame;
mod peers;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use ractor::{Actor, ActorRef};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::endpoint::EndpointMsg;
use self::peers::{Peers, PeersArgs, PeersMsg, Routes};
use crate::cluster::membership::Member;

/// The ractor process group of the Endpoints, one per node.
pub const ENDPOINT_GROUP: &str = "chorus.endpoints";

/// Largest payload [`Transport::send`] accepts.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Largest inbound ractor_cluster frame: a payload, its header and ractor's own
/// framing. A peer that sends more is disconnected before anything is allocated.
const MAX_INBOUND_FRAME: u64 = MAX_PAYLOAD as u64 + 64 * 1024;

/// Everything [`Transport::start`] needs.
#[derive(Clone)]
pub struct TransportConfig {
    /// This node's id (`cluster.node_id`).
    pub node_id: String,
    /// This node's incarnation ([`Membership::generation`]): peers use it to tell a
    /// restarted node's new sessions from its old ones.
    ///
    /// [`Membership::generation`]: crate::cluster::Membership::generation
    pub generation: u64,
    /// The address to listen on (`listen.cluster`). Its port must not be 0: it is
    /// gossiped as the address to dial.
    pub listen: SocketAddr,
    /// The host name other nodes know this node by (the host of the advertised
    /// cluster address); part of the ractor node name, for logs.
    pub advertise_host: String,
    /// The shared secret (`cluster.cookie`). A peer with another cookie fails the
    /// handshake and is never connected.
    pub cookie: String,
    /// Frames received and not yet taken from the inbox. When it is full, the
    /// Endpoint waits and later frames queue in its mailbox.
    pub inbox_capacity: usize,
    /// Mutual TLS between nodes (`tls.cluster`); `None`: TCP in the clear.
    pub tls: Option<crate::tls::NodeTls>,
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("node_id", &self.node_id)
            .field("generation", &self.generation)
            .field("listen", &self.listen)
            .field("advertise_host", &self.advertise_host)
            .field("cookie", &"<redacted>")
            .field("inbox_capacity", &self.inbox_capacity)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A frame received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The node that sent it (as named in its header).
    pub from: String,
    /// The payload, as given to [`Transport::send`] on that node.
    pub payload: Vec<u8>,
}

/// Why a payload was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// There is no session to the node right now (unknown, dead, or reconnecting).
    #[error("no session to node {0}")]
    NotConnected(String),
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration cannot work.
    #[error("cluster transport: {0}")]
    Config(String),
    /// The listener could not be bound or an actor did not start.
    #[error("cluster transport could not start: {0}")]
    Start(String),
}

/// A running transport. Cheap to clone.
///
/// Its actors are not tied to this handle: dropping every clone leaves the
/// listener and the sessions up. Stop it with [`Transport::shutdown`].
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    peers: ActorRef<PeersMsg>,
    routes: Routes,
    connected: watch::Receiver<Vec<String>>,
    incarnations: watch::Receiver<BTreeMap<String, u64>>,
    /// Peers' join handle, awaited by [`Transport::shutdown`].
    stopped: Mutex<Option<JoinHandle<()>>>,
    /// Feeds membership changes to Peers; aborted on drop.
    forwarder: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.node_id)
            .field("connected", &*self.inner.connected.borrow())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Starts the listener, the Endpoint and Peers, which from then on keeps a
    /// session to every member of `members` (the live-member watch of
    /// [`Membership`](crate::cluster::Membership)).
    ///
    /// Returns the transport and the inbox of frames received from peers. The
    /// transport's actors are process-wide (ractor's registry and process groups
    /// are global): start one per process.
    pub async fn start(
        config: TransportConfig,
        mut members: watch::Receiver<Vec<Member>>,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), TransportError> {
        if !frame::is_valid_node_id(&config.node_id) {
            return Err(TransportError::Config(format!(
                "node id {:?} must be 1-64 bytes of [A-Za-z0-9_.-]",
                config.node_id
            )));
        }
        if config.listen.port() == 0 {
            return Err(TransportError::Config(
                "listen.cluster needs a fixed port: it is gossiped as the address to dial".into(),
            ));
        }
        if config.cookie.is_empty() {
            return Err(TransportError::Config(
                "the cookie must not be empty".into(),
            ));
        }
        let (inbox_tx, inbox) = mpsc::channel(config.inbox_capacity.max(1));
        let routes = Routes::default();
        let (connected_tx, connected) = watch::channel(Vec::new());
        let (incarnations_tx, incarnations) = watch::channel(BTreeMap::new());
        let node_id = config.node_id.clone();
        let (peers, stopped) = Actor::spawn(
            None,
            Peers,
            PeersArgs {
                node_id: config.node_id,
                generation: config.generation,
                listen: config.listen,
                advertise_host: config.advertise_host,
                cookie: config.cookie,
                inbox: inbox_tx,
                routes: routes.clone(),
                connected: connected_tx,
                incarnations: incarnations_tx,
                tls: config.tls,
            },
        )
        .await
        .map_err(|e| TransportError::Start(e.to_string()))?;

        let to_peers = peers.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                let live = members.borrow_and_update().clone();
                if to_peers.cast(PeersMsg::Members(live)).is_err()
                    || members.changed().await.is_err()
                {
                    break;
                }
            }
        });

        let transport = Self {
            inner: Arc::new(Inner {
                node_id,
                peers,
                routes,
                connected,
                incarnations,
                stopped: Mutex::new(Some(stopped)),
                forwarder,
            }),
        };
        Ok((transport, inbox))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Sends `payload` to `node`'s inbox. Sending to this node's own id delivers to
    /// its own inbox.
    ///
    /// `Ok` means the frame was queued on a live session, not that it arrived: it
    /// is lost if the session drops before writing it.
    pub fn send(&self, node: &str, payload: Vec<u8>) -> Result<(), SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge(payload.len()));
        }
        self.deliver(node, frame::encode(&self.inner.node_id, &payload))
    }

    /// Sends `bytes` to `node`'s Endpoint *without* a frame header, which the
    /// receiver must count as malformed and drop. For fault-injection tests of
    /// the receiving side; never useful otherwise.
    pub fn send_unframed(&self, node: &str, bytes: Vec<u8>) -> Result<(), SendError> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge(bytes.len()));
        }
        self.deliver(node, bytes)
    }

    fn deliver(&self, node: &str, frame: Vec<u8>) -> Result<(), SendError> {
        let endpoint = self
            .inner
            .routes
            .read()
            .get(node)
            .map(|route| route.endpoint.clone())
            .ok_or_else(|| SendError::NotConnected(node.to_string()))?;
        endpoint
            .send_message(EndpointMsg::Frame(frame))
            .map_err(|_| SendError::NotConnected(node.to_string()))
    }

    /// The incarnation of `node` if it has a session now (this node: its own).
    pub fn generation_of(&self, node: &str) -> Option<u64> {
        self.inner
            .routes
            .read()
            .get(node)
            .map(|route| route.generation)
    }

    /// The peers with a session right now, sorted (this node excluded).
    pub fn connected(&self) -> Vec<String> {
        self.inner.connected.borrow().clone()
    }

    /// A watch of [`Transport::connected`], updated as sessions come and go.
    pub fn watch_connected(&self) -> watch::Receiver<Vec<String>> {
        self.inner.connected.clone()
    }

    /// A watch of the incarnation each connected peer proved (node id →
    /// generation; this node excluded), updated as sessions come and go and when
    /// a restarted peer's new session replaces its old one. This, not gossip, is
    /// what confirms a generation.
    pub fn watch_incarnations(&self) -> watch::Receiver<BTreeMap<String, u64>> {
        self.inner.incarnations.clone()
    }

    /// Closes every session and the listener, and waits for the actors to stop.
    pub async fn shutdown(&self) {
        self.inner.forwarder.abort();
        self.inner.peers.stop(Some("shutdown".into()));
        let stopped = self.inner.stopped.lock().take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

/// The ractor node name of a Chorus node: `node_id~generation`. ractor_cluster
/// appends `@host`. `~` cannot occur in a node id, so the split is unambiguous.
mod peer_name {
    use super::frame::is_valid_node_id;

    /// The name this node gives ractor_cluster.
    pub(crate) fn encode(node_id: &str, generation: u64) -> String {
        format!("{node_id}~{generation}")
    }

    /// The node id and generation in a peer's full ractor name
    /// (`node_id~generation@host`); `None` if it is not a Chorus node's name.
    pub(crate) fn decode(full: &str) -> Option<(String, u64)> {
        let name = full.split_once('@').map_or(full, |(name, _host)| name);
        let (node_id, generation) = name.split_once('~')?;
        let generation = generation.parse().ok()?;
        is_valid_node_id(node_id).then(|| (node_id.to_string(), generation))
    }
}
