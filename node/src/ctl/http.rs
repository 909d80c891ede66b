//! The admin API's client side: one HTTP/1.1 request per connection
//! (`Connection: close`), the answer read until the server closes, its JSON
//! returned or its failure turned into a [`CtlError`] that names the address.
//!
//! Deliberately small: the admin listener is ours, answers JSON with a length or
//! in chunks, and is reached over TCP, or over TLS when the nodes serve HTTPS
//! ([`AdminClient::with_tls`]). Anything it sends is parsed fallibly; a
//! malformed answer is an error, never a panic.

use std::io;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// The largest answer read, in bytes. The biggest real one (`/admin/shards` of a
/// large cluster) is a few kilobytes per thousand shards.
const MAX_RESPONSE: u64 = 16 << 20;

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
        /// The `error` kind of the body (`bad_request`, `unsupported`, ...), or
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

impl CtlError {
    /// Whether the node answered `501`: it does not implement the operation.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, CtlError::Server { status: 501, .. })
    }
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
    /// A JSON document.
    pub fn json(value: &Value) -> Body {
        Body {
            content_type: "application/json",
            bytes: value.to_string().into_bytes(),
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

    /// `GET path` on the admin listener at `addr` (`host:port`).
    pub async fn get(&self, addr: &str, path: &str) -> Result<Value, CtlError> {
        self.call(addr, "GET", path, None).await
    }

    /// `POST path` with `body` on the admin listener at `addr`.
    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: Option<Body>,
    ) -> Result<Value, CtlError> {
        self.call(addr, "POST", path, body).await
    }

    /// Whether anything accepts TCP connections at `addr`, within the timeout.
    pub async fn answers(&self, addr: &str) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await,
            Ok(Ok(_))
        )
    }

    async fn call(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        body: Option<Body>,
    ) -> Result<Value, CtlError> {
        let request = self.request(addr, method, path, body.as_ref());
        let raw = tokio::time::timeout(self.timeout, exchange(addr, &request, self.tls.as_ref()))
            .await
            .map_err(|_| CtlError::Timeout {
                addr: addr.to_string(),
                path: path.to_string(),
                secs: self.timeout.as_secs(),
            })??;
        let response = parse_response(&raw).map_err(|why| CtlError::BadResponse {
            addr: addr.to_string(),
            why,
        })?;
        interpret(addr, &response, self.token.is_some())
    }

    fn request(&self, addr: &str, method: &str, path: &str, body: Option<&Body>) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Accept: application/json\r\nUser-Agent: chorusctl\r\n"
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        match body {
            Some(body) => head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                body.content_type,
                body.bytes.len()
            )),
            None if method == "POST" => head.push_str("Content-Length: 0\r\n"),
            None => {}
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        if let Some(body) = body {
            request.extend_from_slice(&body.bytes);
        }
        request
    }
}

async fn exchange(
    addr: &str,
    request: &[u8],
    tls: Option<&TlsConnector>,
) -> Result<Vec<u8>, CtlError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| CtlError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let Some(connector) = tls else {
        return talk(addr, stream, request).await;
    };
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
    talk(addr, stream, request).await
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

/// Sends `request` and reads the answer until the server closes.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    addr: &str,
    mut stream: S,
    request: &[u8],
) -> Result<Vec<u8>, CtlError> {
    let io_error = |source| CtlError::Io {
        addr: addr.to_string(),
        source,
    };
    stream.write_all(request).await.map_err(io_error)?;
    let mut raw = Vec::new();
    match (&mut stream)
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .await
    {
        Ok(_) => {}
        // A TLS peer that closes without close_notify after its whole answer:
        // the answer is judged by its own length below.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(io_error(e)),
    }
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(CtlError::BadResponse {
            addr: addr.to_string(),
            why: format!("the answer is larger than {MAX_RESPONSE} bytes"),
        });
    }
    Ok(raw)
}

/// An HTTP response, its body de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Parses a whole HTTP/1.x response as read until the server closed.
pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    if raw.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err("no complete HTTP header".into());
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the HTTP header is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP/1 answer: {:?}",
            truncate(status_line, 80)
        ));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("bad status line {:?}", truncate(status_line, 80)))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(length) = content_length {
        rest.get(..length)
            .ok_or_else(|| format!("the body ended after {} of {length} bytes", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// The payload of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1); trailers
/// are ignored.
fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Err("a chunk size line is incomplete".into());
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "a chunk size is not text")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {:?}", truncate(size_text, 20)))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("the body ended inside a chunk")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or("a chunk is not followed by CRLF")?;
    }
}

/// The JSON of a 2xx answer, or the error a failure stands for.
pub(crate) fn interpret(
    addr: &str,
    response: &Response,
    token_given: bool,
) -> Result<Value, CtlError> {
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    match response.status {
        200..=299 => json.ok_or_else(|| CtlError::BadResponse {
            addr: addr.to_string(),
            why: format!(
                "HTTP {} with a body that is not JSON: {:?}",
                response.status,
                truncate(&String::from_utf8_lossy(&response.body), 120)
            ),
        }),
        401 if token_given => Err(CtlError::TokenRefused {
            addr: addr.to_string(),
        }),
        401 => Err(CtlError::TokenMissing {
            addr: addr.to_string(),
        }),
        status => {
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
