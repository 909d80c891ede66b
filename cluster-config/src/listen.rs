//! `[listen]`: where the node accepts clients, operators and peers.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::{ConfigError, Problems};
use crate::rules::parse_listen;

/// `[listen]`: the node's listener addresses.
///
/// Addresses are kept as written and checked by [`Config::validate`](crate::Config::validate),
/// so a bad address is reported with its key together with every other problem;
/// [`ListenConfig::addrs`] gives them typed. Port 0 asks the OS for a free port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Client TCP listener (length-prefixed binary frames). Default `127.0.0.1:7400`.
    pub tcp: String,
    /// Client WebSocket listener. Default `127.0.0.1:7401`.
    pub ws: String,
    /// HTTP path of the WebSocket endpoint. Default `/ws`.
    pub ws_path: String,
    /// Admin HTTP listener (`/healthz`, `/metrics`, `/admin/`). Default `127.0.0.1:7402`.
    pub admin: String,
    /// Membership gossip, over UDP. Default `127.0.0.1:7403`.
    pub gossip: String,
    /// Actor transport between nodes, over TCP. Default `127.0.0.1:7404`.
    pub cluster: String,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            tcp: "127.0.0.1:7400".into(),
            ws: "127.0.0.1:7401".into(),
            ws_path: "/ws".into(),
            admin: "127.0.0.1:7402".into(),
            gossip: "127.0.0.1:7403".into(),
            cluster: "127.0.0.1:7404".into(),
        }
    }
}

/// The listener addresses of a [`ListenConfig`], parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddrs {
    /// `listen.tcp`.
    pub tcp: SocketAddr,
    /// `listen.ws`.
    pub ws: SocketAddr,
    /// `listen.admin`.
    pub admin: SocketAddr,
    /// `listen.gossip` (UDP).
    pub gossip: SocketAddr,
    /// `listen.cluster`.
    pub cluster: SocketAddr,
}

impl ListenConfig {
    /// The addresses, parsed; an error names every key that does not parse.
    ///
    /// After a successful [`Config::validate`](crate::Config::validate) this cannot fail.
    pub fn addrs(&self) -> Result<ListenAddrs, ConfigError> {
        let mut problems = Problems::default();
        let mut parse = |key: &str, value: &str| match parse_listen(value) {
            Ok(addr) => Some(addr),
            Err(why) => {
                problems.push(format!("listen.{key}"), why);
                None
            }
        };
        let parsed = (
            parse("tcp", &self.tcp),
            parse("ws", &self.ws),
            parse("admin", &self.admin),
            parse("gossip", &self.gossip),
            parse("cluster", &self.cluster),
        );
        let (Some(tcp), Some(ws), Some(admin), Some(gossip), Some(cluster)) = parsed else {
            return Err(problems.into_error());
        };
        Ok(ListenAddrs {
            tcp,
            ws,
            admin,
            gossip,
            cluster,
        })
    }

    /// The keys and values of the TCP listeners, which must not share a port.
    /// Gossip is UDP, so it may share a port number with any of them.
    pub(crate) fn tcp_listeners(&self) -> [(&'static str, &str); 4] {
        [
            ("listen.tcp", &self.tcp),
            ("listen.ws", &self.ws),
            ("listen.admin", &self.admin),
            ("listen.cluster", &self.cluster),
        ]
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        let all = [
            ("listen.tcp", &self.tcp),
            ("listen.ws", &self.ws),
            ("listen.admin", &self.admin),
            ("listen.gossip", &self.gossip),
            ("listen.cluster", &self.cluster),
        ];
        for (key, value) in all {
            if let Err(why) = parse_listen(value) {
                problems.push(key, why);
            }
        }

        let parsed: Vec<(&str, SocketAddr)> = self
            .tcp_listeners()
            .into_iter()
            .filter_map(|(key, value)| parse_listen(value).ok().map(|addr| (key, addr)))
            .collect();
        for (i, (key, addr)) in parsed.iter().enumerate() {
            if let Some((earlier, _)) = parsed[..i].iter().find(|(_, other)| overlaps(addr, other))
            {
                problems.push(
                    *key,
                    format!("{addr} conflicts with {earlier}: two listeners cannot share a port"),
                );
            }
        }

        if !self.ws_path.starts_with('/') {
            problems.push(
                "listen.ws_path",
                format!("{:?} must start with '/'", self.ws_path),
            );
        } else if self
            .ws_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            problems.push(
                "listen.ws_path",
                format!(
                    "{:?} must be a plain path (no spaces, '?' or '#')",
                    self.ws_path
                ),
            );
        }
    }
}

/// Whether two TCP listeners would fight over a port. Port 0 never conflicts: the
/// OS picks a different free port for each.
fn overlaps(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
