//! `Peers`: keeps one authenticated session to every live member, and the routing
//! table that [`Transport::send`](super::Transport::send) reads.
//!
//! ractor_cluster neither discovers peers nor reconnects, and its pings have no
//! missed-pong timeout. Peers fills those gaps from membership:
//! - it dials every live member whose node id sorts *after* ours (one dialer per
//!   pair, so ractor's simultaneous-connect election never has to run);
//! - it redials with exponential backoff when a dial, a handshake or a session
//!   fails, for as long as the member is live;
//! - it closes the session of a member that gossip declares dead or that restarted
//!   (a new generation), since TCP alone may never notice.
//!
//! Peers supervises the `NodeServer` and the `Endpoint`; if either stops, Peers
//! fails too, and the transport is down (escalated to whoever supervises it).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    NodeEventSubscription, NodeId, NodeServer, NodeServerMessage, NodeSessionMessage,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::{ENDPOINT_GROUP, Inbound, MAX_INBOUND_FRAME, peer_name};
use crate::cluster::membership::Member;

/// How often Peers dials what is due and times out stuck handshakes.
const TICK: Duration = Duration::from_millis(100);
/// Address lookup and TCP connect, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// From TCP connect to a ready session (cookie challenge and state exchange). A
/// session that is not ready by then is closed, whoever opened it: a client that
/// connects and never authenticates holds nothing for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First redial delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest redial delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The routing table: node id → its Endpoint (this node's own included).
pub(crate) type Routes = Arc<RwLock<HashMap<String, Route>>>;

/// Where frames for one node go.
#[derive(Clone)]
pub(crate) struct Route {
    /// The Endpoint: local for this node, a `RemoteActor` for a peer.
    pub(crate) endpoint: ActorCell,
    /// The incarnation of the node this route reaches.
    generation: u64,
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

/// One session the NodeServer opened.
struct Session {
    actor: ActorRef<NodeSessionMessage>,
    ractor_node: NodeId,
    is_server: bool,
    peer_addr: String,
    opened: Instant,
    /// Known once the session is ready.
    peer: Option<(String, u64)>,
}

/// Our side of the dialing to one member whose id sorts after ours.
struct Link {
    phase: Phase,
    /// Consecutive failures; sets the next backoff.
    failures: u32,
}

/// The states of a [`Link`], in the order they happen.
enum Phase {
    /// 1. Waiting to dial at `at` (now, or after a backoff).
    Waiting { at: Instant },
    /// 2. Dial `attempt` under way since `started`: TCP connect, then the handshake
    ///    of `session` once the NodeServer reports it (matched by `addr`).
    Dialing {
        attempt: u64,
        started: Instant,
        addr: Option<SocketAddr>,
        session: Option<ActorId>,
    },
    /// 3. Connected through `session`. When it closes: back to 1 after a backoff.
    Up { session: ActorId },
}

/// The state of Peers.
pub(crate) struct PeersState {
    node_id: String,
    server: ActorRef<NodeServerMessage>,
    /// Live members other than this node.
    members: HashMap<String, Member>,
    links: HashMap<String, Link>,
    sessions: HashMap<ActorId, Session>,
    routes: Routes,
    connected: watch::Sender<Vec<String>>,
    next_attempt: u64,
    tick: JoinHandle<()>,
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
        args.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                args.node_id.clone(),
                Route {
                    endpoint: endpoint.get_cell(),
                    generation: args.generation,
                    session: None,
                },
            );

        let server = NodeServer::new(
            args.listen.port(),
            args.cookie,
            peer_name::encode(&args.node_id, args.generation),
            args.advertise_host,
            None,
            // Peers decides whom to connect to; ractor must not dial on its own.
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(args.listen.ip())
        .with_max_inbound_frame_size(MAX_INBOUND_FRAME);
        let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
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
            next_attempt: 0,
            tick,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.tick.abort();
        ractor::pg::demonitor(ENDPOINT_GROUP.to_string(), myself.get_id());
        state
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        state.connected.send_replace(Vec::new());
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

impl PeersState {
    /// Whether this node dials `node` (rather than waiting to be dialed).
    fn dials(&self, node: &str) -> bool {
        self.node_id.as_str() < node
    }

    fn on_members(&mut self, members: Vec<Member>) {
        let members: HashMap<String, Member> = members
            .into_iter()
            .filter(|member| member.node_id != self.node_id)
            .map(|member| (member.node_id.clone(), member))
            .collect();

        // Gossip is the authority on who is alive: a session to a node it declared
        // dead, or to a previous incarnation of a restarted node, is closed even if
        // its TCP connection still looks fine.
        let stale: Vec<String> = self
            .routes_snapshot()
            .into_iter()
            .filter(|(node, route)| {
                node != &self.node_id
                    && match (self.members.get(node), members.get(node)) {
                        (Some(_), None) => true,
                        (_, Some(now)) => now.generation > route.generation,
                        (None, None) => false,
                    }
            })
            .map(|(node, _)| node)
            .collect();
        for node in stale {
            tracing::info!(peer = %node, "closing the session of a dead or restarted member");
            self.drop_route(&node, "member dead or restarted");
        }

        for (node, member) in &members {
            if !self.dials(node) {
                continue;
            }
            let restarted = self
                .members
                .get(node)
                .is_some_and(|before| before.generation != member.generation);
            match self.links.get_mut(node) {
                Some(link) if restarted => {
                    // A new incarnation: dial it now, forgetting past failures.
                    if let Phase::Dialing {
                        session: Some(session),
                        ..
                    } = &link.phase
                        && let Some(session) = self.sessions.get(session)
                    {
                        session.actor.stop(Some("member restarted".into()));
                    }
                    link.failures = 0;
                    link.phase = Phase::Waiting { at: Instant::now() };
                }
                Some(_) => {}
                None => {
                    self.links.insert(
                        node.clone(),
                        Link {
                            phase: Phase::Waiting { at: Instant::now() },
                            failures: 0,
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = self
            .links
            .keys()
            .filter(|node| !members.contains_key(*node))
            .cloned()
            .collect();
        for node in gone {
            if let Some(Link {
                phase:
                    Phase::Dialing {
                        session: Some(session),
                        ..
                    },
                ..
            }) = self.links.remove(&node)
                && let Some(session) = self.sessions.get(&session)
            {
                session.actor.stop(Some("member dead".into()));
            }
        }
        self.members = members;
    }

    /// Starts a dial for every link whose wait is over.
    fn dial_due(&mut self, myself: &ActorRef<PeersMsg>) {
        let now = Instant::now();
        let due: Vec<String> = self
            .links
            .iter()
            .filter(|(_, link)| matches!(link.phase, Phase::Waiting { at } if at <= now))
            .map(|(node, _)| node.clone())
            .collect();
        for node in due {
            let Some(target) = self.members.get(&node).map(|m| m.cluster_addr.clone()) else {
                continue;
            };
            self.next_attempt += 1;
            let attempt = self.next_attempt;
            if let Some(link) = self.links.get_mut(&node) {
                link.phase = Phase::Dialing {
                    attempt,
                    started: now,
                    addr: None,
                    session: None,
                };
            }
            let server = self.server.clone();
            let peers = myself.clone();
            tokio::spawn(async move {
                let result = dial(&server, &target).await;
                let _ = peers.cast(PeersMsg::Dialed {
                    node,
                    attempt,
                    result,
                });
            });
        }
    }

    fn on_dialed(&mut self, node: &str, attempt: u64, result: Result<SocketAddr, String>) {
        let Some(link) = self.links.get_mut(node) else {
            return;
        };
        let Phase::Dialing {
            attempt: current,
            addr,
            session,
            ..
        } = &mut link.phase
        else {
            return;
        };
        if *current != attempt {
            return;
        }
        match result {
            Ok(dialed) => {
                *addr = Some(dialed);
                if session.is_none() {
                    // The NodeServer may have reported the session first.
                    let dialed = dialed.to_string();
                    let claimed: HashSet<ActorId> = self
                        .links
                        .values()
                        .filter_map(|link| match link.phase {
                            Phase::Dialing { session, .. } => session,
                            Phase::Up { session } => Some(session),
                            Phase::Waiting { .. } => None,
                        })
                        .collect();
                    let found = self
                        .sessions
                        .iter()
                        .find(|(id, s)| {
                            !s.is_server
                                && s.peer.is_none()
                                && s.peer_addr == dialed
                                && !claimed.contains(id)
                        })
                        .map(|(id, _)| *id);
                    if let Some(Link {
                        phase: Phase::Dialing { session, .. },
                        ..
                    }) = self.links.get_mut(node)
                    {
                        *session = found;
                    }
                }
            }
            Err(error) => self.fail(node, &error),
        }
    }

    fn on_opened(&mut self, info: SessionInfo) {
        let id = info.actor.get_id();
        if !info.is_server {
            // Match the session to the dial that opened it.
            for link in self.links.values_mut() {
                if let Phase::Dialing {
                    addr: Some(addr),
                    session: session @ None,
                    ..
                } = &mut link.phase
                    && addr.to_string() == info.peer_addr
                {
                    *session = Some(id);
                    break;
                }
            }
        }
        self.sessions.insert(
            id,
            Session {
                actor: info.actor,
                ractor_node: info.ractor_node,
                is_server: info.is_server,
                peer_addr: info.peer_addr,
                opened: Instant::now(),
                peer: None,
            },
        );
    }

    fn on_ready(&mut self, info: SessionInfo) {
        let id = info.actor.get_id();
        let parsed = info.peer_name.as_deref().and_then(peer_name::decode);
        let Some((node, generation)) = parsed else {
            tracing::warn!(peer = ?info.peer_name, addr = %info.peer_addr, "closing a session whose peer has no Chorus node name");
            info.actor.stop(Some("bad peer name".into()));
            return;
        };
        if node == self.node_id {
            info.actor.stop(Some("connected to itself".into()));
            return;
        }
        if self
            .members
            .get(&node)
            .is_some_and(|member| member.generation > generation)
        {
            info.actor.stop(Some("previous incarnation".into()));
            return;
        }
        let session = self.sessions.entry(id).or_insert_with(|| Session {
            actor: info.actor.clone(),
            ractor_node: info.ractor_node,
            is_server: info.is_server,
            peer_addr: info.peer_addr.clone(),
            opened: Instant::now(),
            peer: None,
        });
        session.peer = Some((node.clone(), generation));
        tracing::info!(peer = %node, generation, addr = %info.peer_addr, inbound = info.is_server, "cluster session ready");
        if let Some(link) = self.links.get_mut(&node) {
            link.phase = Phase::Up { session: id };
            link.failures = 0;
        }
        if let Some(endpoint) = remote_endpoint(info.ractor_node) {
            self.install_route(&node, generation, id, endpoint);
        }
    }

    fn on_closed(&mut self, info: &SessionInfo) {
        let id = info.actor.get_id();
        let session = self.sessions.remove(&id);
        let routed = self
            .routes_snapshot()
            .into_iter()
            .find(|(_, route)| route.session == Some(id))
            .map(|(node, _)| node);
        if let Some(node) = &routed {
            self.remove_route(node);
            tracing::info!(peer = %node, "cluster session closed");
        }
        let failed: Option<String> = self.links.iter().find_map(|(node, link)| {
            let ours = match &link.phase {
                Phase::Up { session } => *session == id,
                Phase::Dialing {
                    session: Some(session),
                    ..
                } => *session == id,
                Phase::Dialing {
                    session: None,
                    addr: Some(addr),
                    ..
                } => !info.is_server && addr.to_string() == info.peer_addr,
                _ => false,
            };
            ours.then(|| node.clone())
        });
        if let Some(node) = failed {
            let was_up = matches!(
                self.links.get(&node),
                Some(Link {
                    phase: Phase::Up { .. },
                    ..
                })
            );
            if was_up && let Some(link) = self.links.get_mut(&node) {
                link.failures = 0;
            }
            let why = if was_up {
                "session closed"
            } else if session.is_some_and(|s| s.peer.is_none()) {
                "handshake refused (wrong cookie?)"
            } else {
                "session closed during the handshake"
            };
            self.fail(&node, why);
        }
    }

    fn on_group_change(&mut self, change: GroupChangeMessage) {
        match change {
            GroupChangeMessage::Join(_, group, cells) if group == ENDPOINT_GROUP => {
                for cell in cells {
                    let cell_id = cell.get_id();
                    if cell_id.is_local() {
                        continue;
                    }
                    let ready = self.sessions.iter().find_map(|(id, s)| {
                        (s.ractor_node == cell_id.node())
                            .then(|| s.peer.clone().map(|peer| (*id, peer)))
                            .flatten()
                    });
                    if let Some((session, (node, generation))) = ready {
                        self.install_route(&node, generation, session, cell);
                    }
                }
            }
            GroupChangeMessage::Leave(_, group, cells) if group == ENDPOINT_GROUP => {
                let left: HashSet<ActorId> = cells.iter().map(ActorCell::get_id).collect();
                let routes: Vec<String> = self
                    .routes_snapshot()
                    .into_iter()
                    .filter(|(_, route)| {
                        route.session.is_some() && left.contains(&route.endpoint.get_id())
                    })
                    .map(|(node, _)| node)
                    .collect();
                for node in routes {
                    self.remove_route(&node);
                }
            }
            _ => {}
        }
    }

    /// Closes sessions that are not ready in time, and gives up on dials that
    /// never produced a ready session.
    fn expire_handshakes(&mut self) {
        let now = Instant::now();
        for session in self.sessions.values() {
            if session.peer.is_none() && now.duration_since(session.opened) > HANDSHAKE_TIMEOUT {
                tracing::warn!(addr = %session.peer_addr, inbound = session.is_server, "closing a cluster session that did not authenticate in time");
                session.actor.stop(Some("handshake timeout".into()));
            }
        }
        let stuck: Vec<String> = self
            .links
            .iter()
            .filter(|(_, link)| {
                matches!(link.phase, Phase::Dialing { started, .. }
                    if now.duration_since(started) > HANDSHAKE_TIMEOUT)
            })
            .map(|(node, _)| node.clone())
            .collect();
        for node in stuck {
            self.fail(&node, "handshake timed out");
        }
    }

    /// Records a failed dial or a lost session and schedules the next dial.
    fn fail(&mut self, node: &str, why: &str) {
        let Some(link) = self.links.get_mut(node) else {
            return;
        };
        if let Phase::Dialing {
            session: Some(session),
            ..
        } = &link.phase
            && let Some(session) = self.sessions.get(session)
        {
            session.actor.stop(Some(why.to_string()));
        }
        link.failures = link.failures.saturating_add(1);
        let delay = backoff(link.failures);
        link.phase = Phase::Waiting {
            at: Instant::now() + delay,
        };
        metrics::counter!("chorus_cluster_dial_failures_total").increment(1);
        if link.failures == 1 {
            tracing::warn!(peer = %node, why, retry_ms = delay.as_millis(), "cluster peer unreachable; redialing");
        } else {
            tracing::debug!(peer = %node, why, failures = link.failures, retry_ms = delay.as_millis(), "cluster peer still unreachable");
        }
    }

    fn install_route(
        &mut self,
        node: &str,
        generation: u64,
        session: ActorId,
        endpoint: ActorCell,
    ) {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = routes.get(node) {
            if old.session == Some(session) && old.endpoint.get_id() == endpoint.get_id() {
                return;
            }
            if old.generation > generation {
                // A late session of a previous incarnation.
                if let Some(s) = self.sessions.get(&session) {
                    s.actor.stop(Some("previous incarnation".into()));
                }
                return;
            }
            if let Some(old_session) = old.session
                && old_session != session
                && let Some(s) = self.sessions.get(&old_session)
            {
                s.actor.stop(Some("superseded".into()));
            }
        }
        routes.insert(
            node.to_string(),
            Route {
                endpoint,
                generation,
                session: Some(session),
            },
        );
        drop(routes);
        self.publish();
    }

    /// Forgets a peer's route and closes its session.
    fn drop_route(&mut self, node: &str, why: &str) {
        let removed = self
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        if let Some(session) = removed.and_then(|route| route.session)
            && let Some(session) = self.sessions.get(&session)
        {
            session.actor.stop(Some(why.to_string()));
        }
        self.publish();
    }

    fn remove_route(&mut self, node: &str) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        self.publish();
    }

    fn routes_snapshot(&self) -> Vec<(String, Route)> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(node, route)| (node.clone(), route.clone()))
            .collect()
    }

    /// Publishes the connected peers (sorted; this node excluded).
    fn publish(&self) {
        let mut connected: Vec<String> = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .filter(|node| **node != self.node_id)
            .cloned()
            .collect();
        connected.sort();
        metrics::gauge!("chorus_cluster_connected_peers").set(connected.len() as f64);
        self.connected.send_if_modified(|current| {
            let changed = *current != connected;
            if changed {
                *current = connected;
            }
            changed
        });
    }
}

/// The `RemoteActor` standing for the Endpoint behind session `ractor_node`.
fn remote_endpoint(ractor_node: NodeId) -> Option<ActorCell> {
    ractor::pg::get_members(&ENDPOINT_GROUP.to_string())
        .into_iter()
        .find(|cell| {
            let id = cell.get_id();
            !id.is_local() && id.node() == ractor_node
        })
}

/// Resolves `target` and opens a TCP connection handed to the NodeServer, which
/// starts the handshake. Returns the address dialed.
async fn dial(server: &ActorRef<NodeServerMessage>, target: &str) -> Result<SocketAddr, String> {
    let addr = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target))
        .await
        .map_err(|_| format!("looking up {target} timed out"))?
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        ractor_cluster::client_connect(server, addr),
    )
    .await
    .map_err(|_| format!("connecting to {addr} timed out"))?
    .map_err(|e| format!("connecting to {addr}: {e}"))?;
    Ok(addr)
}

/// The delay before redial number `failures` (1, 2, ...): doubling from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`], with ±25 % jitter so that nodes that
/// lost the same peer do not redial in lockstep.
pub(crate) fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX);
    base.mul_f64(rand::random_range(0.75..1.25))
}
