//! Sessions and routes: which session reaches which node, and which Endpoint in
//! the process group belongs to it.

use std::collections::{BTreeMap, HashSet};

use ractor::pg::GroupChangeMessage;
use ractor::{ActorCell, ActorId, ActorRef};
use ractor_cluster::{NodeId, NodeSessionMessage};
use tokio::time::Instant;

use super::dialing::{Link, Phase};
use super::{PeersState, Route, SessionInfo};
use crate::cluster::transport::{ENDPOINT_GROUP, peer_name};

/// One session the NodeServer opened.
pub(super) struct Session {
    pub(super) actor: ActorRef<NodeSessionMessage>,
    pub(super) ractor_node: NodeId,
    pub(super) is_server: bool,
    pub(super) peer_addr: String,
    pub(super) opened: Instant,
    /// Known once the session is ready.
    pub(super) peer: Option<(String, u64)>,
    /// Peers asked it to stop for taking too long; its close event is on the way.
    pub(super) expired: bool,
}

impl PeersState {
    /// Records a new session and, if this node dialed it, matches it to its dial.
    pub(super) fn on_opened(&mut self, info: SessionInfo) {
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
                expired: false,
            },
        );
    }

    /// Makes a ready session the route to its node, unless it belongs to a
    /// previous incarnation or to no Chorus node at all.
    pub(super) fn on_ready(&mut self, info: SessionInfo) {
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
        // A late session of an incarnation gossip has declared dead, while a
        // newer one lives.
        if self.members.get(&node).is_some_and(|live| {
            !live.iter().any(|m| m.generation == generation)
                && live.iter().any(|m| m.generation > generation)
        }) {
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
            expired: false,
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

    /// Forgets a closed session and its route; a dial or link it carried fails
    /// and is redialed after a backoff.
    pub(super) fn on_closed(&mut self, info: &SessionInfo) {
        let id = info.actor.get_id();
        let session = self.sessions.remove(&id);
        let routed = self
            .routes_snapshot()
            .into_iter()
            .find(|(_, route)| route.session == Some(id))
            .map(|(node, _)| node);
        // The route may already be gone: the peer's Endpoint leaves the process
        // group as the session stops, which can be reported first.
        if let Some(node) = &routed {
            self.remove_route(node);
        }
        if let Some((node, generation)) = session.as_ref().and_then(|s| s.peer.as_ref()) {
            tracing::info!(peer = %node, generation, "cluster session closed");
        }
        // A dial's session that closed before it could be matched to the dial (by
        // id) is matched by address; a ready session never is, so the close of a
        // restarted peer's old session cannot fail the dial to its new one.
        let unmatched_handshake = session
            .as_ref()
            .is_some_and(|s| !s.is_server && s.peer.is_none());
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
                } => unmatched_handshake && addr.to_string() == info.peer_addr,
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
            } else {
                "handshake failed (peer gone, or a different cookie)"
            };
            self.fail(&node, why);
        }
    }

    /// Routes to a peer's Endpoint when it joins the group after its session
    /// became ready, and forgets it when it leaves.
    pub(super) fn on_group_change(&mut self, change: GroupChangeMessage) {
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

    /// Makes `endpoint`, reached through `session`, the route to `node`, closing
    /// the session it replaces.
    fn install_route(
        &mut self,
        node: &str,
        generation: u64,
        session: ActorId,
        endpoint: ActorCell,
    ) {
        let mut routes = self.routes.write();
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
    pub(super) fn drop_route(&mut self, node: &str, why: &str) {
        let removed = self.routes.write().remove(node);
        if let Some(session) = removed.and_then(|route| route.session)
            && let Some(session) = self.sessions.get(&session)
        {
            session.actor.stop(Some(why.to_string()));
        }
        self.publish();
    }

    fn remove_route(&mut self, node: &str) {
        self.routes.write().remove(node);
        self.publish();
    }

    pub(super) fn routes_snapshot(&self) -> Vec<(String, Route)> {
        self.routes
            .read()
            .iter()
            .map(|(node, route)| (node.clone(), route.clone()))
            .collect()
    }

    /// Publishes the connected peers (sorted; this node excluded).
    fn publish(&self) {
        let incarnations: BTreeMap<String, u64> = self
            .routes
            .read()
            .iter()
            .filter(|(node, _)| **node != self.node_id)
            .map(|(node, route)| (node.clone(), route.generation))
            .collect();
        let connected: Vec<String> = incarnations.keys().cloned().collect();
        self.incarnations.send_if_modified(|current| {
            let changed = *current != incarnations;
            if changed {
                *current = incarnations;
            }
            changed
        });
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
