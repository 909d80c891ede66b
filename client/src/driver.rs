//! The connection task: one per [`Client`](crate::Client), owning the socket.
//!
//! It runs a small state machine, in this order:
//!
//! 1. **Session.** After `welcome`: emit `Connected`, start the heartbeat, ask for
//!    `conversations` when a resync is due, re-send pending `send`s with their ids.
//!    Then wait on the socket, the commands of the client handles, and the timers
//!    (heartbeat, `goaway` deadline); answers are matched to requests by `ref`, and
//!    `ack`/`reject` by id.
//! 2. **Lost.** The socket closed or failed, a frame did not decode, the heartbeat saw
//!    silence, or a `goaway` deadline passed: emit `Disconnected`; requests in flight
//!    fail with `ConnectionLost`, except `send`s, which wait for the next session.
//! 3. **Reconnect.** Endpoints round-robin (nodes of a `goaway` first), exponential
//!    backoff with jitter, until `welcome` (back to 1 with a resync), a `hello` the
//!    node refuses for good (`unauthenticated`, `unsupported_version`), or close.
//! 4. **Closed.** Everything pending fails with `Closed`; the event stream ends.
//!
//! Commands are not read while reconnecting: the bounded command queue makes callers
//! wait, and their request timeout bounds the wait.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chorus_wire::codec::Frame;
use chorus_wire::{ClientFrame, ErrorCode, ServerFrame};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::client::Welcome;
use crate::config::ClientConfig;
use crate::connection::{Connection, Endpoints, backoff_delay, establish, frame_kind};
use crate::error::ClientError;
use crate::events::Event;
use crate::heartbeat::{FixedInterval, Heartbeat, Tick};
use crate::resync::{PAGE_LIMIT, SeqTracker, Step};

/// Capacity of the command queue from the client handles to the connection task.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// History fetches (gap repair, resync) in flight at once per connection.
const MAX_FETCHES: usize = 4;
/// Unanswered pings remembered; older ones are forgotten.
const MAX_PINGS: usize = 64;

/// State shared between the handles and the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The `welcome` of the current (or last) connection.
    welcome: Mutex<Welcome>,
    /// A copy of the tracker's held positions, readable without asking the task.
    positions: Mutex<HashMap<String, u64>>,
    /// Source of request `ref`s: unique for the client's lifetime, so an answer meant
    /// for an earlier request can never match a later one.
    next_ref: AtomicU64,
}

impl Shared {
    pub(crate) fn new(welcome: Welcome, positions: HashMap<String, u64>) -> Self {
        Self {
            welcome: Mutex::new(welcome),
            positions: Mutex::new(positions),
            next_ref: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_ref(&self) -> String {
        format!("r{}", self.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn welcome(&self) -> Welcome {
        self.welcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn positions(&self) -> HashMap<String, u64> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_welcome(&self, welcome: Welcome) {
        *self.welcome.lock().unwrap_or_else(PoisonError::into_inner) = welcome;
    }

    fn set_position(&self, conv: &str, seq: u64) {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seq > 0 {
            positions.insert(conv.to_string(), seq);
        }
    }

    fn set_positions(&self, all: HashMap<String, u64>) {
        *self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = all;
    }
}

/// Where the answer to a request goes: the frame (`error` already turned into
/// [`ClientError::Server`]).
pub(crate) type Reply = oneshot::Sender<Result<ServerFrame, ClientError>>;

/// What a client handle asks of the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request answered by the frame carrying its `ref`.
    Request {
        reference: String,
        frame: ClientFrame,
        reply: Reply,
    },
    /// A `send` or `danmaku`, answered by `ack`/`reject` with its id. With `retry`, a
    /// lost connection re-sends it on the next one instead of failing it.
    Submit {
        id: String,
        frame: ClientFrame,
        retry: bool,
        reply: Reply,
    },
    /// A frame without answer (`read`).
    Fire { frame: ClientFrame },
    /// A `ping`, answered with the round trip.
    Ping {
        reply: oneshot::Sender<Result<Duration, ClientError>>,
    },
}

/// Who waits for the answer to a `ref`.
enum Pending {
    /// A caller of the client API.
    User(Reply),
    /// The tracker, for a page of this conversation.
    Fetch { conv: String },
    /// The resync, for the conversation list.
    ConversationList,
}

/// A `send` or `danmaku` awaiting `ack`/`reject`.
struct PendingSubmit {
    frame: ClientFrame,
    retry: bool,
    /// Submission order, so re-sends after a reconnect keep the order of the calls.
    order: u64,
    /// Callers waiting (a repeated id joins the first one).
    waiters: Vec<Reply>,
}

/// A `ping` awaiting its `pong`; pongs answer pings in order.
struct PendingPing {
    sent: Instant,
    /// `None` for the heartbeat's own pings.
    reply: Option<oneshot::Sender<Result<Duration, ClientError>>>,
}

/// Why a session ended.
enum SessionEnd {
    /// The client was closed or every handle dropped.
    Closed,
    /// The connection is gone; `immediate` skips the first backoff (after `goaway`).
    Lost { reason: String, immediate: bool },
}

fn lost(reason: impl Into<String>) -> SessionEnd {
    SessionEnd::Lost {
        reason: reason.into(),
        immediate: false,
    }
}

/// Resolves once the client is closed (explicitly, or by dropping every handle).
async fn closed(close: &mut watch::Receiver<bool>) {
    let _ = close.wait_for(|c| *c).await;
}

/// The connection task's state.
pub(crate) struct Driver {
    cfg: ClientConfig,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    close: watch::Receiver<bool>,
    events: mpsc::Sender<Event>,
    /// False once the [`Events`](crate::Events) receiver is gone: events are discarded.
    events_open: bool,
    tracker: SeqTracker,
    heartbeat: Option<Heartbeat>,
    endpoints: Endpoints,
    requests: HashMap<String, Pending>,
    submits: HashMap<String, PendingSubmit>,
    next_order: u64,
    pings: VecDeque<PendingPing>,
    /// Conversations whose next history page is still to be requested.
    fetch_queue: VecDeque<String>,
    fetches_in_flight: usize,
    /// When a `goaway` said the node will close; the client leaves first.
    goaway_at: Option<Instant>,
}

impl Driver {
    pub(crate) fn new(
        cfg: ClientConfig,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
        close: watch::Receiver<bool>,
        events: mpsc::Sender<Event>,
        endpoints: Endpoints,
    ) -> Self {
        let heartbeat = cfg
            .ping_interval
            .map(|i| Heartbeat::new(Box::new(FixedInterval(i)), Instant::now()));
        Self {
            tracker: SeqTracker::new(&cfg.resume),
            cfg,
            shared,
            commands,
            close,
            events,
            events_open: true,
            heartbeat,
            endpoints,
            requests: HashMap::new(),
            submits: HashMap::new(),
            next_order: 0,
            pings: VecDeque::new(),
            fetch_queue: VecDeque::new(),
            fetches_in_flight: 0,
            goaway_at: None,
        }
    }

    /// Runs until the client is closed or gives up, starting from the connection
    /// [`Client::connect`](crate::Client::connect) established.
    pub(crate) async fn run(mut self, first: (Connection, Welcome)) {
        let mut next = Some(first);
        let mut resync = self.cfg.resync && !self.cfg.resume.is_empty();
        while let Some((mut conn, welcome)) = next.take() {
            match self.session(&mut conn, welcome, resync).await {
                SessionEnd::Closed => {
                    conn.close().await;
                    break;
                }
                SessionEnd::Lost { reason, immediate } => {
                    tracing::info!(%reason, "connection lost");
                    drop(conn);
                    self.on_lost(reason).await;
                    if self.cfg.reconnect {
                        next = self.reconnect(immediate).await;
                        resync = self.cfg.resync;
                    }
                }
            }
        }
        self.shutdown();
    }

    async fn session(
        &mut self,
        conn: &mut Connection,
        welcome: Welcome,
        resync: bool,
    ) -> SessionEnd {
        if let Err(e) = self.start_session(conn, welcome, resync).await {
            return lost(e.to_string());
        }
        loop {
            let wake = self.wake_at();
            tokio::select! {
                () = closed(&mut self.close) => return SessionEnd::Closed,
                frame = conn.recv() => match frame {
                    Ok(Some(frame)) => {
                        if let Err(end) = self.on_frame(conn, frame).await {
                            return end;
                        }
                    }
                    Ok(None) => return lost("closed by the node"),
                    Err(e) => return lost(e.to_string()),
                },
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if let Err(e) = self.on_command(conn, command).await {
                            return lost(e.to_string());
                        }
                    }
                    None => return SessionEnd::Closed,
                },
                () = tokio::time::sleep_until(wake) => {
                    if let Some(end) = self.on_timer(conn).await {
                        return end;
                    }
                }
            }
        }
    }

    async fn start_session(
        &mut self,
        conn: &mut Connection,
        welcome: Welcome,
        resync: bool,
    ) -> Result<(), ClientError> {
        let now = Instant::now();
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.start(now, &welcome.heartbeat);
        }
        self.goaway_at = None;
        let connected = Event::Connected {
            session: welcome.session.clone(),
            node: welcome.node.clone(),
        };
        self.shared.set_welcome(welcome);
        self.emit(connected).await;
        if resync {
            let reference = self.shared.next_ref();
            self.requests
                .insert(reference.clone(), Pending::ConversationList);
            conn.send(&ClientFrame::Conversations { reference }).await?;
        }
        // Same ids: the node answers a repeated send with the original ack (§4.3).
        self.submits.retain(|_, p| {
            p.waiters.retain(|w| !w.is_closed());
            !p.waiters.is_empty()
        });
        let mut resend: Vec<(u64, ClientFrame)> = self
            .submits
            .values()
            .map(|p| (p.order, p.frame.clone()))
            .collect();
        resend.sort_by_key(|(order, _)| *order);
        for (_, frame) in resend {
            conn.send(&frame).await?;
        }
        // Fetches queued while the connection was down (gap repair without resync).
        self.pump_fetches(conn).await
    }

    fn wake_at(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        let heartbeat = self.heartbeat.as_ref().map_or(far, Heartbeat::wake_at);
        self.goaway_at.map_or(heartbeat, |g| g.min(heartbeat))
    }

    async fn on_timer(&mut self, conn: &mut Connection) -> Option<SessionEnd> {
        let now = Instant::now();
        if self.goaway_at.is_some_and(|at| now >= at) {
            return Some(SessionEnd::Lost {
                reason: "goaway".into(),
                immediate: true,
            });
        }
        let tick = self
            .heartbeat
            .as_mut()
            .map_or(Tick::Wait, |hb| hb.tick(now));
        match tick {
            Tick::Dead => return Some(lost("no frame from the node for two heartbeat intervals")),
            Tick::Ping { interval_s } => {
                self.push_ping(PendingPing {
                    sent: now,
                    reply: None,
                });
                if let Err(e) = conn
                    .send(&ClientFrame::Ping {
                        interval_s: Some(interval_s),
                    })
                    .await
                {
                    return Some(lost(e.to_string()));
                }
                self.sweep();
            }
            Tick::Wait => {}
        }
        None
    }

    /// Forgets requests whose callers gave up (timed out or dropped the call).
    fn sweep(&mut self) {
        self.requests
            .retain(|_, p| !matches!(p, Pending::User(reply) if reply.is_closed()));
    }

    fn push_ping(&mut self, ping: PendingPing) {
        if self.pings.len() >= MAX_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back(ping);
    }

    /// Refuses a frame the node would answer with a connection-level `too_large`
    /// (closing the connection, and for a retried send, again after every reconnect).
    fn check_size(&self, frame: &ClientFrame) -> Result<(), ClientError> {
        let max_frame = self.shared.welcome().limits.max_frame;
        let len = frame.encode(self.cfg.transport.encoding()).len();
        if u64::try_from(len).unwrap_or(u64::MAX) > u64::from(max_frame) {
            return Err(ClientError::Rejected {
                code: ErrorCode::TooLarge,
                message: format!("a frame of {len} bytes exceeds the node's limit of {max_frame}"),
                retry_after_ms: None,
            });
        }
        Ok(())
    }

    async fn on_command(
        &mut self,
        conn: &mut Connection,
        command: Command,
    ) -> Result<(), ClientError> {
        let frame = match &command {
            Command::Request { frame, .. }
            | Command::Submit { frame, .. }
            | Command::Fire { frame } => Some(frame),
            Command::Ping { .. } => None,
        };
        if let Some(Err(too_large)) = frame.map(|f| self.check_size(f)) {
            match command {
                Command::Request { reply, .. } | Command::Submit { reply, .. } => {
                    let _ = reply.send(Err(too_large));
                }
                Command::Fire { .. } | Command::Ping { .. } => {
                    tracing::warn!(error = %too_large, "frame over the node's limit not sent");
                }
            }
            return Ok(());
        }
        match command {
            Command::Request {
                reference,
                frame,
                reply,
            } => {
                if reply.is_closed() {
                    return Ok(());
                }
                self.requests.insert(reference, Pending::User(reply));
                conn.send(&frame).await
            }
            Command::Submit {
                id,
                frame,
                retry,
                reply,
            } => {
                if reply.is_closed() {
                    return Ok(());
                }
                let order = self.next_order;
                self.next_order += 1;
                let pending = self.submits.entry(id).or_insert_with(|| PendingSubmit {
                    frame: frame.clone(),
                    retry,
                    order,
                    waiters: Vec::new(),
                });
                pending.waiters.push(reply);
                conn.send(&frame).await
            }
            Command::Fire { frame } => conn.send(&frame).await,
            Command::Ping { reply } => {
                self.push_ping(PendingPing {
                    sent: Instant::now(),
                    reply: Some(reply),
                });
                let interval_s = self.heartbeat.as_ref().map(Heartbeat::interval_s);
                conn.send(&ClientFrame::Ping { interval_s }).await
            }
        }
    }

    async fn on_frame(
        &mut self,
        conn: &mut Connection,
        frame: ServerFrame,
    ) -> Result<(), SessionEnd> {
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.on_activity(Instant::now());
        }
        match frame {
            ServerFrame::Pong => {
                if let Some(ping) = self.pings.pop_front() {
                    let rtt = ping.sent.elapsed();
                    match ping.reply {
                        Some(reply) => {
                            let _ = reply.send(Ok(rtt));
                        }
                        None => {
                            if let Some(hb) = self.heartbeat.as_mut() {
                                hb.on_pong(rtt);
                            }
                        }
                    }
                }
            }
            ServerFrame::Ack {
                ref id,
                ref conv,
                seq,
                ..
            } => {
                if let Some(pending) = self.submits.remove(id) {
                    // Danmaku acks name a live room, which has no held position.
                    if matches!(pending.frame, ClientFrame::Send { .. })
                        && self.tracker.on_ack(conv, seq)
                    {
                        self.shared.set_position(conv, seq);
                    }
                    for waiter in pending.waiters {
                        let _ = waiter.send(Ok(frame.clone()));
                    }
                }
            }
            ServerFrame::Reject { ref id, .. } => {
                if let Some(pending) = self.submits.remove(id) {
                    for waiter in pending.waiters {
                        let _ = waiter.send(Ok(frame.clone()));
                    }
                }
            }
            ServerFrame::Msg(msg) => {
                let conv = msg.conv.clone();
                let mut steps = Vec::new();
                self.tracker.on_msg(msg, &mut steps);
                self.shared.set_position(&conv, self.tracker.held(&conv));
                self.apply(steps).await;
                self.pump_fetches(conn)
                    .await
                    .map_err(|e| lost(e.to_string()))?;
            }
            ServerFrame::Receipt { conv, user, seq } => {
                self.emit(Event::Receipt { conv, user, seq }).await
            }
            ServerFrame::LiveBatch {
                room,
                items,
                viewers,
                dropped,
            } => {
                self.emit(Event::LiveBatch {
                    room,
                    items,
                    viewers,
                    dropped,
                })
                .await;
            }
            ServerFrame::Goaway {
                reason,
                reconnect_after_ms,
                nodes,
            } => {
                tracing::info!(%reason, reconnect_after_ms, ?nodes, "goaway");
                self.endpoints.prefer(&nodes);
                self.goaway_at = Some(Instant::now() + Duration::from_millis(reconnect_after_ms));
                self.emit(Event::Goaway { reason, nodes }).await;
            }
            ServerFrame::Error {
                reference: None,
                code,
                message,
            } => {
                return Err(lost(format!("server error {code}: {message}")));
            }
            ServerFrame::Welcome { .. } => tracing::warn!("ignoring a second welcome"),
            answer => self
                .on_answer(conn, answer)
                .await
                .map_err(|e| lost(e.to_string()))?,
        }
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.on_activity(Instant::now());
        }
        Ok(())
    }

    /// A frame that answers a request by `ref`.
    async fn on_answer(
        &mut self,
        conn: &mut Connection,
        answer: ServerFrame,
    ) -> Result<(), ClientError> {
        let reference = match &answer {
            ServerFrame::HistoryPage { reference, .. }
            | ServerFrame::ConversationList { reference, .. }
            | ServerFrame::Group { reference, .. }
            | ServerFrame::Ok { reference, .. }
            | ServerFrame::LiveJoined { reference, .. }
            | ServerFrame::Error {
                reference: Some(reference),
                ..
            } => reference.clone(),
            other => {
                tracing::debug!(kind = frame_kind(other), "unexpected frame ignored");
                return Ok(());
            }
        };
        let Some(pending) = self.requests.remove(&reference) else {
            tracing::debug!(%reference, kind = frame_kind(&answer), "answer for no pending request");
            return Ok(());
        };
        match (pending, answer) {
            (Pending::User(reply), ServerFrame::Error { code, message, .. }) => {
                let _ = reply.send(Err(ClientError::Server { code, message }));
            }
            (Pending::User(reply), answer) => {
                let _ = reply.send(Ok(answer));
            }
            (Pending::Fetch { conv }, answer) => {
                self.fetches_in_flight = self.fetches_in_flight.saturating_sub(1);
                let mut steps = Vec::new();
                match answer {
                    ServerFrame::HistoryPage { messages, more, .. } => {
                        self.tracker.on_page(&conv, messages, more, &mut steps);
                    }
                    other => {
                        tracing::warn!(%conv, kind = frame_kind(&other), "history fetch failed");
                        self.tracker.on_fetch_failed(&conv, &mut steps);
                    }
                }
                self.shared.set_position(&conv, self.tracker.held(&conv));
                self.apply(steps).await;
            }
            (Pending::ConversationList, ServerFrame::ConversationList { items, .. }) => {
                let mut steps = Vec::new();
                for item in items {
                    self.tracker
                        .start_resync(&item.conv, item.last_seq, &mut steps);
                }
                self.apply(steps).await;
            }
            (Pending::ConversationList, other) => {
                tracing::warn!(
                    kind = frame_kind(&other),
                    "resync: conversation list failed"
                );
            }
        }
        self.pump_fetches(conn).await
    }

    /// Carries out the tracker's steps, except sending fetches (see `pump_fetches`).
    async fn apply(&mut self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Emit(msg) => self.emit(Event::Message(msg)).await,
                Step::Fetch { conv, .. } => self.fetch_queue.push_back(conv),
                Step::Resynced { conv, count } => self.emit(Event::Resynced { conv, count }).await,
            }
        }
    }

    /// Requests queued history pages, at most `MAX_FETCHES` at once. The page starts
    /// at the position held when it is requested.
    async fn pump_fetches(&mut self, conn: &mut Connection) -> Result<(), ClientError> {
        while self.fetches_in_flight < MAX_FETCHES {
            let Some(conv) = self.fetch_queue.pop_front() else {
                break;
            };
            let reference = self.shared.next_ref();
            let after = Some(self.tracker.held(&conv));
            self.requests
                .insert(reference.clone(), Pending::Fetch { conv: conv.clone() });
            self.fetches_in_flight += 1;
            let frame = ClientFrame::History {
                reference,
                conv,
                after,
                before: None,
                limit: Some(PAGE_LIMIT),
            };
            conn.send(&frame).await?;
        }
        Ok(())
    }

    /// Delivers an event; waits while the queue is full, unless the client is closed.
    async fn emit(&mut self, event: Event) {
        if !self.events_open {
            return;
        }
        tokio::select! {
            sent = self.events.send(event) => {
                if sent.is_err() {
                    self.events_open = false;
                }
            }
            () = closed(&mut self.close) => {}
        }
        // Time spent waiting for the application is not the node's silence.
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.on_activity(Instant::now());
        }
    }

    async fn on_lost(&mut self, reason: String) {
        self.emit(Event::Disconnected { reason }).await;
        for (_, pending) in self.requests.drain() {
            if let Pending::User(reply) = pending {
                let _ = reply.send(Err(ClientError::ConnectionLost));
            }
        }
        for ping in self.pings.drain(..) {
            if let Some(reply) = ping.reply {
                let _ = reply.send(Err(ClientError::ConnectionLost));
            }
        }
        let keep_sends = self.cfg.reconnect;
        self.submits.retain(|_, p| {
            if keep_sends && p.retry {
                return true;
            }
            for waiter in p.waiters.drain(..) {
                let _ = waiter.send(Err(ClientError::ConnectionLost));
            }
            false
        });
        self.fetch_queue.clear();
        self.fetches_in_flight = 0;
        let mut steps = Vec::new();
        self.tracker
            .on_disconnect(self.cfg.reconnect && self.cfg.resync, &mut steps);
        self.apply(steps).await;
        self.shared.set_positions(self.tracker.positions());
    }

    /// Connects again; `None` when closed or refused for good.
    async fn reconnect(&mut self, immediate: bool) -> Option<(Connection, Welcome)> {
        let mut attempt: u32 = 0;
        let mut wait = !immediate;
        loop {
            if wait {
                let delay = backoff_delay(
                    self.cfg.backoff_initial,
                    self.cfg.backoff_max,
                    attempt,
                    rand::random::<f64>(),
                );
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = closed(&mut self.close) => return None,
                }
            }
            wait = true;
            let endpoint = self.endpoints.next();
            let result = tokio::select! {
                r = establish(&endpoint, &self.cfg) => r,
                () = closed(&mut self.close) => return None,
            };
            match result {
                Ok(established) => return Some(established),
                Err(ClientError::Server {
                    code: code @ (ErrorCode::Unauthenticated | ErrorCode::UnsupportedVersion),
                    message,
                }) => {
                    let reason =
                        format!("the node refused the hello ({code}: {message}); giving up");
                    tracing::warn!(%endpoint, %reason);
                    self.emit(Event::Disconnected { reason }).await;
                    return None;
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, attempt, "reconnect attempt failed")
                }
            }
        }
    }

    /// Fails everything still pending; dropping `self` then ends the event stream.
    fn shutdown(&mut self) {
        for (_, pending) in self.requests.drain() {
            if let Pending::User(reply) = pending {
                let _ = reply.send(Err(ClientError::Closed));
            }
        }
        for (_, pending) in self.submits.drain() {
            for waiter in pending.waiters {
                let _ = waiter.send(Err(ClientError::Closed));
            }
        }
        for ping in self.pings.drain(..) {
            if let Some(reply) = ping.reply {
                let _ = reply.send(Err(ClientError::Closed));
            }
        }
        self.commands.close();
    }
}
