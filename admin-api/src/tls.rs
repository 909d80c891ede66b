//! The node's certificates: `/admin/tls/reload`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /admin/tls/reload`: the `[tls]` files read again and in force for new
/// handshakes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TlsReloadResponse {
    /// The node that reloaded.
    pub node: String,
    /// Certificates in the chain of `tls.cert`.
    pub chain: u64,
    /// CA certificates read from `tls.ca` (0 without it).
    pub ca_certs: u64,
    /// Reloads that succeeded since the node started (the first load is 0).
    pub generation: u64,
}
