//! `Peers`: keeps one authenticated session to every live member, and the routing
//! table that [`Transport::send`](super::Transport::send) reads.
//!
//! ractor_cluster neither discovers peers nor reconnects, and its pings have no
//! missed-pong timeout. Peers fills those gaps from membership:
//! - it dials every live member whose node id sorts *after* ours (one dialer per
//!   pair, so ractor's simultaneous-connect election never has to run);
//! - it redials with exponential backoff when a dial, a handshake or a session
//!   fails, for as long as the member is live;
//! - it closes the session of a member that gossip declares dead, since TCP alone
//!   may never notice;
//! - it dials a new incarnation of a member (a restart) while the session to the
//!   old one stays up; the new session, authenticated under the new generation,
//!   then replaces the old. Gossip alone never closes a session to a live
//!   incarnation: a packet replayed or forged by a holder of the cookie cannot
//!   cut a node off.
//!
//! Peers supervises the `NodeServer` and the `Endpoint`; if either stops, Peers
//! fails too, and the transport is down (escalated to whoever supervises it).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    NodeEventSubscription, NodeId, NodeServer, NodeServerMessage, NodeSessionMessage,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::endpoint::Endpoint;
use super::{ENDPOINT_GROUP, Inbound, MAX_INBOUND_FRAME, peer_name};
use crate::cluster::membership::Member;

mod dialing;
mod routing;

use dialing::Link;
#[cfg(test)]
pub(crate) use dialing::backoff;
use routing::Session;

/// How often Peers dials what is due and times out stuck handshakes.
const TICK: Duration = Duration::from_millis(100);

/// The routing table: node id → its Endpoint (this node's own included).
pub(crate) type Routes = Arc<RwLock<HashMap<String, Route>>>;

/// Where frames for one node go.
#[derive(Clone)]
pub(crate) struct Route {
    /// The Endpoint: local for this node, a `RemoteActor` for a peer.
    pub(crate) endpoint: ActorCell,
    /// The incarnation of the node this route reaches.
    pub(crate) generation: u64,
    /// The session carrying it (`None` for this node).
    session: Option<ActorId>,
}

/// The Peers actor.
pub(crate) struct Peers;

/// What Peers starts from.
pub(crate) struct PeersArgs {
    pub(crate) node_id: String,
    pub(crate) generation: u64,
    pub(crate) listen: SocketAddr,
    pub(crate) advertise_host: String,
    pub(crate) cookie: String,
    pub(crate) inbox: mpsc::Sender<Inbound>,
    pub(crate) routes: Routes,
    pub(crate) connected: watch::Sender<Vec<String>>,
    pub(crate) incarnations: watch::Sender<BTreeMap<String, u64>>,
    pub(crate) tls: Option<crate::tls::NodeTls>,
}

/// Messages of Peers. None crosses nodes.
pub(crate) enum PeersMsg {
    /// 1. The live members changed (from the membership watch).
    Members(Vec<Member>),
    /// 2. Time to dial what is due and to time out stuck handshakes.
    Tick,
    /// 3. A dial finished its TCP connect (`Ok` with the address dialed) or failed.
    Dialed {
        node: String,
        attempt: u64,
        result: Result<SocketAddr, String>,
    },
    /// 4A. The NodeServer opened a session (TCP connected, not yet authenticated).
    SessionOpened(SessionInfo),
    /// 4B. A session authenticated and exchanged its process groups: usable.
    SessionReady(SessionInfo),
    /// 4C. A session closed (TCP error, failed handshake, or stopped by us).
    SessionClosed(SessionInfo),
}

impl ractor::Message for PeersMsg {}

/// The part of a NodeServer session event Peers uses.
pub(crate) struct SessionInfo {
    actor: ActorRef<NodeSessionMessage>,
    /// ractor_cluster's number for the session; remote actors reached through it
    /// carry it in their `ActorId`.
    ractor_node: NodeId,
    is_server: bool,
    peer_addr: String,
    /// The peer's ractor node name (`node~generation@host`), once it sent it.
    peer_name: Option<String>,
}

impl SessionInfo {
    fn from_event(ses: &NodeServerSessionInformation) -> Self {
        Self {
            actor: ses.actor.clone(),
            ractor_node: ses.node_id,
            is_server: ses.is_server,
            peer_addr: ses.peer_addr.clone(),
            peer_name: ses.peer_name.as_ref().map(|name| name.name.clone()),
        }
    }
}

/// Forwards the NodeServer's session events to Peers.
struct SessionEvents(ActorRef<PeersMsg>);

impl NodeEventSubscription for SessionEvents {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(PeersMsg::SessionOpened(SessionInfo::from_event(&ses)));
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(PeersMsg::SessionClosed(SessionInfo::from_event(&ses)));
    }

    fn node_session_authenticated(&self, _ses: NodeServerSessionInformation) {
        // Not usable until ready: the peer's Endpoint arrives in between.
    }

    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(PeersMsg::SessionReady(SessionInfo::from_event(&ses)));
    }
}

/// The state of Peers.
pub(crate) struct PeersState {
    node_id: String,
    server: ActorRef<NodeServerMessage>,
    /// The live incarnations of every node but this one, oldest first.
    members: HashMap<String, Vec<Member>>,
    links: HashMap<String, Link>,
    sessions: HashMap<ActorId, Session>,
    routes: Routes,
    connected: watch::Sender<Vec<String>>,
    /// The generation each connected peer's session was authenticated under.
    incarnations: watch::Sender<BTreeMap<String, u64>>,
    next_attempt: u64,
    tick: JoinHandle<()>,
    /// Dials use TLS with it; `None`: in the clear.
    tls: Option<crate::tls::NodeTls>,
    /// The TLS accept loop on `listen.cluster`, in TLS mode.
    tls_listener: Option<JoinHandle<()>>,
}

impl Actor for Peers {
    type Msg = PeersMsg;
    type State = PeersState;
    type Arguments = PeersArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (endpoint, _) =
            Actor::spawn_linked(None, Endpoint, args.inbox, myself.get_cell()).await?;
        args.routes.write().insert(
            args.node_id.clone(),
            Route {
                endpoint: endpoint.get_cell(),
                generation: args.generation,
                session: None,
            },
        );

        // In TLS mode ractor's own listener is sealed on loopback and ours takes
        // `listen.cluster` (see `tls.rs`).
        let (port, listen_ip, encryption) = match &args.tls {
            None => (args.listen.port(), args.listen.ip(), None),
            Some(_) => {
                let (ip, sealed) = super::tls::sealed_listener(args.listen)?;
                (0, ip, Some(sealed))
            }
        };
        let server = NodeServer::new(
            port,
            args.cookie,
            peer_name::encode(&args.node_id, args.generation),
            args.advertise_host,
            encryption,
            // Peers decides whom to connect to; ractor must not dial on its own.
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(listen_ip)
        .with_max_inbound_frame_size(MAX_INBOUND_FRAME);
        let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
        let tls_listener = match &args.tls {
            None => None,
            Some(tls) => Some(
                super::tls::serve(
                    args.listen,
                    tls.clone(),
                    server.clone(),
                    dialing::HANDSHAKE_TIMEOUT,
                )
                .await?,
            ),
        };
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "chorus.peers".to_string(),
            subscription: Box::new(SessionEvents(myself.clone())),
        })?;
        ractor::pg::monitor(ENDPOINT_GROUP.to_string(), myself.get_cell());
        let tick = myself.send_interval(TICK, || PeersMsg::Tick);

        Ok(PeersState {
            node_id: args.node_id,
            server,
            members: HashMap::new(),
            links: HashMap::new(),
            sessions: HashMap::new(),
            routes: args.routes,
            connected: args.connected,
            incarnations: args.incarnations,
            next_attempt: 0,
            tick,
            tls: args.tls,
            tls_listener,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.tick.abort();
        if let Some(listener) = state.tls_listener.take() {
            listener.abort();
        }
        ractor::pg::demonitor(ENDPOINT_GROUP.to_string(), myself.get_id());
        state.routes.write().clear();
        state.connected.send_replace(Vec::new());
        state.incarnations.send_replace(BTreeMap::new());
        myself
            .stop_children_and_wait(
                Some("transport stopped".into()),
                Some(Duration::from_secs(5)),
            )
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PeersMsg::Members(members) => {
                state.on_members(members);
                state.dial_due(&myself);
            }
            PeersMsg::Tick => {
                state.expire_handshakes();
                state.dial_due(&myself);
            }
            PeersMsg::Dialed {
                node,
                attempt,
                result,
            } => state.on_dialed(&node, attempt, result),
            PeersMsg::SessionOpened(info) => state.on_opened(info),
            PeersMsg::SessionReady(info) => state.on_ready(info),
            PeersMsg::SessionClosed(info) => state.on_closed(&info),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ProcessGroupChanged(change) => state.on_group_change(change),
            SupervisionEvent::ActorTerminated(child, _, reason) => {
                return Err(format!(
                    "cluster transport child {} stopped ({})",
                    child.get_id(),
                    reason.unwrap_or_default()
                )
                .into());
            }
            SupervisionEvent::ActorFailed(child, error) => {
                return Err(
                    format!("cluster transport child {} failed: {error}", child.get_id()).into(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}
