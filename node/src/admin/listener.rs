//! The admin listener's accept loop: hyper's HTTP/1 connection under a cap, with
//! a header-read timeout, an idle timeout and, with `[tls]`, HTTPS.
//!
//! `axum::serve` has neither timeouts nor a cap, so a client that opens
//! connections and sends half a header would hold them forever. Here:
//!
//! 1. Accept. Over `admin.max_connections` open connections, the new one is
//!    closed at once (`chorus_admin_connections_refused_total`).
//! 2. With TLS, the handshake, within `admin.header_timeout_ms` of the accept.
//! 3. hyper reads the request header within `admin.header_timeout_ms` (hyper's
//!    own timer, which also runs while a kept-alive connection waits for its
//!    next request, so it is the keep-alive idle time as well).
//! 4. Throughout, a connection on which no byte moves for
//!    `admin.idle_timeout_ms` (a body or an answer stalled midway) is dropped.
//! 5. On shutdown: no new connections; open ones finish the request in flight
//!    (hyper's graceful shutdown) and close.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::NodeTls;

/// How the admin listener serves its connections.
#[derive(Debug, Clone)]
pub struct AdminListen {
    /// HTTPS with the node's certificate; `None`: plain HTTP.
    pub tls: Option<NodeTls>,
    /// For the TLS handshake, and for each request header (`admin.header_timeout_ms`).
    pub header_timeout: Duration,
    /// No byte either way for this long closes the connection (`admin.idle_timeout_ms`).
    pub idle_timeout: Duration,
    /// Connections open at once (`admin.max_connections`).
    pub max_connections: usize,
}

impl Default for AdminListen {
    /// The defaults of `[admin]`, without TLS.
    fn default() -> Self {
        let config = chorus_config::AdminConfig::default();
        Self {
            tls: None,
            header_timeout: config.header_timeout(),
            idle_timeout: config.idle_timeout(),
            max_connections: config.max_connections as usize,
        }
    }
}

impl AdminListen {
    /// From `[admin]` and the node's TLS (when `tls.admin` is on).
    pub fn from_config(config: &chorus_config::AdminConfig, tls: Option<NodeTls>) -> Self {
        Self {
            tls,
            header_timeout: config.header_timeout(),
            idle_timeout: config.idle_timeout(),
            max_connections: config.max_connections as usize,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then waits for the open
/// connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    listen: AdminListen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(listen.max_connections));
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    let listen = Arc::new(listen);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("chorus_admin_connections_refused_total").increment(1);
            continue;
        };
        let router = router.clone();
        let listen = listen.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            connection(stream, router, &listen, stop).await;
            drop(slot);
        });
    }
    stop.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    router: Router,
    listen: &AdminListen,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::default();
    match &listen.tls {
        None => {
            http(
                Watched::new(stream, activity.clone()),
                router,
                listen,
                stop,
                activity,
            )
            .await
        }
        Some(tls) => {
            let handshake = tls.client_acceptor().accept(stream);
            match tokio::time::timeout(listen.header_timeout, handshake).await {
                Ok(Ok(stream)) => {
                    http(
                        Watched::new(stream, activity.clone()),
                        router,
                        listen,
                        stop,
                        activity,
                    )
                    .await;
                }
                Ok(Err(e)) => {
                    metrics::counter!("chorus_tls_handshake_failures_total", "listener" => "admin", "reason" => "refused")
                        .increment(1);
                    tracing::debug!(error = %e, "admin TLS handshake failed");
                }
                Err(_) => {
                    metrics::counter!("chorus_tls_handshake_failures_total", "listener" => "admin", "reason" => "timeout")
                        .increment(1);
                }
            }
        }
    }
}

async fn http<IO>(
    io: IO,
    router: Router,
    listen: &AdminListen,
    stop: CancellationToken,
    activity: Activity,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    if e.is_timeout() {
                        metrics::counter!("chorus_admin_timeouts_total", "kind" => "header").increment(1);
                    }
                    tracing::debug!(error = %e, "admin connection ended");
                }
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(listen.idle_timeout) => {
                metrics::counter!("chorus_admin_timeouts_total", "kind" => "idle").increment(1);
                return;
            }
        }
    }
}

/// When bytes last moved on a connection, in ms since its `since`.
#[derive(Clone)]
struct Activity {
    since: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = last + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A stream that records in [`Activity`] every read or write that moved bytes.
struct Watched<S> {
    inner: S,
    activity: Activity,
}

impl<S> Watched<S> {
    fn new(inner: S, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
