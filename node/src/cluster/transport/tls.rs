//! TLS under the cluster transport (`[tls]` with `tls.cluster`): mutual TLS
//! between nodes, each presenting its `tls.cert` and accepting only peers whose
//! certificate chains to `tls.ca`; the cookie handshake then runs inside it.
//!
//! ```text
//!  listen.cluster ─accept─► task per connection: TLS handshake (≤ HANDSHAKE_TIMEOUT,
//!                           at most MAX_PENDING at once) ─► NodeServer (TlsServer stream)
//!  dial ─► ractor_cluster::client_connect_enc (TLS client, name = the peer's
//!          advertised host) ─► NodeServer (TlsClient stream)
//! ```
//!
//! Why not ractor_cluster's own TLS listener: it runs each TLS handshake inline
//! in its accept loop with no time limit, so one connection that never sends a
//! ClientHello would keep every other node from connecting. Here each handshake
//! has its own task and deadline. ractor_cluster still binds a listener of its
//! own; in TLS mode it is put on a loopback port the kernel picks, is never
//! advertised, and refuses every handshake ([`sealed_listener`]), so the
//! cookie exchange is never reachable in the clear.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{IncomingEncryptionMode, NetworkStream, NodeServerMessage};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

use crate::tls::NodeTls;

/// TLS handshakes under way at once on the cluster listener; more connections
/// are closed at accept. Peers are a handful of nodes: this only bounds what
/// strangers can hold.
const MAX_PENDING: usize = 64;

/// Where ractor_cluster's own listener goes in TLS mode, and how it is sealed:
/// loopback (of the family of `listen`), port 0, and an acceptor that has no
/// certificate to offer, so every handshake on it fails.
pub(super) fn sealed_listener(
    listen: SocketAddr,
) -> Result<(IpAddr, IncomingEncryptionMode), String> {
    let loopback = if listen.is_ipv4() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    };
    let config = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate));
    Ok((
        loopback,
        IncomingEncryptionMode::Tls(TlsAcceptor::from(Arc::new(config))),
    ))
}

/// A certificate resolver with nothing to offer.
#[derive(Debug)]
struct NoCertificate;

impl ResolvesServerCert for NoCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Binds `listen` and hands every connection whose TLS handshake succeeds within
/// `handshake_timeout` to `server` as an inbound session.
pub(super) async fn serve(
    listen: SocketAddr,
    tls: NodeTls,
    server: ActorRef<NodeServerMessage>,
    handshake_timeout: Duration,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    Ok(tokio::spawn(async move {
        loop {
            let (stream, peer_addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = pending.clone().try_acquire_owned() else {
                failed("busy");
                continue;
            };
            let acceptor = match tls.cluster_acceptor() {
                Ok(acceptor) => acceptor,
                Err(e) => {
                    tracing::error!(error = %e, "no cluster TLS configuration");
                    continue;
                }
            };
            let server = server.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let Ok(local_addr) = stream.local_addr() else {
                    return;
                };
                let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        failed("refused");
                        tracing::warn!(peer = %peer_addr, error = %e, "refused a cluster TLS handshake");
                        return;
                    }
                    Err(_) => {
                        failed("timeout");
                        tracing::warn!(peer = %peer_addr, "a cluster TLS handshake timed out");
                        return;
                    }
                };
                drop(slot);
                let _ = server.cast(NodeServerMessage::ConnectionOpened {
                    stream: Box::new(NetworkStream::TlsServer {
                        peer_addr,
                        local_addr,
                        stream,
                    }),
                    is_server: true,
                });
            });
        }
    }))
}

fn failed(reason: &'static str) {
    metrics::counter!("chorus_tls_handshake_failures_total", "listener" => "cluster", "reason" => reason)
        .increment(1);
}

/// Dials `addr` over TLS, checking that the peer's certificate chains to
/// `tls.ca` and names `host` (the host of the address it advertises), and
/// presenting this node's certificate; hands the session to `server`.
pub(super) async fn dial(
    server: &ActorRef<NodeServerMessage>,
    addr: SocketAddr,
    host: &str,
    tls: &NodeTls,
) -> Result<(), String> {
    let connector = tls.cluster_connector().map_err(|e| e.to_string())?;
    let name = server_name(host)?;
    ractor_cluster::client_connect_enc(server, addr, connector, name)
        .await
        .map_err(|e| match e {
            ractor_cluster::ClientConnectErr::Encryption(e) => {
                failed("dial");
                format!("TLS with {addr} ({host}) failed: {e}")
            }
            other => format!("connecting to {addr}: {other}"),
        })
}

/// The certificate name of an advertised host: an IP address or a DNS name.
fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_string()).map_err(|e: rustls::pki_types::InvalidDnsNameError| {
        format!("{host:?} is not a name a certificate can carry: {e}")
    })
}

/// The host of a `host:port` address.
pub(super) fn host_of(target: &str) -> &str {
    match target.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => target,
    }
}
