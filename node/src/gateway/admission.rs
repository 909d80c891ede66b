//! Admission of client connections: caps in all, per source address and per user
//! (`[connections]`), checked where they cost least.
//!
//! 1. At accept, before a byte is read and before anything is allocated for the
//!    connection: the total and the per-address count ([`Admission::admit`]). A
//!    refused connection is dropped at once, so a flood from one address costs a
//!    map lookup per connection and cannot crowd out the others.
//! 2. At `hello`, once the user is known: sessions per user
//!    ([`Admission::admit_user`]); the refused client gets `error` `overloaded`.
//!
//! Each admitted connection holds a permit that gives its place back when the
//! connection task ends, however it ends. Refusals are counted in
//! `chorus_connections_refused_total{transport, reason}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use chorus_config::IpBlock;

/// Why a connection was refused; the `reason` label of the refusal metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `connections.max_total` connections are open.
    Total,
    /// `connections.max_per_ip` connections are open from the same address.
    PerIp,
    /// The user holds `connections.max_sessions_per_user` sessions already.
    PerUser,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerIp => "per_ip",
            Refusal::PerUser => "per_user",
        }
    }
}

/// The caps and the counts they are checked against. Shared by the TCP and
/// WebSocket listeners.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: u32,
    /// Addresses `max_per_ip` does not apply to (load balancers).
    exempt: Vec<IpBlock>,
    max_per_user: u32,
    total: AtomicUsize,
    /// Open connections per address key ([`ip_key`]); entries at 0 are removed,
    /// so the map holds only addresses with a connection open.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Open sessions per user; entries at 0 are removed.
    per_user: Mutex<HashMap<String, u32>>,
}

/// The address a per-address cap counts: IPv4 (an IPv4-mapped IPv6 address
/// included) as it is, IPv6 by its /64, since one host is usually handed a whole
/// /64 and could otherwise open each connection from a new address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match chorus_config::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Admission {
    /// Caps: `max_total` connections, `max_per_ip` from one address unless it
    /// lies in `exempt`, `max_per_user` sessions of one user.
    pub fn new(max_total: usize, max_per_ip: u32, exempt: Vec<IpBlock>, max_per_user: u32) -> Self {
        Self {
            max_total,
            max_per_ip,
            exempt,
            max_per_user,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
        }
    }

    /// The total cap in force.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Admits a connection from `peer`, or says which cap it is over (and counts
    /// the refusal under `transport`).
    pub fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
        transport: &'static str,
    ) -> Result<ConnPermit, Refusal> {
        let refuse = |why: Refusal| {
            metrics::counter!("chorus_connections_refused_total", "transport" => transport, "reason" => why.as_str())
                .increment(1);
            Err(why)
        };
        // Taken first and given back on refusal: two accepts racing for the last
        // place cannot both get it.
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refuse(Refusal::Total);
        }
        let exempt = self.exempt.iter().any(|block| block.contains(peer));
        let key = (!exempt).then(|| ip_key(peer));
        if let Some(key) = key {
            let mut per_ip = self.per_ip.lock();
            let count = per_ip.entry(key).or_insert(0);
            if *count >= self.max_per_ip {
                drop(per_ip);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refuse(Refusal::PerIp);
            }
            *count += 1;
        }
        Ok(ConnPermit {
            admission: self.clone(),
            ip: key,
        })
    }

    /// Admits one more session of `user`, or refuses it (counted under `transport`).
    pub fn admit_user(
        self: &Arc<Self>,
        user: &str,
        transport: &'static str,
    ) -> Result<UserPermit, Refusal> {
        let mut per_user = self.per_user.lock();
        let count = per_user.entry(user.to_string()).or_insert(0);
        if *count >= self.max_per_user {
            if *count == 0 {
                per_user.remove(user);
            }
            drop(per_user);
            metrics::counter!("chorus_connections_refused_total", "transport" => transport, "reason" => Refusal::PerUser.as_str())
                .increment(1);
            return Err(Refusal::PerUser);
        }
        *count += 1;
        Ok(UserPermit {
            admission: self.clone(),
            user: user.to_string(),
        })
    }

    /// Connections admitted and not yet closed.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// The per-user cap.
    pub fn max_per_user(&self) -> u32 {
        self.max_per_user
    }
}

/// A connection's place under the caps; given back on drop.
#[derive(Debug)]
pub struct ConnPermit {
    admission: Arc<Admission>,
    /// The per-address key counted, `None` for an exempt address.
    ip: Option<IpAddr>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Some(key) = self.ip {
            let mut per_ip = self.admission.per_ip.lock();
            if let Some(count) = per_ip.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    per_ip.remove(&key);
                }
            }
        }
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A session's place under the per-user cap; given back on drop.
#[derive(Debug)]
pub struct UserPermit {
    admission: Arc<Admission>,
    user: String,
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        let mut per_user = self.admission.per_user.lock();
        if let Some(count) = per_user.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}
