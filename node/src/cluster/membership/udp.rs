//! chitchat's transport with every datagram sealed ([`super::seal`]): what a node
//! sends is sealed with the cluster's gossip key, and what it receives reaches
//! chitchat only if it is authentic, fresh and new. Everything else is dropped
//! and counted before chitchat parses a byte of it.
//!
//! chitchat keeps its wire format to itself (an envelope's `serialize` and
//! `deserialize` are crate-private), so its own UDP socket still does the
//! encoding, on a hop over loopback that only this module talks to:
//!
//! ```text
//!              send(to, envelope)                          recv()
//!  chitchat ───────────────┐                     ┌──────────────────► chitchat
//!                          ▼                     │ (from = the peer)
//!             inner: chitchat's UdpSocket, 127.0.0.1:ephemeral
//!                │ serialized                    ▲ payload, from the relay
//!                ▼                               │ socket of its sender
//!             outbox relay ── seal ─┐    ┌── open, admit ── relays: one per
//!                                   ▼    │                  sender (≤ MAX_SENDERS)
//!                           public UDP socket (listen.gossip) ◄═══► peers
//! ```
//!
//! A datagram reaches the inner socket only from a relay socket of this module,
//! which is how each one is traced back to the peer that sent it; anything else
//! arriving there (another local process) is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};

use super::seal::{GossipKey, OVERHEAD, Rejected, ReplayGuard};

/// The largest UDP payload over IPv4 (what chitchat sizes its messages to).
const MAX_DATAGRAM: usize = 65_507;

/// How often each kind of refusal is logged at most: a flood of forged packets
/// is counted in full but must not flood the log too.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Peers with a relay socket at most (one socket each), the least recently heard
/// from closed first. Only senders of authentic packets get one, so this bounds
/// what a node with the cookie can make this one open, far above any cluster.
const MAX_SENDERS: usize = 512;

/// How long an envelope may take over loopback from chitchat's socket to the
/// outbox relay. Never near it; a lost datagram must not stall gossip.
const LOOPBACK_TIMEOUT: Duration = Duration::from_secs(1);

/// chitchat's transport over sealed UDP datagrams.
#[derive(Debug, Clone)]
pub struct SealedUdp {
    key: GossipKey,
    window: Duration,
    remembered: usize,
}

impl SealedUdp {
    /// A transport sealing with `key`, accepting packets stamped within `window`
    /// of this node's clock, and remembering up to `remembered` of them to refuse
    /// replays.
    pub fn new(key: GossipKey, window: Duration, remembered: usize) -> Self {
        Self {
            key,
            window,
            remembered,
        }
    }
}

#[async_trait::async_trait]
impl Transport for SealedUdp {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("cannot bind {listen_addr}/UDP for gossip"))?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let inner = UdpSocket::open(loopback).await?;
        let inner_addr = inner.local_addr()?;
        let outbox = tokio::net::UdpSocket::bind(loopback)
            .await
            .context("cannot bind the gossip relay socket")?;
        let outbox_addr = outbox.local_addr()?;
        Ok(Box::new(SealedSocket {
            public,
            inner,
            inner_addr,
            outbox,
            outbox_addr,
            senders: Senders::default(),
            key: self.key.clone(),
            guard: ReplayGuard::new(self.window, self.remembered),
            packet: Vec::with_capacity(MAX_DATAGRAM),
            received: vec![0; MAX_DATAGRAM + 1].into_boxed_slice(),
            logged: Vec::new(),
        }))
    }
}

struct SealedSocket {
    /// `listen.gossip`: sealed packets to and from peers.
    public: tokio::net::UdpSocket,
    /// chitchat's own socket on loopback: it serializes and deserializes.
    inner: UdpSocket,
    inner_addr: SocketAddr,
    /// Where `inner` sends what chitchat sends, to be sealed.
    outbox: tokio::net::UdpSocket,
    outbox_addr: SocketAddr,
    /// The relay socket of each peer heard from, through which its payloads
    /// reach `inner`.
    senders: Senders,
    key: GossipKey,
    guard: ReplayGuard,
    /// The sealed packet being sent; reused.
    packet: Vec<u8>,
    /// One datagram received. A byte larger than any datagram chitchat sends, so
    /// a longer one is seen as such rather than silently cut.
    received: Box<[u8]>,
    /// When each kind of refusal was last logged, and how many since.
    logged: Vec<(Refusal, Option<Instant>, u64)>,
}

/// Why a datagram went no further: a refused sealed packet, or something on the
/// loopback hop that did not come from this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Sealed(Rejected),
    NotRelayed,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sealed(why) => why.as_str(),
            Self::NotRelayed => "not_relayed",
        }
    }
}

/// The relay socket of each peer heard from, both ways.
#[derive(Default)]
struct Senders {
    by_peer: HashMap<SocketAddr, Relay>,
    /// Relay socket address → the peer it relays for.
    by_relay: HashMap<SocketAddr, SocketAddr>,
    /// Peers, least recently heard from first.
    order: VecDeque<SocketAddr>,
}

struct Relay {
    socket: tokio::net::UdpSocket,
    addr: SocketAddr,
}

impl Senders {
    /// The relay socket for `peer`, opened on first use.
    async fn relay(&mut self, peer: SocketAddr) -> anyhow::Result<&Relay> {
        if self.by_peer.contains_key(&peer) {
            if let Some(at) = self.order.iter().position(|p| *p == peer) {
                self.order.remove(at);
            }
        } else {
            if self.by_peer.len() >= MAX_SENDERS
                && let Some(oldest) = self.order.pop_front()
                && let Some(relay) = self.by_peer.remove(&oldest)
            {
                self.by_relay.remove(&relay.addr);
            }
            let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .context("cannot bind a gossip relay socket")?;
            let addr = socket.local_addr()?;
            self.by_relay.insert(addr, peer);
            self.by_peer.insert(peer, Relay { socket, addr });
        }
        self.order.push_back(peer);
        self.by_peer
            .get(&peer)
            .context("the relay socket was just opened")
    }

    /// The peer whose payload came from relay socket `addr`.
    fn peer_of(&self, addr: SocketAddr) -> Option<SocketAddr> {
        self.by_relay.get(&addr).copied()
    }
}

/// Milliseconds since the Unix epoch by this node's clock (0 before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl SealedSocket {
    fn refuse(&mut self, why: Refusal, from: SocketAddr, len: usize) {
        metrics::counter!("chorus_gossip_rejected_packets_total", "reason" => why.as_str())
            .increment(1);
        let now = Instant::now();
        let at = match self.logged.iter().position(|(kind, ..)| *kind == why) {
            Some(at) => at,
            None => {
                self.logged.push((why, None, 0));
                self.logged.len() - 1
            }
        };
        let entry = &mut self.logged[at];
        entry.2 += 1;
        if entry
            .1
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            tracing::warn!(
                %from,
                len,
                reason = why.as_str(),
                refused = entry.2,
                "dropped gossip packets"
            );
            entry.1 = Some(now);
            entry.2 = 0;
        }
    }

    /// Takes one datagram from the network: if it is authentic, fresh and new,
    /// hands its payload to chitchat's socket through its sender's relay.
    async fn admit(&mut self, len: usize, from: SocketAddr) -> anyhow::Result<()> {
        let payload = match self.key.open(&self.received[..len]) {
            Ok(opened) => match self.guard.admit(&opened, now_ms()) {
                Ok(()) => opened.payload,
                Err(why) => {
                    self.refuse(Refusal::Sealed(why), from, len);
                    return Ok(());
                }
            },
            Err(why) => {
                self.refuse(Refusal::Sealed(why), from, len);
                return Ok(());
            }
        };
        let relay = self.senders.relay(from).await?;
        relay
            .socket
            .send_to(payload, self.inner_addr)
            .await
            .context("cannot relay gossip over loopback")?;
        Ok(())
    }
}

/// What a UDP socket reports for an earlier send to a closed port, or under
/// memory pressure: the socket itself still works.
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::OutOfMemory
    )
}

#[async_trait::async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.public
            .local_addr()
            .context("cannot read the gossip socket's address")
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        // Whatever an earlier, abandoned send left on the hop is not this one.
        while self.outbox.try_recv_from(&mut self.received).is_ok() {}
        self.inner.send(self.outbox_addr, envelope).await?;
        let len = loop {
            let (len, from) =
                tokio::time::timeout(LOOPBACK_TIMEOUT, self.outbox.recv_from(&mut self.received))
                    .await
                    .context("a gossip message was lost on loopback")??;
            if from == self.inner_addr {
                break len;
            }
            self.refuse(Refusal::NotRelayed, from, len);
        };
        if len + OVERHEAD > MAX_DATAGRAM {
            // chitchat fills a datagram with as much state as fits, not knowing
            // about the seal; only a cluster of hundreds of nodes gets here.
            metrics::counter!("chorus_gossip_oversized_packets_total").increment(1);
            anyhow::bail!("a gossip message of {len} bytes does not fit a datagram once sealed");
        }
        self.packet.clear();
        self.key.seal(
            now_ms(),
            rand::random(),
            &self.received[..len],
            &mut self.packet,
        );
        let sent = self
            .public
            .send_to(&self.packet, to)
            .await
            .with_context(|| format!("cannot send gossip to {to}"))?;
        Ok(SendOutcome {
            num_bytes_sent: sent,
        })
    }

    /// Cancel-safe, as chitchat needs: each await point either takes nothing or
    /// takes a datagram and finishes with it before the next one.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            tokio::select! {
                outcome = self.inner.recv() => {
                    let outcome = outcome?;
                    match self.senders.peer_of(outcome.from_addr) {
                        Some(peer) => {
                            return Ok(RecvOutcome { from_addr: peer, ..outcome });
                        }
                        None => {
                            let len = outcome.num_bytes_received;
                            self.refuse(Refusal::NotRelayed, outcome.from_addr, len);
                        }
                    }
                }
                received = self.public.recv_from(&mut self.received) => match received {
                    Ok((len, from)) => self.admit(len, from).await?,
                    Err(error) if is_transient(&error) => {
                        tracing::debug!(%error, "transient gossip receive error");
                    }
                    Err(error) => return Err(error).context("gossip socket failed"),
                },
            }
        }
    }
}
