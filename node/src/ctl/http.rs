//! The admin API's client side: one request per connection, through hyper
//! ([`chorus_admin_api::client`]) over TCP, or over TLS when the nodes serve
//! HTTPS ([`AdminClient::with_tls`]); the answer's body read under a bound, its
//! JSON decoded into the route's type, or its failure turned into a
//! [`CtlError`] that names the address.
//!
//! Decoding is strict where it matters: a field the type does not know is
//! ignored (a newer node may send more), but a required field that is missing
//! or of another type is a [`CtlError::BadResponse`] naming the path and field.

use std::io;
use std::time::Duration;

use chorus_admin_api::Method;
use chorus_admin_api::client::{self, Answer, ExchangeError, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// The largest answer read, in bytes. The biggest real one (`/admin/shards` of a
/// large cluster) is a few kilobytes per thousand shards.
const MAX_RESPONSE: usize = 16 << 20;

/// Why a command failed. Each message names the admin address it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No TCP connection to the admin listener.
    #[error(
        "cannot connect to the admin API at {addr}: {source} (is the node running, and is \
         {addr} its listen.admin address?)"
    )]
    Connect {
        /// The address dialled.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The whole exchange took longer than `--timeout`.
    #[error("{addr} did not answer {path} within {secs} s (--timeout)")]
    Timeout {
        /// The address asked.
        addr: String,
        /// The path asked for.
        path: String,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// The TLS handshake failed: the node's certificate is not signed by the CA
    /// given (`--ca`), does not name the host dialed, or the node does not speak
    /// HTTPS.
    #[error("TLS with {addr} failed: {why}")]
    Tls {
        /// The address dialled.
        addr: String,
        /// rustls's reason.
        why: String,
    },
    /// The connection failed midway.
    #[error("talking to {addr}: {source}")]
    Io {
        /// The address asked.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The answer is not the HTTP and JSON the admin API sends.
    #[error("{addr} sent an answer chorusctl cannot read: {why}")]
    BadResponse {
        /// The address asked.
        addr: String,
        /// What was wrong with it.
        why: String,
    },
    /// `401` to a request that carried no token.
    #[error(
        "{addr} requires the admin token: pass --token or set CHORUS_ADMIN_TOKEN to the node's \
         [admin] token"
    )]
    TokenMissing {
        /// The address asked.
        addr: String,
    },
    /// `401` to a request that carried a token.
    #[error(
        "{addr} refused the admin token: --token (or CHORUS_ADMIN_TOKEN) is not the node's \
         [admin] token"
    )]
    TokenRefused {
        /// The address asked.
        addr: String,
    },
    /// Any other non-2xx answer; `message` is the server's.
    #[error("{addr}: {message} (HTTP {status})")]
    Server {
        /// The address asked.
        addr: String,
        /// The HTTP status.
        status: u16,
        /// The `error` kind of the body (`bad_request`, `unavailable`, ...), or
        /// empty when the body had none.
        kind: String,
        /// The `message` of the body, or a description of the status.
        message: String,
    },
    /// A failure of the command itself (a node that is not a member, a drain that
    /// did not finish in time).
    #[error("{0}")]
    Failed(String),
}

/// A client of the admin API of any node of a cluster.
#[derive(Clone)]
pub struct AdminClient {
    /// Sent as `Authorization: Bearer` when present.
    token: Option<String>,
    /// Bounds each whole exchange: connect, send, read.
    timeout: Duration,
    /// HTTPS with these roots; `None`: plain HTTP.
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("https", &self.tls.is_some())
            .finish()
    }
}

/// A request body and its content type.
#[derive(Debug, Clone)]
pub struct Body {
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// A request type of the contract, as JSON.
    pub fn json(value: &impl Serialize) -> Body {
        Body {
            content_type: "application/json",
            bytes: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// UTF-8 text.
    pub fn text(text: &str) -> Body {
        Body {
            content_type: "text/plain; charset=utf-8",
            bytes: text.as_bytes().to_vec(),
        }
    }
}

impl AdminClient {
    /// A client presenting `token` (if any), giving each request `timeout`.
    pub fn new(token: Option<String>, timeout: Duration) -> Self {
        Self {
            token,
            timeout,
            tls: None,
        }
    }

    /// Speaks HTTPS to every node, checking certificates with `connector`.
    pub fn with_tls(mut self, connector: TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }

    /// `GET path` on the admin listener at `addr` (`host:port`), its answer
    /// decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, addr: &str, path: &str) -> Result<T, CtlError> {
        let body = self.call(addr, Method::Get, path, None).await?;
        decode(addr, path, &body)
    }

    /// `POST path` with `body` on the admin listener at `addr`, its answer
    /// decoded as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: Option<Body>,
    ) -> Result<T, CtlError> {
        let answer = self.call(addr, Method::Post, path, body).await?;
        decode(addr, path, &answer)
    }

    /// Whether anything accepts TCP connections at `addr`, within the timeout.
    pub async fn answers(&self, addr: &str) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await,
            Ok(Ok(_))
        )
    }

    /// The body of a 2xx answer to `method path`, or the failure it stands for.
    async fn call(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<bytes::Bytes, CtlError> {
        let answer = self.raw(addr, method, path, body).await?;
        interpret(addr, &answer, self.token.is_some())
    }

    /// `method path` on `addr` as it is: status, content type and body,
    /// whatever the status. Fails only when there is no whole answer.
    pub async fn raw(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<Answer, CtlError> {
        let request = Request {
            method,
            path,
            host: addr,
            bearer: self.token.as_deref(),
            body: body.map(|b| (b.content_type, b.bytes)),
        };
        tokio::time::timeout(self.timeout, self.exchange(addr, request))
            .await
            .map_err(|_| CtlError::Timeout {
                addr: addr.to_string(),
                path: path.to_string(),
                secs: self.timeout.as_secs(),
            })?
    }

    async fn exchange(&self, addr: &str, request: Request<'_>) -> Result<Answer, CtlError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| CtlError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let answer = match &self.tls {
            None => client::exchange(stream, request, MAX_RESPONSE).await,
            Some(connector) => {
                let name = server_name(addr).map_err(|why| CtlError::Tls {
                    addr: addr.to_string(),
                    why,
                })?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| CtlError::Tls {
                        addr: addr.to_string(),
                        why: e.to_string(),
                    })?;
                client::exchange(stream, request, MAX_RESPONSE).await
            }
        };
        answer.map_err(|e| exchange_error(addr, e))
    }
}

/// The HTTPS client configuration: roots from `ca`, or the system's.
pub(crate) fn tls_connector(
    ca: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, CtlError> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let roots = match ca {
        Some(path) => {
            crate::tls::root_store("--ca", path).map_err(|e| CtlError::Failed(e.to_string()))?
        }
        None => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(CtlError::Failed(
                    "no system root certificates were found; pass --ca with the nodes' CA".into(),
                ));
            }
            roots
        }
    };
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CtlError::Failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// An exchange that failed, as the operator reads it.
fn exchange_error(addr: &str, e: ExchangeError) -> CtlError {
    let addr = addr.to_string();
    match e {
        ExchangeError::Http(e) if e.is_parse() || e.is_parse_status() => CtlError::BadResponse {
            addr,
            why: format!("not the HTTP/1 the admin API speaks: {e}"),
        },
        ExchangeError::Http(e) if e.is_incomplete_message() => CtlError::BadResponse {
            addr,
            why: "the connection closed without a whole answer".into(),
        },
        ExchangeError::Http(e) => CtlError::Io {
            addr,
            source: io::Error::other(e),
        },
        ExchangeError::Request(why) => CtlError::Failed(format!("a request to {addr}: {why}")),
        e @ (ExchangeError::TooLarge(_) | ExchangeError::Body(_)) => CtlError::BadResponse {
            addr,
            why: e.to_string(),
        },
    }
}

/// The certificate name of `host:port`: an IP address or a DNS name.
fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))
}

/// The answer of `path` as its route's type: a missing or mistyped field is a
/// [`CtlError::BadResponse`] that names it.
pub(crate) fn decode<T: DeserializeOwned>(
    addr: &str,
    path: &str,
    body: &[u8],
) -> Result<T, CtlError> {
    serde_json::from_slice(body).map_err(|e| CtlError::BadResponse {
        addr: addr.to_string(),
        why: if e.is_syntax() || e.is_eof() {
            format!(
                "{path} answered with a body that is not JSON ({e}): {:?}",
                truncate(&String::from_utf8_lossy(body), 120)
            )
        } else {
            format!("{path} answered a shape this chorusctl does not know: {e}")
        },
    })
}

/// The body of a 2xx answer, or the error a failure stands for.
pub(crate) fn interpret(
    addr: &str,
    response: &Answer,
    token_given: bool,
) -> Result<bytes::Bytes, CtlError> {
    match response.status {
        200..=299 => Ok(response.body.clone()),
        401 if token_given => Err(CtlError::TokenRefused {
            addr: addr.to_string(),
        }),
        401 => Err(CtlError::TokenMissing {
            addr: addr.to_string(),
        }),
        status => {
            let json: Option<Value> = serde_json::from_slice(&response.body).ok();
            let field = |name: &str| {
                json.as_ref()
                    .and_then(|j| j.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let message = field("message").unwrap_or_else(|| match status {
                404 => "not found: the node's admin API is disabled (no [admin] token is set) \
                        or too old for this command"
                    .to_string(),
                _ => {
                    let text = String::from_utf8_lossy(&response.body);
                    let text = truncate(text.trim(), 200);
                    if text.is_empty() {
                        "the request failed".to_string()
                    } else {
                        text.to_string()
                    }
                }
            });
            Err(CtlError::Server {
                addr: addr.to_string(),
                status,
                kind: field("error").unwrap_or_default(),
                message,
            })
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `segment` percent-encoded for one path segment: unreserved characters and `:`
/// stay as they are (so keys stay readable in logs), everything else is `%XX`.
pub(crate) fn encode_segment(segment: &str) -> String {
    if segment == "." || segment == ".." {
        // A dot segment would be read as "this" or "parent" directory.
        return segment.replace('.', "%2E");
    }
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
