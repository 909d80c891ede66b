//! Dialing: one link per live member whose id sorts after ours, redialed with
//! backoff until a session to it is ready, and dropped when gossip declares the
//! member dead.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chorus_wire::backoff::Backoff;
use ractor::{ActorId, ActorRef};
use ractor_cluster::NodeServerMessage;
use tokio::time::Instant;

use super::{PeersMsg, PeersState};
use crate::cluster::membership::Member;

/// Address lookup and TCP connect, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// From TCP connect to a ready session (cookie challenge and state exchange). A
/// session that is not ready by then is closed, whoever opened it: a client that
/// connects and never authenticates holds nothing for long.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// First redial delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest redial delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Our side of the dialing to one member whose id sorts after ours.
pub(super) struct Link {
    pub(super) phase: Phase,
    /// Consecutive failures; sets the next backoff.
    pub(super) failures: u32,
}

/// The states of a [`Link`], in the order they happen.
pub(super) enum Phase {
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

impl PeersState {
    /// Whether this node dials `node` (rather than waiting to be dialed).
    fn dials(&self, node: &str) -> bool {
        self.node_id.as_str() < node
    }

    /// Takes a new set of live incarnations: closes the sessions of nodes that
    /// died, and keeps one link per node this node dials.
    pub(super) fn on_members(&mut self, members: Vec<Member>) {
        let mut next: HashMap<String, Vec<Member>> = HashMap::new();
        for member in members.into_iter().filter(|m| m.node_id != self.node_id) {
            next.entry(member.node_id.clone()).or_default().push(member);
        }
        for incarnations in next.values_mut() {
            incarnations.sort_by_key(|m| m.generation);
        }

        // Gossip is the authority on who is alive, not on who replaced whom. A
        // session is closed, even if its TCP connection still looks fine, when
        // gossip no longer shows its node, or shows only newer incarnations of it
        // (its own was declared dead). A newer incarnation beside a live one
        // closes nothing: it has to prove itself first, with a session
        // authenticated under its own name and generation, which then supersedes
        // the old one (`install_route`). Gossip can be replayed or told by any
        // node with the cookie; the session cannot.
        let stale: Vec<String> = self
            .routes_snapshot()
            .into_iter()
            .filter(|(node, route)| {
                node != &self.node_id
                    && match next.get(node) {
                        None => self.members.contains_key(node),
                        Some(live) => {
                            !live.iter().any(|m| m.generation == route.generation)
                                && live.iter().any(|m| m.generation > route.generation)
                        }
                    }
            })
            .map(|(node, _)| node)
            .collect();
        for node in stale {
            tracing::info!(peer = %node, "closing the session of a dead or restarted member");
            self.drop_route(&node, "member dead or restarted");
        }

        for (node, live) in &next {
            if !self.dials(node) {
                continue;
            }
            let newest = live.last().map_or(0, |m| m.generation);
            let routed = self.routed_generation(node);
            // A newer incarnation appeared that no session confirms yet (a link
            // already up to it, redialed before gossip reported the restart,
            // stays up).
            let appeared = self
                .members
                .get(node)
                .and_then(|before| before.last())
                .is_some_and(|before| before.generation != newest)
                && routed.is_none_or(|routed| routed < newest);
            match self.links.get_mut(node) {
                Some(link) if appeared => {
                    // Dial it now, forgetting past failures. A session the link
                    // holds stays up, and routed, until the newcomer's is ready.
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
            .filter(|node| !next.contains_key(*node))
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
        self.members = next;
    }

    /// The generation of `node` the routing table reaches, if any.
    fn routed_generation(&self, node: &str) -> Option<u64> {
        self.routes.read().get(node).map(|route| route.generation)
    }

    /// Where the next dial to `node` goes: the address of a live incarnation no
    /// session confirms yet, the newest first and the others in turn after
    /// failures, so that a newer incarnation that does not answer (a lie, or a
    /// node still starting) cannot keep this node from redialing the one it lost.
    /// `None` when no live incarnation is newer than the routed one.
    fn dial_target(&self, node: &str, failures: u32) -> Option<String> {
        let live = self.members.get(node)?;
        let routed = self.routed_generation(node);
        let mut candidates: Vec<&str> = Vec::new();
        for member in live.iter().rev() {
            if routed.is_none_or(|routed| member.generation > routed)
                && !candidates.contains(&member.cluster_addr.as_str())
            {
                candidates.push(&member.cluster_addr);
            }
        }
        let at = usize::try_from(failures).unwrap_or(0) % candidates.len().max(1);
        candidates.get(at).map(|addr| (*addr).to_string())
    }

    /// Starts a dial for every link whose wait is over.
    pub(super) fn dial_due(&mut self, myself: &ActorRef<PeersMsg>) {
        let now = Instant::now();
        let due: Vec<String> = self
            .links
            .iter()
            .filter(|(_, link)| matches!(link.phase, Phase::Waiting { at } if at <= now))
            .map(|(node, _)| node.clone())
            .collect();
        for node in due {
            let failures = self.links.get(&node).map_or(0, |link| link.failures);
            let Some(target) = self.dial_target(&node, failures) else {
                // Nothing newer to confirm: the link is up through its route.
                let routed = self
                    .routes
                    .read()
                    .get(&node)
                    .and_then(|route| route.session);
                if let (Some(session), Some(link)) = (routed, self.links.get_mut(&node)) {
                    link.phase = Phase::Up { session };
                    link.failures = 0;
                }
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
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let result = dial(&server, &target, tls.as_ref()).await;
                let _ = peers.cast(PeersMsg::Dialed {
                    node,
                    attempt,
                    result,
                });
            });
        }
    }

    /// Takes the outcome of a dial's TCP connect; a stale attempt is ignored.
    pub(super) fn on_dialed(
        &mut self,
        node: &str,
        attempt: u64,
        result: Result<SocketAddr, String>,
    ) {
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

    /// Closes sessions that are not ready in time, and gives up on dials that
    /// never produced a ready session.
    pub(super) fn expire_handshakes(&mut self) {
        let now = Instant::now();
        for session in self.sessions.values_mut() {
            if session.peer.is_none()
                && !session.expired
                && now.duration_since(session.opened) > HANDSHAKE_TIMEOUT
            {
                session.expired = true;
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
    pub(super) fn fail(&mut self, node: &str, why: &str) {
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
}

/// Resolves `target` and opens a TCP connection (over TLS with `tls`, checked
/// against the host of `target`) handed to the NodeServer, which starts the
/// handshake. Returns the address dialed.
async fn dial(
    server: &ActorRef<NodeServerMessage>,
    target: &str,
    tls: Option<&crate::tls::NodeTls>,
) -> Result<SocketAddr, String> {
    let addr = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target))
        .await
        .map_err(|_| format!("looking up {target} timed out"))?
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    let connect = async {
        match tls {
            None => ractor_cluster::client_connect(server, addr)
                .await
                .map_err(|e| format!("connecting to {addr}: {e}")),
            Some(tls) => {
                super::super::tls::dial(server, addr, super::super::tls::host_of(target), tls).await
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))??;
    Ok(addr)
}

/// The delay before redial number `failures` (1, 2, ...): the project's one
/// backoff rule ([`chorus_wire::backoff`]) from [`BACKOFF_MIN`] up to
/// [`BACKOFF_MAX`], so that nodes that lost the same peer do not redial in
/// lockstep.
pub(crate) fn backoff(failures: u32) -> Duration {
    Backoff::new(BACKOFF_MIN, BACKOFF_MAX).random_delay(failures)
}
