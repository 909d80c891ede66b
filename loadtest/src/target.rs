//! [`Target`]: the node under load — its client and admin addresses and the
//! transport the scenario speaks. Only loopback addresses are accepted.

use std::net::{SocketAddr, ToSocketAddrs};

use chorus_client::Transport;

use crate::error::LoadError;

/// Where the node listens and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The node's TCP client listener.
    pub tcp: SocketAddr,
    /// The node's WebSocket listener (the SDK and the raw client use path `/ws`).
    pub ws: SocketAddr,
    /// The node's admin listener: `/metrics` for memory, `/admin/kick` for `storm`.
    /// `None`: memory is not measured.
    pub admin: Option<SocketAddr>,
    /// The transport (and so the encoding) every connection of the scenario uses.
    pub transport: Transport,
}

impl Target {
    /// A target from already resolved addresses; fails unless every one is loopback.
    pub fn new(
        tcp: SocketAddr,
        ws: SocketAddr,
        admin: Option<SocketAddr>,
        transport: Transport,
    ) -> Result<Self, LoadError> {
        for addr in [Some(tcp), Some(ws), admin].into_iter().flatten() {
            if !addr.ip().is_loopback() {
                return Err(LoadError::NotLoopback(addr.to_string()));
            }
        }
        Ok(Self {
            tcp,
            ws,
            admin,
            transport,
        })
    }

    /// The client listener of the scenario's transport.
    pub fn endpoint(&self) -> SocketAddr {
        if self.transport.is_websocket() {
            self.ws
        } else {
            self.tcp
        }
    }
}

/// Resolves `host:port` to a loopback address (`localhost` may resolve to both
/// `127.0.0.1` and `::1`: the first loopback one is taken). Anything that resolves
/// to a non-loopback address is refused.
pub fn resolve_loopback(addr: &str) -> Result<SocketAddr, LoadError> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| LoadError::Config(format!("cannot resolve {addr}: {e}")))?
        .collect();
    if resolved.is_empty() {
        return Err(LoadError::Config(format!("{addr} resolves to nothing")));
    }
    if let Some(bad) = resolved.iter().find(|a| !a.ip().is_loopback()) {
        return Err(LoadError::NotLoopback(format!("{addr} ({bad})")));
    }
    let first = resolved[0];
    Ok(resolved
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .unwrap_or(first))
}

/// The name of a transport as the CLI and the report spell it.
pub fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Tcp => "tcp",
        Transport::WsJson => "ws-json",
        Transport::WsBinary => "ws-binary",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        let lo: SocketAddr = "127.0.0.1:7400".parse().expect("literal");
        let far: SocketAddr = "10.0.0.1:7400".parse().expect("literal");
        assert!(Target::new(lo, lo, None, Transport::Tcp).is_ok());
        assert!(matches!(
            Target::new(lo, far, None, Transport::Tcp),
            Err(LoadError::NotLoopback(_))
        ));
        assert!(Target::new(lo, lo, Some(far), Transport::Tcp).is_err());
        assert!(matches!(
            resolve_loopback("192.0.2.1:1"),
            Err(LoadError::NotLoopback(_))
        ));
        assert_eq!(
            resolve_loopback("127.0.0.9:5").ok(),
            Some("127.0.0.9:5".parse().expect("literal"))
        );
    }

    #[test]
    fn the_endpoint_follows_the_transport() {
        let tcp: SocketAddr = "127.0.0.1:1".parse().expect("literal");
        let ws: SocketAddr = "127.0.0.1:2".parse().expect("literal");
        let t = Target::new(tcp, ws, None, Transport::WsBinary).expect("loopback");
        assert_eq!(t.endpoint(), ws);
        assert_eq!(transport_name(t.transport), "ws-binary");
    }
}
