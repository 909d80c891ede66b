//! TLS of the node: the certificate and key of `[tls]`, read from PEM files at
//! start and on every reload, as the rustls configurations each listener uses.
//!
//! ```text
//! [tls] cert, key, ca ──load──► Loaded ──RwLock<Arc<_>>──► NodeTls
//!                                 ├── clients: ServerConfig ─► tcp, ws, admin acceptors
//!                                 ├── cluster_server: ServerConfig (peer must present a cert of `ca`)
//!                                 └── cluster_client: ClientConfig (presents `cert`, trusts `ca`)
//! ```
//!
//! Every accept takes the configuration in force at that moment (an `Arc` clone),
//! so a reload changes what new handshakes get without touching connections that
//! are already up. A reload that fails (a file missing, a key that does not match
//! the certificate, no certificate in the file) keeps the configuration in force
//! and returns the reason; it is counted in `chorus_tls_reloads_total{result}`.
//!
//! rustls with its defaults: the aws-lc-rs provider, TLS 1.3 and 1.2 with the
//! provider's default cipher suites. No session tickets are configured beyond
//! rustls's default in-memory session cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use chorus_config::TlsConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// `tls.cert`, `tls.key` or `tls.ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file does not hold the PEM it should.
    #[error("{what} {}: {why}", path.display())]
    Pem {
        /// `tls.cert`, `tls.key` or `tls.ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused what the files hold (a key that does not fit the
    /// certificate, an unsupported key type, a CA that is not a certificate).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being built.
        what: &'static str,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The CA file gave no usable trust anchor for the peer verifier.
    #[error("tls.ca: {0}")]
    Verifier(String),
    /// `tls.ca` is needed for the cluster transport and is not set.
    #[error("tls.ca is not set: the cluster transport needs the CA of the nodes' certificates")]
    NoCa,
}

/// What a reload reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    /// Certificates in the chain of `tls.cert`.
    pub chain: usize,
    /// CA certificates read from `tls.ca` (0 without it).
    pub ca_certs: usize,
    /// Reloads that succeeded since the node started (the first load is 0).
    pub generation: u64,
}

/// The configurations built from one reading of the files.
struct Loaded {
    clients: Arc<ServerConfig>,
    cluster_server: Option<Arc<ServerConfig>>,
    cluster_client: Option<Arc<ClientConfig>>,
    report: TlsReport,
}

/// Where the files are.
#[derive(Debug, Clone)]
struct Paths {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
}

/// The node's TLS material, shared by every listener. Cheap to clone.
#[derive(Clone)]
pub struct NodeTls {
    paths: Arc<Paths>,
    current: Arc<RwLock<Arc<Loaded>>>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("paths", &self.paths)
            .field("report", &self.loaded().report)
            .finish()
    }
}

impl NodeTls {
    /// Loads `[tls]`'s files; `Ok(None)` when TLS is not configured.
    pub fn from_config(config: &TlsConfig) -> Result<Option<Self>, TlsError> {
        let (Some(cert), Some(key)) = (&config.cert, &config.key) else {
            return Ok(None);
        };
        let paths = Paths {
            cert: cert.clone(),
            key: key.clone(),
            ca: config.ca.clone(),
        };
        let loaded = load(&paths, 0)?;
        Ok(Some(Self {
            paths: Arc::new(paths),
            current: Arc::new(RwLock::new(Arc::new(loaded))),
        }))
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.current.read().clone()
    }

    /// Reads the files again and puts what they hold in force for new handshakes.
    /// On failure the configuration in force stays, and the error says why.
    pub fn reload(&self) -> Result<TlsReport, TlsError> {
        let generation = self.loaded().report.generation + 1;
        match load(&self.paths, generation) {
            Ok(loaded) => {
                let report = loaded.report.clone();
                *self.current.write() = Arc::new(loaded);
                metrics::counter!("chorus_tls_reloads_total", "result" => "ok").increment(1);
                tracing::info!(
                    cert = %self.paths.cert.display(),
                    chain = report.chain,
                    ca_certs = report.ca_certs,
                    "TLS certificates reloaded"
                );
                Ok(report)
            }
            Err(e) => {
                metrics::counter!("chorus_tls_reloads_total", "result" => "failed").increment(1);
                tracing::warn!(error = %e, "TLS reload failed; the certificates in use stay");
                Err(e)
            }
        }
    }

    /// The acceptor of the client listeners (TCP, WebSocket) and the admin API.
    pub fn client_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.loaded().clients.clone())
    }

    /// The acceptor of the cluster listener: the peer must present a certificate
    /// that chains to `tls.ca`.
    pub fn cluster_acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        self.loaded()
            .cluster_server
            .clone()
            .map(TlsAcceptor::from)
            .ok_or(TlsError::NoCa)
    }

    /// The connector for dialing other nodes: presents `tls.cert`, trusts `tls.ca`.
    pub fn cluster_connector(&self) -> Result<TlsConnector, TlsError> {
        self.loaded()
            .cluster_client
            .clone()
            .map(TlsConnector::from)
            .ok_or(TlsError::NoCa)
    }

    /// What the configuration in force was built from.
    pub fn report(&self) -> TlsReport {
        self.loaded().report.clone()
    }
}

/// The crypto provider: rustls's default one, named rather than taken from the
/// process-wide default so that a second provider linked in by some dependency
/// can never make the builder fail at run time.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load(paths: &Paths, generation: u64) -> Result<Loaded, TlsError> {
    let chain = read_certs("tls.cert", &paths.cert)?;
    let key = read_key(&paths.key)?;
    let built = |what, source| TlsError::Rustls { what, source };
    let clients = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| built("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| built("tls.cert and tls.key", e))?;

    let (cluster_server, cluster_client, ca_certs) = match &paths.ca {
        None => (None, None, 0),
        Some(ca) => {
            let roots = Arc::new(root_store("tls.ca", ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            let server = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| built("TLS versions", e))?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(|e| built("tls.cert and tls.key", e))?;
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| built("TLS versions", e))?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(chain.clone(), key)
                .map_err(|e| built("tls.cert and tls.key as a client certificate", e))?;
            (Some(Arc::new(server)), Some(Arc::new(client)), roots.len())
        }
    };
    Ok(Loaded {
        clients: Arc::new(clients),
        cluster_server,
        cluster_client,
        report: TlsReport {
            chain: chain.len(),
            ca_certs,
            generation,
        },
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file, in order; at least one.
pub fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let pem = |why: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(pem("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("tls.key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        what: "tls.key",
        path: path.to_path_buf(),
        why: format!("holds no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })
}

/// A trust store of every certificate in a PEM file.
pub fn root_store(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(what, path)? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            what: "a CA certificate",
            source,
        })?;
    }
    Ok(roots)
}
