//! How a [`Client`](crate::Client) connects: endpoints, transport, token, timeouts,
//! reconnect and heartbeat policy, and the positions to resume from.

use std::collections::HashMap;
use std::time::Duration;

use chorus_wire::Encoding;
use chorus_wire::limits::MAX_FRAME_CEILING;

use crate::error::ClientError;
use crate::heartbeat::AdaptiveHeartbeat;
use crate::tls::{TlsCache, TlsRoots};

/// Default for [`ClientConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClientConfig::backoff_initial`].
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default for [`ClientConfig::backoff_max`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Default for [`ClientConfig::ping_interval`].
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default for [`ClientConfig::max_frame`]: room for a full 200-message history page
/// of maximal bodies, which can exceed the node's own limit on client frames.
pub const DEFAULT_MAX_FRAME: u32 = 4 * 1024 * 1024;

/// The socket and encoding the client speaks (docs/protocol.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP: 4-byte big-endian length prefix, then a bincode frame.
    Tcp,
    /// WebSocket on path `/ws`, one JSON text message per frame.
    WsJson,
    /// WebSocket on path `/ws`, one bincode binary message per frame.
    WsBinary,
}

impl Transport {
    /// The frame encoding this transport uses.
    pub fn encoding(self) -> Encoding {
        match self {
            Self::WsJson => Encoding::Json,
            Self::Tcp | Self::WsBinary => Encoding::Binary,
        }
    }

    /// Whether this is one of the WebSocket transports.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::WsJson | Self::WsBinary)
    }
}

/// Everything [`Client::connect`](crate::Client::connect) needs.
///
/// Build it with [`ClientConfig::new`] and change the public fields as needed.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Node addresses, tried round-robin: `host:port` or `tcp://host:port` (TCP in
    /// the clear), `tls://host:port` (TCP over TLS). For the WebSocket transports
    /// `host:port` means `ws://host:port/ws`; a full `ws://` or `wss://` URL is
    /// used as given.
    pub endpoints: Vec<String>,
    /// Socket and encoding.
    pub transport: Transport,
    /// The `hello` token: a JWT, or the user id on a node in `dev` auth mode.
    pub token: String,
    /// Device label sent in `hello`, for operators.
    pub device: Option<String>,
    /// How long a request may take from the call to its answer, reconnects included.
    pub request_timeout: Duration,
    /// Whether a lost connection is re-established (and pending sends retried).
    pub reconnect: bool,
    /// First reconnect delay; doubled per failed attempt, with jitter.
    pub backoff_initial: Duration,
    /// Ceiling of the reconnect delay.
    pub backoff_max: Duration,
    /// Heartbeat interval, announced to the node in `ping.interval_s`; `None` sends no
    /// pings and never declares the connection dead for silence. Not used when
    /// `adaptive_heartbeat` is set.
    pub ping_interval: Option<Duration>,
    /// Learn the heartbeat interval per network, probing how long the NAT keeps an
    /// idle connection, instead of pinging every `ping_interval`. `None` by default.
    pub adaptive_heartbeat: Option<AdaptiveHeartbeat>,
    /// Whether every re-connect catches up with `conversations` + `history`, emitting
    /// what was missed before [`Event::Resynced`](crate::Event::Resynced). Without
    /// `resume`, the first connect takes the conversation list once as its starting
    /// point, so a later resync fetches what came after it, not whole histories.
    pub resync: bool,
    /// The last seq held per conversation by a client restarted from saved state
    /// (see [`Client::positions`](crate::Client::positions)); when not empty, the first
    /// connect resyncs too.
    pub resume: HashMap<String, u64>,
    /// Largest frame accepted from the node, in bytes.
    pub max_frame: u32,
    /// What the certificates of `tls://` and `wss://` endpoints must chain to.
    /// Default: the operating system's trust store.
    pub tls: TlsRoots,
    /// The rustls configuration built from `tls`, shared by clones of this config.
    pub(crate) tls_cache: TlsCache,
}

impl ClientConfig {
    /// A configuration for one endpoint with every default.
    pub fn new(
        endpoint: impl Into<String>,
        transport: Transport,
        token: impl Into<String>,
    ) -> Self {
        Self {
            endpoints: vec![endpoint.into()],
            transport,
            token: token.into(),
            device: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reconnect: true,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            adaptive_heartbeat: None,
            resync: true,
            resume: HashMap::new(),
            max_frame: DEFAULT_MAX_FRAME,
            tls: TlsRoots::System,
            tls_cache: TlsCache::default(),
        }
    }

    /// Checks the values that would otherwise fail later and less clearly.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        let bad = |what: &str| Err(ClientError::Config(what.to_string()));
        if self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.trim().is_empty()) {
            return bad("endpoints must be a non-empty list of non-empty addresses");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout must be positive");
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return bad("backoff_initial must be positive and at most backoff_max");
        }
        if self.ping_interval.is_some_and(|i| i.is_zero()) {
            return bad("ping_interval must be positive (or None)");
        }
        if let Some(problem) = self
            .adaptive_heartbeat
            .as_ref()
            .and_then(|a| a.params.problem())
        {
            return bad(problem);
        }
        if !(1024..=MAX_FRAME_CEILING).contains(&self.max_frame) {
            return Err(ClientError::Config(format!(
                "max_frame must lie between 1024 and {MAX_FRAME_CEILING} bytes"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let cfg = ClientConfig::new("127.0.0.1:7400", Transport::Tcp, "alice");
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.request_timeout, Duration::from_secs(10));
        assert_eq!(cfg.backoff_initial, Duration::from_millis(100));
        assert_eq!(cfg.backoff_max, Duration::from_secs(5));
        assert_eq!(cfg.ping_interval, Some(Duration::from_secs(30)));
        assert!(cfg.reconnect && cfg.resync && cfg.resume.is_empty());
    }

    #[test]
    fn bad_values_are_refused() {
        let base = ClientConfig::new("127.0.0.1:7400", Transport::WsJson, "alice");
        let mut c = base.clone();
        c.endpoints.clear();
        assert!(matches!(c.validate(), Err(ClientError::Config(_))));
        let mut c = base.clone();
        c.ping_interval = Some(Duration::ZERO);
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.backoff_max = Duration::from_millis(1);
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.max_frame = MAX_FRAME_CEILING + 1;
        assert!(c.validate().is_err());
        let mut c = base;
        let mut adaptive = AdaptiveHeartbeat::new("wifi:home");
        adaptive.params.k = 0;
        c.adaptive_heartbeat = Some(adaptive);
        assert!(c.validate().is_err());
    }

    #[test]
    fn transports_map_to_encodings() {
        assert_eq!(Transport::Tcp.encoding(), Encoding::Binary);
        assert_eq!(Transport::WsBinary.encoding(), Encoding::Binary);
        assert_eq!(Transport::WsJson.encoding(), Encoding::Json);
        assert!(!Transport::Tcp.is_websocket());
    }
}
