//! The cluster layer: who the other nodes are, and a byte pipe to each of them.
//!
//! - [`membership`]: chitchat gossip over UDP (`listen.gossip`), every datagram
//!   sealed with an HMAC under a key derived from `cluster.cookie`. Each node
//!   publishes its transport, client and admin addresses, its status and its
//!   load; a phi-accrual failure detector says who is alive.
//! - [`transport`]: ractor_cluster sessions over TCP (`listen.cluster`),
//!   authenticated by `cluster.cookie`, kept up by the `Peers` actor from what
//!   membership reports, carrying opaque frames to one `Endpoint` actor per node.
//!
//! ```text
//!            ┌──────────────── one node ────────────────────────────────┐
//!            │                                                          │
//!  UDP  ◄───►│ Membership (chitchat over sealed UDP: HMAC, once, fresh) │
//!  gossip    │   keys: cluster_addr tcp ws admin status load            │
//!            │   │ watch<Vec<Member>> (live members)                    │
//!            │   ▼                                                      │
//!            │ Peers ─────── dials members > self, backoff, closes dead │
//!            │ ├── NodeServer (ractor_cluster, Isolated, cookie)        │
//!  TCP  ◄───►│ │   └── NodeSession per peer ── RemoteActor(peer's Endpoint)
//!  cluster   │ └── Endpoint (pg "chorus.endpoints")                     │
//!            │        │ decode header, never panic                      │
//!            │        ▼                                                 │
//!            │   mpsc::Receiver<Inbound{from, payload}>                 │
//!            │                                                          │
//!            │ Transport::send(node, bytes) ─► routes[node] ─► Endpoint │
//!            └──────────────────────────────────────────────────────────┘
//! ```
//!
//! Starting it, given the node's config and its bound listener addresses:
//!
//! ```no_run
//! # async fn start(config: &chorus_config::Config, bound: &chorus_config::ListenAddrs)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use chorus_node::cluster::{Membership, MembershipConfig, MemberStatus, Transport, TransportConfig};
//!
//! let membership = Membership::start(MembershipConfig::from_config(&config.cluster, bound).await?).await?;
//! let (transport, mut inbox) = Transport::start(
//!     TransportConfig {
//!         node_id: membership.node_id().to_string(),
//!         generation: membership.generation(),
//!         listen: bound.cluster,
//!         advertise_host: config.cluster.advertise_host.clone()
//!             .unwrap_or_else(|| bound.cluster.ip().to_string()),
//!         cookie: config.cluster.cookie.expose().to_string(),
//!         inbox_capacity: 4096,
//!         tls: None,
//!     },
//!     membership.live(),
//! )
//! .await?;
//! membership.set_status(MemberStatus::Serving).await;
//! while let Some(frame) = inbox.recv().await {
//!     // frame.from, frame.payload: decode with our own codec, fallibly.
//! }
//! # Ok(()) }
//! ```
//!
//! # Node ids
//!
//! A node's id (`cluster.node_id`) is its chitchat node id, with the start time in
//! ms as chitchat's generation, so a restart is a new incarnation. To ractor_cluster
//! the node is named `node_id~generation` (ractor appends `@host`); once a session is
//! authenticated, `Peers` reads the peer's id and generation from that name. A
//! peer's Endpoint reaches this node as a `RemoteActor` whose `ActorId` carries
//! ractor's number for the session, which is how `Peers` knows which node each
//! Endpoint in the process group belongs to. Frames name their sender in a header,
//! since ractor does not tell the receiver which session a message came by.
//!
//! # Timings
//!
//! | what | value | where |
//! |---|---|---|
//! | gossip round | 250 ms | [`GossipTiming`] |
//! | dead after | 12 × the mean observed heartbeat interval, checked every round: 1.7–2.7 s after `kill -9` (measured, 3 nodes on loopback) | [`GossipTiming`] |
//! | sessions to a killed node close | at once (its kernel closes the sockets) | ractor_cluster |
//! | a restarted node is connected again | 0.5–0.8 s after its start; 0.2–0.6 s if restarted before it was declared dead (measured) | membership + `peers` |
//! | dial: address lookup, TCP connect | 2 s each | `peers` |
//! | handshake (cookie challenge, process-group sync) | 5 s, then the session is closed | `peers` |
//! | redial backoff | 200 ms doubling to 5 s, ±25 % jitter | `peers` |
//!
//! ractor_cluster pings every 1–5 s but never times a pong out, so a hung peer is
//! noticed by gossip, not by TCP: when membership declares a node dead, `Peers`
//! closes its session. A new generation of a node in gossip is dialed, but the
//! old session stays until the new one is authenticated and replaces it. A killed process's sockets are
//! closed by its kernel, so its sessions drop at once; it leaves the live members
//! when gossip declares it dead. `node/tests/cluster_transport.rs` measures both
//! on loopback with real processes.
//!
//! # What plugs in next
//!
//! 1. **Placement**: `owner(shard)` by rendezvous hashing over the members whose
//!    status is `serving` *and* that hold a transport session (plus this node),
//!    as the incarnation the session proved: a sealed gossip packet can still be
//!    replayed within its window, or written by any holder of the cookie, while a
//!    session proves the cookie under that name and generation. Recomputed on
//!    every change of [`Membership::live`] and [`Transport::watch_incarnations`]
//!    ([`runtime`]).
//! 2. **ShardRegion forwarding**: an envelope for a remote owner is encoded with our
//!    codec (a kind tag, the entity key, the request, a trace id) and sent with
//!    [`Transport::send`]; the region drains the inbox, decodes fallibly, and
//!    delivers locally. A [`SendError::NotConnected`] or a membership change while
//!    a request is in flight must be answered (retry after re-placement, or an
//!    `internal` error to the client), since delivery is at most once.
//! 3. **Session addressing**: a User entity on one node pushes to sessions on
//!    another, so a session's address becomes `(node_id, connection id)` and pushes
//!    for remote sessions travel as frames to that node's gateway.
//! 4. Status: `joining` at start, `serving` once the store and listeners are up,
//!    `draining` during `chorusctl drain`; load from the gateway's connection count
//!    via [`Membership::set_load`].

pub mod membership;
pub mod runtime;
pub mod transport;

pub use membership::{
    Advertised, GossipTiming, Member, MemberStatus, Membership, MembershipConfig, MembershipError,
};
pub use transport::{Inbound, SendError, Transport, TransportConfig, TransportError};
