//! Sealed gossip packets: every UDP datagram of chitchat carries a timestamp, a
//! nonce and an HMAC-SHA256 under a key only the cluster's nodes can derive, and a
//! receiver accepts each sealed packet once, within a window around its own clock.
//!
//! ```text
//!  0      2    3               11              19           n-32        n
//!  ┌──────┬────┬───────────────┬───────────────┬─────────────┬──────────┐
//!  │ "CG" │ v1 │ sent_at_ms BE │ nonce         │ chitchat    │ HMAC-    │
//!  │      │    │ (u64)         │ (u64, random) │ envelope    │ SHA256   │
//!  └──────┴────┴───────────────┴───────────────┴─────────────┴──────────┘
//!   the MAC covers every byte before it
//! ```
//!
//! The key is HKDF-SHA256 of `cluster.cookie` with a label of its own, so the
//! gossip key is not the transport's cookie itself and a future second use of the
//! cookie gets a different key.
//!
//! [`ReplayGuard`] refuses, in this order: a packet stamped more than the window
//! away from this node's clock (an old packet replayed, or a sender whose clock is
//! wrong), and a packet seen before (the same tag within the window). What it does
//! not stop is listed in `docs/security.md`: a node with the cookie, reading the
//! packets (they are authenticated, not encrypted), and a packet captured on its
//! way to one node being delivered once to another within the window.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[cfg(test)]
mod tests;

type HmacSha256 = Hmac<Sha256>;

/// The first bytes of a sealed packet.
const MAGIC: [u8; 2] = *b"CG";
/// The version of the seal format.
const VERSION: u8 = 1;
/// Magic, version, timestamp, nonce.
pub const HEADER_LEN: usize = 2 + 1 + 8 + 8;
/// An HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Bytes a seal adds to a chitchat envelope.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// HKDF salt and label of the gossip key: a key derived for anything else from
/// the same cookie differs.
const KDF_SALT: &[u8] = b"chorus cluster cookie";
const KDF_LABEL: &[u8] = b"chorus gossip hmac-sha256 v1";

/// How far a packet's timestamp may be from the receiver's clock, either way.
/// Nodes' clocks must agree within this (NTP does far better); a packet in
/// flight takes far less.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// Sealed packets a [`ReplayGuard`] remembers at most: far more than a cluster
/// of a hundred nodes gossips to one node in two windows.
pub const DEFAULT_REMEMBERED: usize = 65_536;

/// The gossip MAC key of a cluster, derived from its cookie. Never printed.
#[derive(Clone)]
pub struct GossipKey {
    /// HMAC state keyed once; cloned for every packet.
    mac: HmacSha256,
}

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

impl GossipKey {
    /// The key every node with `cookie` derives.
    pub fn from_cookie(cookie: &str) -> Self {
        let kdf = hkdf::Hkdf::<Sha256>::new(Some(KDF_SALT), cookie.as_bytes());
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        kdf.expand(KDF_LABEL, &mut key)
            .expect("HKDF-SHA256 expands to 32 bytes");
        Self {
            mac: HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length"),
        }
    }

    /// Appends to `out` the sealed packet of `payload`, stamped `sent_at_ms`
    /// (milliseconds since the Unix epoch) with `nonce`, which makes two packets of
    /// the same payload in the same millisecond distinct.
    pub fn seal(&self, sent_at_ms: u64, nonce: u64, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(OVERHEAD + payload.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&sent_at_ms.to_be_bytes());
        out.extend_from_slice(&nonce.to_be_bytes());
        out.extend_from_slice(payload);
        let mut mac = self.mac.clone();
        mac.update(&out[start..]);
        out.extend_from_slice(&mac.finalize().into_bytes());
    }

    /// Checks the format and the MAC of `packet`; `Ok` with what it carries, or
    /// why it is refused. Says nothing about its age or whether it was seen
    /// before: that is the [`ReplayGuard`]'s.
    pub fn open<'a>(&self, packet: &'a [u8]) -> Result<Opened<'a>, Rejected> {
        if packet.len() < OVERHEAD || packet[..2] != MAGIC || packet[2] != VERSION {
            return Err(Rejected::Malformed);
        }
        let (sealed, tag) = packet.split_at(packet.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(sealed);
        // Constant time: a forger learns nothing from how long a refusal took.
        mac.verify_slice(tag).map_err(|_| Rejected::BadMac)?;
        let sent_at_ms = u64::from_be_bytes(sealed[3..11].try_into().unwrap_or_default());
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        Ok(Opened {
            sent_at_ms,
            tag: tag_bytes,
            payload: &sealed[HEADER_LEN..],
        })
    }
}

/// What an authentic packet carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// When the sender sealed it, in its clock's milliseconds since the epoch.
    pub sent_at_ms: u64,
    /// Its MAC, which names it for the [`ReplayGuard`].
    pub tag: [u8; TAG_LEN],
    /// The chitchat envelope.
    pub payload: &'a [u8],
}

/// Why a gossip packet was dropped. Each is counted under its
/// [`Rejected::as_str`] in `chorus_gossip_rejected_packets_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejected {
    /// Too short, or not a sealed packet of this version.
    #[error("not a sealed gossip packet")]
    Malformed,
    /// The MAC does not match: sealed with another key (another cluster's
    /// cookie), altered, or forged.
    #[error("bad MAC (another cookie, or forged)")]
    BadMac,
    /// Authentic, but stamped outside the window: an old packet replayed, or a
    /// sender whose clock is off.
    #[error("stamped outside the accepted window (replayed, or clocks disagree)")]
    Stale,
    /// Authentic and fresh, but accepted once already.
    #[error("already received (replayed)")]
    Replayed,
}

impl Rejected {
    /// The `reason` label of the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadMac => "bad_mac",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
        }
    }
}

/// Accepts each authentic packet once, and only within `window` of now.
///
/// A packet is remembered until its timestamp leaves the window, after which the
/// timestamp alone refuses it, so memory is bounded by the packets of two
/// windows, and at most `capacity` (the oldest forgotten first).
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    seen: HashSet<[u8; TAG_LEN]>,
    /// The tags in `seen`, with the time after which their packet is stale.
    expiry: VecDeque<(u64, [u8; TAG_LEN])>,
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window` of now, remembering at most
    /// `capacity` packets.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            capacity: capacity.max(1),
            seen: HashSet::new(),
            expiry: VecDeque::new(),
        }
    }

    /// Whether the packet `opened` may be handed to chitchat at `now_ms` (this
    /// node's clock, ms since the epoch); if so, it is remembered.
    pub fn admit(&mut self, opened: &Opened<'_>, now_ms: u64) -> Result<(), Rejected> {
        if opened.sent_at_ms.abs_diff(now_ms) > self.window_ms {
            return Err(Rejected::Stale);
        }
        self.forget_stale(now_ms);
        if self.seen.contains(&opened.tag) {
            return Err(Rejected::Replayed);
        }
        if self.seen.len() >= self.capacity
            && let Some((_, oldest)) = self.expiry.pop_front()
        {
            self.seen.remove(&oldest);
        }
        let stale_after = opened.sent_at_ms.saturating_add(self.window_ms);
        // Kept in order of expiry, so forgetting only ever looks at the front; a
        // packet from a clock ahead of ours lands further back.
        let at = self.expiry.partition_point(|(t, _)| *t <= stale_after);
        self.expiry.insert(at, (stale_after, opened.tag));
        self.seen.insert(opened.tag);
        Ok(())
    }

    /// Packets remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    fn forget_stale(&mut self, now_ms: u64) {
        while let Some((stale_after, tag)) = self.expiry.front() {
            if *stale_after >= now_ms {
                break;
            }
            self.seen.remove(tag);
            self.expiry.pop_front();
        }
    }
}
