//! HTTP/1.1 to the node's admin listener: one request per connection through
//! hyper ([`chorus_admin_api::client`]), enough for `/metrics` and `/admin/kick`.
//! Each request is bounded in time ([`TIMEOUT`]) and its answer in size
//! ([`MAX_RESPONSE`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use chorus_admin_api::Method;
use chorus_admin_api::client::{self, ExchangeError};
use tokio::net::TcpStream;

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a `/metrics` page is a few tens of KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Sends `method path` (with an optional bearer token) and reads the whole answer.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> io::Result<Response> {
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        other => return Err(invalid(format!("the admin API has no {other} requests"))),
    };
    let host = addr.to_string();
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        let request = client::Request {
            method,
            path,
            host: &host,
            bearer,
            body: None,
        };
        client::exchange(stream, request, MAX_RESPONSE)
            .await
            .map_err(|e| match e {
                ExchangeError::Http(e) if !e.is_parse() => io::Error::other(e),
                other => invalid(other.to_string()),
            })
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "admin request timed out"))??;
    Ok(Response {
        status: answer.status,
        body: String::from_utf8_lossy(&answer.body).into_owned(),
    })
}

/// The node's resident memory (`process_resident_memory_bytes` of `/metrics`).
pub(crate) async fn resident_memory(admin: SocketAddr) -> io::Result<u64> {
    metric(&metrics(admin).await?, "process_resident_memory_bytes")
        .map(|v| v as u64)
        .ok_or_else(|| invalid("no process_resident_memory_bytes in /metrics".into()))
}

/// The node's `/metrics` page (Prometheus text).
pub(crate) async fn metrics(admin: SocketAddr) -> io::Result<String> {
    let response = request(admin, "GET", "/metrics", None).await?;
    if response.status != 200 {
        return Err(invalid(format!("/metrics answered {}", response.status)));
    }
    Ok(response.body)
}

/// The value of an unlabelled (or the sum of a labelled) metric in Prometheus text.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

    use super::*;

    /// A one-shot server on loopback that answers `raw` to whatever it reads.
    async fn answering(raw: &'static [u8]) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = vec![0; 4096];
            let _ = stream.read(&mut head).await;
            stream.write_all(raw).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn responses_with_length_or_chunks() {
        let plain = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert_eq!(
            request(plain, "GET", "/metrics", None).await.ok(),
            Some(Response {
                status: 200,
                body: "hello".into()
            })
        );
        let chunked = answering(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .await;
        let r = request(chunked, "POST", "/admin/kick/a", Some("t"))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "abcde"));
        let garbage = answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        assert!(request(garbage, "GET", "/metrics", None).await.is_err());
        let bad_chunk =
            answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").await;
        assert!(request(bad_chunk, "GET", "/metrics", None).await.is_err());
    }

    #[test]
    fn metrics_are_read_by_name() {
        let text = "# HELP process_resident_memory_bytes rss\n\
                    process_resident_memory_bytes 1.5e6\n\
                    process_resident_memory_bytes_max 9\n\
                    chorus_x{a=\"1\"} 2\nchorus_x{a=\"2\"} 3\n";
        assert_eq!(metric(text, "process_resident_memory_bytes"), Some(1.5e6));
        assert_eq!(metric(text, "chorus_x"), Some(5.0));
        assert_eq!(metric(text, "absent"), None);
    }
}
