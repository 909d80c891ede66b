//! Client gateways: TCP (length-prefixed binary) and WebSocket (JSON or binary).
//!
//! ```text
//! listener ──accept──► admission (total, per address: refused ones are dropped here)
//!             │
//!             └──► connection task            ┐ one deadline, hello_timeout from
//!                   0. TLS handshake (tls://, wss://) │ the accept, for all of 0–1
//!                   0. WebSocket upgrade (ws, wss)    │
//!                   1. handshake: first frame must be `hello` ┘
//!                   1A. draining: `goaway`, close; over the per-user cap:
//!                       `error` overloaded, close
//!                   2. Session::open (online), `welcome`
//!                       3A. reader loop: decode ─► Session::handle_frame
//!                       3B. writer task: SessionHandle queue ─► socket (batched)
//!                       4. close: session offline, queue drained (for a last `error`)
//! ```
//!
//! Both transports share this connection logic through [`FrameReader`] and
//! [`FrameWriter`]; `tcp` and `ws` only move bytes, generically over the stream,
//! so TLS sits under them. [`admission`] holds the connection caps.
//!
//! Failure isolation: every connection is its own task; decoding never panics; a
//! client that does not read is cut off when its bounded queue fills; a flooding
//! client is slowed by the session's in-flight limit, not by growing queues.

pub mod admission;
pub mod tcp;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chorus_actors::outbound::{OutboundQueue, Queued, SessionLimits};
use chorus_actors::{CloseReason, Identity, Session, SessionHandle, ShardRegion, SharedFrame};
use chorus_config::HeartbeatConfig;
use chorus_wire::codec::Frame;
use chorus_wire::{
    ClientFrame, DecodeError, Encoding, ErrorCode, HeartbeatInfo, LimitsInfo, PROTOCOL_VERSION,
    ServerFrame,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::drain::Drain;

use self::admission::{Admission, ConnPermit};

/// What a transport read from its socket.
#[derive(Debug)]
pub enum ReadEvent {
    /// One whole frame's bytes, and the encoding they are in.
    Frame(Bytes, Encoding),
    /// Traffic that is not a frame but shows the client is alive (WebSocket ping).
    Activity,
    /// The client closed the connection.
    Eof,
    /// The bytes could not be framed (over the limit, cut off, not WebSocket...).
    Bad(DecodeError),
    /// The socket failed.
    Failed(std::io::Error),
}

/// The reading half of a transport.
pub trait FrameReader: Send + 'static {
    /// The next event; must be cancel-safe (it is raced against timers).
    fn next(&mut self) -> impl Future<Output = ReadEvent> + Send;
    /// The encoding of an `error` sent before any frame has chosen one: the client
    /// was silent (no `hello` in time) or its first bytes were not a frame.
    fn encoding_before_hello(&self) -> Encoding {
        Encoding::Binary
    }
}

/// The writing half of a transport.
pub trait FrameWriter: Send + 'static {
    /// Writes frames in `encoding` and flushes once.
    fn write_batch(
        &mut self,
        frames: &[SharedFrame],
        encoding: Encoding,
    ) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Closes the connection politely.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// Gives back buffer memory a large write left behind; called after each
    /// write, so an idle connection holds only small buffers.
    fn shrink(&mut self) {}
}

/// What every connection needs from the node.
#[derive(Debug)]
pub struct GatewayContext {
    /// Entities.
    pub region: ShardRegion,
    /// Token checks.
    pub auth: Authenticator,
    /// Largest frame.
    pub max_frame: u32,
    /// Largest body (announced; enforced by the session).
    pub max_body: u32,
    /// Time allowed for `hello`.
    pub hello_timeout: Duration,
    /// Heartbeat bounds and idle timeouts.
    pub heartbeat: HeartbeatConfig,
    /// Frames queued per session before it is a slow consumer.
    pub outbound_queue: usize,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// The connection caps of both client listeners.
    pub admission: Arc<Admission>,
    /// While the node drains, a `hello` is answered with `goaway`.
    pub drain: Arc<Drain>,
    next_session: AtomicU64,
}

impl GatewayContext {
    /// A context; session ids start at a random point so they differ across restarts.
    #[allow(clippy::too_many_arguments)] // One constructor, called once by the node.
    pub fn new(
        region: ShardRegion,
        auth: Authenticator,
        max_frame: u32,
        max_body: u32,
        hello_timeout: Duration,
        heartbeat: HeartbeatConfig,
        outbound_queue: usize,
        shutdown: CancellationToken,
        admission: Arc<Admission>,
        drain: Arc<Drain>,
    ) -> Self {
        Self {
            region,
            auth,
            max_frame,
            max_body,
            hello_timeout,
            heartbeat,
            outbound_queue,
            shutdown,
            admission,
            drain,
            next_session: AtomicU64::new(rand::random::<u32>().into()),
        }
    }

    fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Admits a connection accepted from `peer` under the caps, starting its
    /// `hello` deadline; `None` (counted) when it is over a cap and must be
    /// dropped without a word.
    pub fn admit(&self, peer: std::net::SocketAddr, transport: &'static str) -> Option<Accepted> {
        let permit = self.admission.admit(peer.ip(), transport).ok()?;
        Some(Accepted {
            permit,
            hello_by: Instant::now() + self.hello_timeout,
        })
    }
}

/// An admitted connection: its place under the caps, held until it closes, and
/// the instant by which its `hello` must have arrived (TLS handshake and
/// WebSocket upgrade included).
#[derive(Debug)]
pub struct Accepted {
    /// Given back when the connection task ends.
    pub permit: ConnPermit,
    /// The accept plus `limits.hello_timeout_ms`.
    pub hello_by: Instant,
}

/// Frames written in one go by the writer.
const WRITE_BATCH: usize = 64;

/// Room for this many frames of a batch is kept between writes; after a larger
/// batch the writer's buffers are given back.
const IDLE_BATCH: usize = 8;

/// Time the writer's polite close (flush, then FIN or a WebSocket Close) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A write the socket has not taken within this long means a client that stopped
/// reading: it is closed as a slow consumer (its queue may still be within bounds).
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Runs one connection from handshake to close.
pub async fn serve_connection<R: FrameReader, W: FrameWriter>(
    mut reader: R,
    mut writer: W,
    ctx: Arc<GatewayContext>,
    transport: &'static str,
    accepted: Accepted,
) {
    metrics::counter!("chorus_connections_total", "transport" => transport).increment(1);
    metrics::gauge!("chorus_connections", "transport" => transport).increment(1.0);
    let _gauge = scopeguard(transport);
    let Accepted {
        permit: _permit,
        hello_by,
    } = accepted;

    // 1. Handshake; 1A. drain and the per-user cap.
    let admitted = match handshake(&mut reader, &ctx, hello_by).await {
        Ok((identity, encoding)) => match admit_session(&ctx, &identity.user, transport) {
            Ok(permit) => Ok((identity, encoding, permit)),
            Err(frame) => Err((Some(frame), encoding)),
        },
        Err(refused) => Err(refused),
    };
    let (identity, encoding, _user_permit) = match admitted {
        Ok(ok) => ok,
        Err((frame, encoding)) => {
            if let Some(frame) = frame {
                let _ = writer
                    .write_batch(&[chorus_actors::OutFrame::new(frame)], encoding)
                    .await;
            }
            writer.close().await;
            return;
        }
    };

    // 2. Online, then welcome.
    let settings = ctx.region.settings();
    let (handle, queue) = SessionHandle::with_limits(
        ctx.session_id(),
        identity.user.clone(),
        SessionLimits {
            encoding,
            queue_frames: ctx.outbound_queue,
            queue_bytes: settings.outbound_bytes,
            inflight: settings.max_inflight,
            lane: settings.live.viewer_queue,
            max_lag: settings.live.max_lag,
        },
    );
    let mut session = Session::open(ctx.region.clone(), identity, handle.clone()).await;
    handle.send(ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        user: session.identity().user.clone(),
        session: format!("{:x}", handle.id()),
        node: ctx.region.settings().node_id.clone(),
        heartbeat: HeartbeatInfo {
            min_s: ctx.heartbeat.min_s,
            max_s: ctx.heartbeat.max_s,
            idle_timeout_s: ctx.heartbeat.welcome_idle_timeout_s(),
        },
        limits: LimitsInfo {
            max_frame: ctx.max_frame,
            max_body: ctx.max_body,
        },
    });
    // Opened while the drain's broadcast was taking its list of sessions.
    if let Some(goaway) = ctx.drain.goaway_for_late_session() {
        handle.send(goaway);
    }

    // 3B. The writer.
    let stop_writer = CancellationToken::new();
    let writer_task = tokio::spawn(run_writer(
        writer,
        queue,
        handle.clone(),
        encoding,
        ctx.max_frame,
        stop_writer.clone(),
    ));

    // 3A. The reader.
    let mut idle = Duration::from_secs(u64::from(ctx.heartbeat.welcome_idle_timeout_s()));
    let mut deadline = Instant::now() + idle;
    loop {
        let event = tokio::select! {
            event = reader.next() => event,
            () = tokio::time::sleep_until(deadline) => {
                metrics::counter!("chorus_idle_disconnects_total").increment(1);
                tracing::debug!(session = handle.id(), "idle timeout");
                break;
            }
            () = handle.closed() => break,
            () = ctx.shutdown.cancelled() => break,
        };
        match event {
            ReadEvent::Frame(bytes, frame_encoding) => {
                deadline = Instant::now() + idle;
                metrics::counter!("chorus_frames_in_total").increment(1);
                match ClientFrame::decode(&bytes, frame_encoding, ctx.max_frame) {
                    Ok(frame) => {
                        if let ClientFrame::Ping {
                            interval_s: Some(interval),
                        } = frame
                        {
                            idle = Duration::from_secs(u64::from(
                                ctx.heartbeat.idle_timeout_s(interval),
                            ));
                            deadline = Instant::now() + idle;
                        }
                        // The request may wait for the session's budget (its earlier
                        // answers are not written yet): meanwhile nothing is read,
                        // but the session may still be closed or time out.
                        tokio::select! {
                            () = session.handle_frame(frame) => {}
                            () = tokio::time::sleep_until(deadline) => {
                                metrics::counter!("chorus_idle_disconnects_total").increment(1);
                                break;
                            }
                            () = handle.closed() => break,
                            () = ctx.shutdown.cancelled() => break,
                        }
                    }
                    Err(e) => {
                        bad_frame_metric(&e);
                        handle.send(error_for(&e));
                        break;
                    }
                }
            }
            ReadEvent::Activity => deadline = Instant::now() + idle,
            ReadEvent::Eof | ReadEvent::Failed(_) => break,
            ReadEvent::Bad(e) => {
                bad_frame_metric(&e);
                handle.send(error_for(&e));
                break;
            }
        }
    }

    // 4. Offline; let the writer drain what is queued (a last `error`), then close.
    session.close();
    stop_writer.cancel();
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), writer_task)
        .await
        .is_err()
    {
        // A client that does not read can hold the writer in a write forever (stop
        // is only looked at between writes). Dropping the task drops the socket;
        // merely timing out would leak the task and the connection.
        abort.abort();
    }
}

/// After a good `hello`: `goaway` while the node drains, `error` `overloaded`
/// when the user holds as many sessions as the cap allows; else the user's place.
fn admit_session(
    ctx: &GatewayContext,
    user: &str,
    transport: &'static str,
) -> Result<admission::UserPermit, ServerFrame> {
    if let Some(goaway) = ctx.drain.goaway_for_handshake() {
        metrics::counter!("chorus_connections_refused_total", "transport" => transport, "reason" => "draining")
            .increment(1);
        return Err(goaway);
    }
    ctx.admission
        .admit_user(user, transport)
        .map_err(|_| ServerFrame::Error {
            reference: None,
            code: ErrorCode::Overloaded,
            message: format!(
                "{user} has {} sessions open on this node, the most it allows; close one first",
                ctx.admission.max_per_user()
            ),
        })
}

async fn handshake<R: FrameReader>(
    reader: &mut R,
    ctx: &GatewayContext,
    deadline: Instant,
) -> Result<(Identity, Encoding), (Option<ServerFrame>, Encoding)> {
    let fail = |code, message: &str| ServerFrame::Error {
        reference: None,
        code,
        message: message.to_string(),
    };
    let fallback = reader.encoding_before_hello();
    let event = loop {
        let event = tokio::select! {
            event = tokio::time::timeout_at(deadline, reader.next()) => event,
            () = ctx.shutdown.cancelled() => return Err((None, fallback)),
        };
        // A WebSocket ping is not a frame: some client libraries ping as soon as they
        // connect. Keep waiting for `hello`, within the same limit.
        if !matches!(event, Ok(ReadEvent::Activity)) {
            break event;
        }
    };
    let (bytes, encoding) = match event {
        Err(_) => {
            let secs = ctx.hello_timeout.as_secs_f64();
            metrics::counter!("chorus_hello_timeouts_total").increment(1);
            return Err((
                Some(fail(
                    ErrorCode::Unauthenticated,
                    &format!("no hello within {secs} s of connecting"),
                )),
                fallback,
            ));
        }
        Ok(ReadEvent::Frame(bytes, encoding)) => (bytes, encoding),
        Ok(ReadEvent::Bad(e)) => {
            bad_frame_metric(&e);
            return Err((Some(error_for(&e)), fallback));
        }
        Ok(ReadEvent::Activity | ReadEvent::Eof | ReadEvent::Failed(_)) => {
            return Err((None, fallback));
        }
    };
    match ClientFrame::decode(&bytes, encoding, ctx.max_frame) {
        Ok(ClientFrame::Hello {
            protocol, token, ..
        }) => {
            if protocol != PROTOCOL_VERSION {
                let msg = format!(
                    "protocol {protocol} is not supported; this node speaks {PROTOCOL_VERSION}"
                );
                return Err((Some(fail(ErrorCode::UnsupportedVersion, &msg)), encoding));
            }
            match ctx.auth.authenticate(&token) {
                Ok(identity) => Ok((identity, encoding)),
                Err(e) => {
                    metrics::counter!("chorus_auth_failures_total").increment(1);
                    Err((Some(fail(e.code(), &e.to_string())), encoding))
                }
            }
        }
        Ok(_) => Err((
            Some(fail(
                ErrorCode::Unauthenticated,
                "the first frame must be hello",
            )),
            encoding,
        )),
        Err(e) => {
            bad_frame_metric(&e);
            Err((Some(error_for(&e)), encoding))
        }
    }
}

fn error_for(e: &DecodeError) -> ServerFrame {
    ServerFrame::Error {
        reference: None,
        code: e.code(),
        message: e.to_string(),
    }
}

fn bad_frame_metric(e: &DecodeError) {
    let reason = match e {
        DecodeError::TooLarge { .. } => "too_large",
        DecodeError::Truncated => "truncated",
        DecodeError::TrailingBytes(_) => "trailing",
        DecodeError::UnknownType(_) | DecodeError::UnknownVariant(_) => "unknown_type",
        DecodeError::Malformed(_) => "malformed",
    };
    metrics::counter!("chorus_bad_frames_total", "reason" => reason).increment(1);
}

async fn run_writer<W: FrameWriter>(
    mut writer: W,
    mut queue: OutboundQueue,
    handle: SessionHandle,
    encoding: Encoding,
    max_frame: u32,
    stop: CancellationToken,
) {
    // The frames of one write, and what they took from the queue: their bytes and
    // budget units are given back once they are written. They grow with the
    // batches and are given back after a large one (see `IDLE_BATCH`): an idle
    // session holds none of a full batch's room.
    let mut batch: Vec<SharedFrame> = Vec::new();
    let mut taken: Vec<Queued> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            frame = queue.recv() => match frame {
                Some(f) => Some(f),
                None => break,
            },
            // A live batch may be waiting on the viewer's lane.
            () = handle.live_ready() => None,
            () = handle.closed() => break,
            () = stop.cancelled() => {
                // Drain what is already queued (e.g. the last `error`), then close.
                while let Some(q) = queue.try_recv() {
                    batch.push(q.frame.clone());
                    taken.push(q);
                    if batch.len() == WRITE_BATCH {
                        break;
                    }
                }
                if !batch.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), writer.write_batch(&batch, encoding)).await;
                }
                queue.written(taken.drain(..));
                break;
            }
        };
        batch.clear();
        taken.extend(first);
        while taken.len() < WRITE_BATCH {
            match queue.try_recv() {
                Some(q) => taken.push(q),
                None => break,
            }
        }
        batch.extend(taken.iter().map(|q| q.frame.clone()));
        while batch.len() < WRITE_BATCH {
            match handle.pop_live() {
                Some(f) => batch.push(f),
                None => break,
            }
        }
        if batch.len() == WRITE_BATCH {
            // More may wait on the lane: come back for it without a new push.
            handle.nudge_live();
        }
        // Every frame was built to fit (`chorus_wire::fit`); one that does not would
        // make a conforming client drop the connection, so it is never written.
        batch.retain(|f| fits(f, encoding, max_frame));
        if batch.is_empty() {
            queue.written(taken.drain(..));
            continue;
        }
        let n = batch.len() as u64;
        let written = tokio::select! {
            r = tokio::time::timeout(WRITE_STALL, writer.write_batch(&batch, encoding)) => r,
            () = handle.closed() => break,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                handle.close(CloseReason::Shutdown);
                break;
            }
            Err(_) => {
                // The client stopped reading while its queue was still within
                // bounds: the socket has not taken a byte for WRITE_STALL.
                metrics::counter!("chorus_slow_consumer_disconnects_total", "bound" => "stall")
                    .increment(1);
                handle.close(CloseReason::SlowConsumer);
                break;
            }
        }
        metrics::counter!("chorus_frames_out_total").increment(n);
        batch.clear();
        queue.written(taken.drain(..));
        if taken.capacity() > IDLE_BATCH {
            (batch, taken) = (Vec::new(), Vec::new());
        }
        writer.shrink();
    }
    // A polite close flushes first, which never completes if the client stopped
    // reading (a slow consumer): bounded, after which dropping the socket closes it.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.close()).await;
}

/// Whether `frame` fits the announced frame limit in `encoding`; counted and
/// logged when it does not (a bug: list frames are cut to fit where they are made).
fn fits(frame: &SharedFrame, encoding: Encoding, max_frame: u32) -> bool {
    let len = frame.bytes(encoding).len();
    if len <= max_frame as usize {
        return true;
    }
    metrics::counter!("chorus_frames_oversized_total").increment(1);
    tracing::error!(
        kind = frame.frame().type_name(),
        len,
        max_frame,
        "a frame over the frame limit was not sent"
    );
    false
}

/// The TLS handshake of a client connection, which must be over by the
/// connection's `hello` deadline; `None` (counted) if it fails or is late.
pub(crate) async fn tls_accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    by: Instant,
    listener: &'static str,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let failed = |reason: &'static str| {
        metrics::counter!("chorus_tls_handshake_failures_total", "listener" => listener, "reason" => reason)
            .increment(1);
    };
    match tokio::time::timeout_at(by, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            failed("refused");
            tracing::debug!(listener, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            failed("timeout");
            metrics::counter!("chorus_hello_timeouts_total").increment(1);
            None
        }
    }
}

/// Decrements the connection gauge when the connection task ends, however it ends.
fn scopeguard(transport: &'static str) -> impl Drop {
    struct Guard(&'static str);
    impl Drop for Guard {
        fn drop(&mut self) {
            metrics::gauge!("chorus_connections", "transport" => self.0).decrement(1.0);
        }
    }
    Guard(transport)
}
