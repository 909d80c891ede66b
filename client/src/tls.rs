//! TLS for `tls://` and `wss://` endpoints: which roots the node's certificate
//! must chain to, the rustls configuration built from them (once per client),
//! and the server name a connection checks.
//!
//! System roots come from the operating system's trust store
//! (`rustls-native-certs`): the store its administrator keeps current, private
//! CAs installed there included, rather than a root list frozen into the binary.

use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};

use crate::error::ClientError;

/// The certificates a node's must chain to, for `tls://` and `wss://` endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// The operating system's trust store.
    #[default]
    System,
    /// The CA certificates in a PEM file (a private CA).
    CaFile(PathBuf),
    /// The CA certificates in PEM text.
    CaPem(String),
}

/// The rustls configuration of a client, built on its first TLS connection and
/// shared by its clones (the connection task's copy of the config included).
#[derive(Clone, Default)]
pub(crate) struct TlsCache(Arc<Mutex<Option<Built>>>);

/// A configuration and the roots it was built for.
type Built = (TlsRoots, Arc<rustls::ClientConfig>);

impl std::fmt::Debug for TlsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let built = self.0.lock().is_some();
        f.debug_struct("TlsCache").field("built", &built).finish()
    }
}

impl TlsCache {
    /// A connector trusting `roots`; built once, rebuilt only if `roots` changed.
    pub(crate) fn connector(&self, roots: &TlsRoots) -> Result<TlsConnector, ClientError> {
        let mut cached = self.0.lock();
        if let Some((built_for, config)) = cached.as_ref()
            && built_for == roots
        {
            return Ok(TlsConnector::from(config.clone()));
        }
        let config = Arc::new(client_config(roots)?);
        *cached = Some((roots.clone(), config.clone()));
        Ok(TlsConnector::from(config))
    }
}

fn client_config(roots: &TlsRoots) -> Result<rustls::ClientConfig, ClientError> {
    let tls = |why: String| ClientError::Tls(why);
    let mut store = RootCertStore::empty();
    match roots {
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), ToString::to_string);
                return Err(tls(format!("no system root certificates: {why}")));
            }
            // Unparseable system certificates are skipped, as browsers do.
            let (_added, _ignored) = store.add_parsable_certificates(found.certs);
        }
        TlsRoots::CaFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| tls(format!("cannot read CA file {}: {e}", path.display())))?;
            add_pem(&mut store, &pem, &path.display().to_string())?;
        }
        TlsRoots::CaPem(pem) => add_pem(&mut store, pem.as_bytes(), "the CA PEM")?,
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth())
}

fn add_pem(store: &mut RootCertStore, pem: &[u8], source: &str) -> Result<(), ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Tls(format!("{source}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{source} holds no CERTIFICATE block"
        )));
    }
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("{source}: {e}")))?;
    }
    Ok(())
}

/// The name a node's certificate must carry for `host_port` (`host:port`,
/// `[v6]:port`): an IP address or a DNS name.
pub(crate) fn server_name(host_port: &str) -> Result<ServerName<'static>, ClientError> {
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Config(format!("{host:?} is not a host name for TLS: {e}")))
}

/// A socket to a node, in the clear or under TLS: what the SDK's connections run
/// on, and what tools that speak the protocol themselves (the load test) can use.
pub enum Stream {
    /// `tcp://`, `ws://`.
    Plain(TcpStream),
    /// `tls://`, `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
