//! [`Target`]: the node under load — its client and admin addresses and the
//! transport the scenario speaks. Only loopback addresses are accepted.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chorus_client::{TlsRoots, Transport};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};

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
    /// TLS (`tls://`, `wss://`) with the node's CA; `None`: in the clear.
    pub tls: Option<TlsTarget>,
}

/// How the scenario's connections speak TLS.
#[derive(Clone)]
pub struct TlsTarget {
    /// The CA file the node's certificate chains to (`--tls-ca`), for the SDK.
    pub ca: PathBuf,
    /// The same roots, for the raw connections.
    pub connector: TlsConnector,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget").field("ca", &self.ca).finish()
    }
}

impl TlsTarget {
    /// Reads the CA certificates of `ca` (PEM).
    pub fn from_ca_file(ca: &Path) -> Result<Self, LoadError> {
        let bad = |why: String| LoadError::Config(format!("--tls-ca {}: {why}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("holds no CERTIFICATE block".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            ca: ca.to_path_buf(),
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The SDK's roots.
    pub fn roots(&self) -> TlsRoots {
        TlsRoots::CaFile(self.ca.clone())
    }

    /// The certificate name of a node at `addr`: its IP address.
    pub fn server_name(addr: SocketAddr) -> ServerName<'static> {
        ServerName::IpAddress(addr.ip().into())
    }
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
            tls: None,
        })
    }

    /// The scenario's endpoint as the SDK takes it: `tls://` or `wss://` with TLS,
    /// the bare address otherwise.
    pub fn client_endpoint(&self) -> String {
        match (&self.tls, self.transport.is_websocket()) {
            (None, _) => self.endpoint().to_string(),
            (Some(_), false) => format!("tls://{}", self.tcp),
            (Some(_), true) => format!("wss://{}/ws", self.ws),
        }
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
