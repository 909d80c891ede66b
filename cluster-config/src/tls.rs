//! `[tls]`: certificates, and which listeners speak TLS.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::Problems;

/// `[tls]`: the node's certificate and key (PEM files, read at start and on every
/// reload), the CA of the cluster's nodes, and which listeners use them.
///
/// TLS is on once `cert` and `key` are set; then every listener whose flag is
/// true speaks TLS only (`tls://`, `wss://`, HTTPS, TLS between nodes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the node's own certificate first.
    pub cert: Option<PathBuf>,
    /// PEM file with the private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM file with the CA certificate(s) that sign the cluster's node
    /// certificates. Between nodes TLS is mutual: each node presents `cert` and
    /// accepts only peers whose certificate chains to `ca`. Required when the
    /// cluster transport runs over TLS.
    pub ca: Option<PathBuf>,
    /// TLS on the client TCP listener (`tls://`). Default true.
    pub tcp: bool,
    /// TLS on the WebSocket listener (`wss://`). Default true.
    pub ws: bool,
    /// TLS on the admin listener (HTTPS). Default true.
    pub admin: bool,
    /// TLS on the cluster transport between nodes. Default true.
    pub cluster: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            ca: None,
            tcp: true,
            ws: true,
            admin: true,
            cluster: true,
        }
    }
}

impl TlsConfig {
    /// Whether a certificate and key are configured.
    pub fn enabled(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }

    /// Whether the client TCP listener speaks TLS.
    pub fn on_tcp(&self) -> bool {
        self.enabled() && self.tcp
    }

    /// Whether the WebSocket listener speaks TLS.
    pub fn on_ws(&self) -> bool {
        self.enabled() && self.ws
    }

    /// Whether the admin listener speaks HTTPS.
    pub fn on_admin(&self) -> bool {
        self.enabled() && self.admin
    }

    /// Whether the cluster transport runs over (mutual) TLS.
    pub fn on_cluster(&self) -> bool {
        self.enabled() && self.cluster
    }

    pub(crate) fn check(&self, problems: &mut Problems) {
        for (key, path) in [
            ("tls.cert", &self.cert),
            ("tls.key", &self.key),
            ("tls.ca", &self.ca),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                problems.push(key, "must not be empty: leave the key out instead");
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => problems.push(
                "tls.key",
                "is required with tls.cert: the private key of the certificate",
            ),
            (None, Some(_)) => problems.push(
                "tls.cert",
                "is required with tls.key: the certificate chain of the key",
            ),
            _ => {}
        }
    }
}
