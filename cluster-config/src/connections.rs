//! `[connections]`: how many client connections the node admits, in all, per
//! source address and per user.

use std::net::IpAddr;

use serde::Deserialize;

use crate::error::Problems;

/// `[connections]`: admission caps of the client listeners (TCP and WebSocket
/// together). A connection over a cap is refused before anything is read from it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Client connections open at once, both transports together, from accept to
    /// close. Default 50,000. The node lowers it to what its open-file limit
    /// allows, keeping room for its store, peers and the admin listener.
    pub max_total: u32,
    /// Client connections open at once from one source address (an IPv6 address
    /// counts by its /64 prefix). Default 256.
    pub max_per_ip: u32,
    /// Addresses or CIDR blocks (`"10.0.0.0/8"`, `"2001:db8::/32"`,
    /// `"192.0.2.7"`) exempt from `max_per_ip`: load balancers and proxies that
    /// carry many clients on one address. Default empty.
    pub per_ip_exempt: Vec<String>,
    /// Sessions (connections past `hello`) one user may hold on this node at once.
    /// Default 32.
    pub max_sessions_per_user: u32,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max_total: 50_000,
            max_per_ip: 256,
            per_ip_exempt: Vec::new(),
            max_sessions_per_user: 32,
        }
    }
}

/// One entry of `connections.per_ip_exempt`: an address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    /// The block's first address (the host bits of the text are cleared).
    pub addr: IpAddr,
    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    pub prefix: u8,
}

impl IpBlock {
    /// Parses `"192.0.2.0/24"`, `"2001:db8::/32"` or a bare address (a block of one).
    ///
    /// Hand-rolled because the standard library parses addresses but not blocks,
    /// and a dozen lines do not justify a dependency.
    pub fn parse(text: &str) -> Result<IpBlock, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0-{width}"))?,
        };
        Ok(IpBlock {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// `ip` with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) turned into IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The first `prefix` bits of `ip`, the rest cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            // A shift by the full width (prefix 0) is `None`: nothing is kept.
            let kept = bits & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = bits & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(kept.into())
        }
    }
}

impl ConnectionsConfig {
    /// `per_ip_exempt`, parsed; entries that do not parse are left out (they are
    /// reported by [`Config::validate`](crate::Config::validate)).
    pub fn exempt_blocks(&self) -> Vec<IpBlock> {
        self.per_ip_exempt
            .iter()
            .filter_map(|text| IpBlock::parse(text).ok())
            .collect()
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        for (key, value) in [
            ("connections.max_total", self.max_total),
            ("connections.max_per_ip", self.max_per_ip),
            (
                "connections.max_sessions_per_user",
                self.max_sessions_per_user,
            ),
        ] {
            if value == 0 {
                problems.push(key, "must be at least 1");
            }
        }
        if self.max_per_ip > self.max_total {
            problems.push(
                "connections.max_per_ip",
                format!(
                    "is {}; it cannot exceed connections.max_total ({})",
                    self.max_per_ip, self.max_total
                ),
            );
        }
        for (i, text) in self.per_ip_exempt.iter().enumerate() {
            if let Err(why) = IpBlock::parse(text) {
                problems.push(format!("connections.per_ip_exempt[{i}]"), why);
            }
        }
    }
}
