//! One HTTP/1.1 exchange with an admin listener, over a stream the caller has
//! connected (TCP, or TLS on top of it): hyper's client connection, the answer's
//! body read under a bound. Timeouts are the caller's (one around the whole
//! exchange, connection included).
//!
//! One request per connection, as the tools need: `chorusctl` asks each node
//! once, the load tester now and then.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::routes::Method;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Its method.
    pub method: Method,
    /// The path (and query), already percent-encoded.
    pub path: &'a str,
    /// The `Host` header: the `host:port` dialled.
    pub host: &'a str,
    /// Sent as `Authorization: Bearer` when present.
    pub bearer: Option<&'a str>,
    /// The body and its `Content-Type`.
    pub body: Option<(&'static str, Vec<u8>)>,
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any and readable.
    pub content_type: Option<String>,
    /// The body, at most the bound given.
    pub body: Bytes,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The request could not be formed (a path or token that is not valid in a
    /// request line or header).
    #[error("the request is invalid: {0}")]
    Request(String),
    /// The connection failed before a whole answer header arrived, or the
    /// answer is not HTTP/1.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The body failed midway.
    #[error("reading the answer: {0}")]
    Body(String),
    /// The body is longer than the bound.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Sends `request` on `io` and reads the answer, its body at most `max_body`
/// bytes.
pub async fn exchange<IO>(
    io: IO,
    request: Request<'_>,
    max_body: usize,
) -> Result<Answer, ExchangeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let method = match request.method {
        Method::Get => hyper::Method::GET,
        Method::Post => hyper::Method::POST,
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(request.path)
        .header(header::HOST, request.host)
        .header(header::CONNECTION, "close")
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "chorus-admin-client");
    if let Some(token) = request.bearer {
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| ExchangeError::Request(e.to_string()))?;
        value.set_sensitive(true);
        builder = builder.header(header::AUTHORIZATION, value);
    }
    let body = match request.body {
        Some((content_type, bytes)) => {
            builder = builder.header(header::CONTENT_TYPE, content_type);
            Full::new(Bytes::from(bytes))
        }
        None => Full::new(Bytes::new()),
    };
    let http_request = builder
        .body(body)
        .map_err(|e| ExchangeError::Request(e.to_string()))?;

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let talk = async move {
        let response = sender.send_request(http_request).await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ExchangeError::TooLarge(max_body)
                } else {
                    ExchangeError::Body(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    };
    // The connection is driven alongside the request; it ends once the answer
    // is read and the sender dropped (or the server closed).
    let (answer, _closed) = tokio::join!(talk, connection);
    answer
}
