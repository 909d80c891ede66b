//! The connection task: one per [`Client`](crate::Client), owning the socket.
//!
//! It runs a small state machine, in this order:
//!
//! 1. **Session.** After `welcome`: emit `Connected`, start the heartbeat, ask for
//!    `conversations` (see [`CatchUp`]), re-send pending `send`s with their ids.
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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use chorus_wire::backoff::{self, Backoff};
use chorus_wire::codec::Frame;
use chorus_wire::limits::MAX_PRESENCE_SUBS;
use chorus_wire::{
    ClientFrame, ConversationItem, ConversationsPage, ErrorCode, ServerFrame, Trailing,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::connection::Welcome;
use crate::connection::{Connection, Endpoints, establish};
use crate::error::ClientError;
use crate::events::Event;
use crate::heartbeat::{Heartbeat, Tick};
use crate::inflight::{Command, InFlight, Pending, PongFor};
use crate::resync::{PAGE_LIMIT, SeqTracker, Step};

/// Capacity of the command queue from the client handles to the connection task.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// History fetches (gap repair, resync) in flight at once per connection.
const MAX_FETCHES: usize = 4;

/// State shared between the handles and the connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The `welcome` of the current (or last) connection.
    welcome: Mutex<Welcome>,
    /// A copy of the tracker's positions, readable without asking the task.
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
        self.welcome.lock().clone()
    }

    pub(crate) fn positions(&self) -> HashMap<String, u64> {
        self.positions.lock().clone()
    }

    fn set_welcome(&self, welcome: Welcome) {
        *self.welcome.lock() = welcome;
    }

    fn set_position(&self, conv: &str, seq: u64) {
        let mut positions = self.positions.lock();
        if seq > 0 {
            positions.insert(conv.to_string(), seq);
        }
    }

    fn set_positions(&self, all: HashMap<String, u64>) {
        *self.positions.lock() = all;
    }
}

/// What a new session does with the conversation list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchUp {
    /// Nothing (`resync` is off).
    None,
    /// First connect without saved positions: record each conversation's `last_seq`
    /// as its floor, so that a later resync does not replay what came before.
    Baseline,
    /// Re-connect, or first connect with saved positions: fetch what was missed.
    Resync,
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
    in_flight: InFlight,
    /// Conversations whose next history page is still to be requested.
    fetch_queue: VecDeque<String>,
    /// The tracker's delayed steps, each with when it is due.
    timers: Vec<(Instant, Later)>,
    fetches_in_flight: usize,
    /// When a `goaway` said the node will close; the client leaves first.
    goaway_at: Option<Instant>,
    /// Users whose presence is watched, to watch again on every new session.
    watching: BTreeSet<String>,
    /// `presence_sub` requests not answered yet, by `ref`.
    watch_pending: HashMap<String, Vec<String>>,
    /// The app sent a protocol 1.1 frame: every new session says so.
    speaks_1_1: bool,
}

/// A tracker step carried out later.
#[derive(Debug)]
enum Later {
    /// Queue a fetch of the conversation's next page again.
    Refetch(String),
    /// [`SeqTracker::on_stuck_check`] for the conversation.
    StuckCheck(String),
}

impl Driver {
    pub(crate) fn new(
        cfg: ClientConfig,
        heartbeat: Option<Heartbeat>,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
        close: watch::Receiver<bool>,
        events: mpsc::Sender<Event>,
        endpoints: Endpoints,
    ) -> Self {
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
            in_flight: InFlight::default(),
            fetch_queue: VecDeque::new(),
            timers: Vec::new(),
            fetches_in_flight: 0,
            goaway_at: None,
            watching: BTreeSet::new(),
            watch_pending: HashMap::new(),
            speaks_1_1: false,
        }
    }

    /// Runs until the client is closed or gives up, starting from the connection
    /// [`Client::connect`](crate::Client::connect) established.
    pub(crate) async fn run(mut self, first: (Connection, Welcome)) {
        let mut next = Some(first);
        let mut catch_up = match (self.cfg.resync, self.cfg.resume.is_empty()) {
            (false, _) => CatchUp::None,
            (true, true) => CatchUp::Baseline,
            (true, false) => CatchUp::Resync,
        };
        while let Some((mut conn, welcome)) = next.take() {
            match self.session(&mut conn, welcome, catch_up).await {
                SessionEnd::Closed => {
                    conn.close().await;
                    break;
                }
                SessionEnd::Lost { reason, immediate } => {
                    // After a `goaway` the node closes on purpose: go at once.
                    let immediate = immediate || self.goaway_at.is_some();
                    tracing::info!(%reason, "connection lost");
                    drop(conn);
                    self.on_lost(reason).await;
                    if self.cfg.reconnect {
                        next = self.reconnect(immediate).await;
                        catch_up = if self.cfg.resync {
                            CatchUp::Resync
                        } else {
                            CatchUp::None
                        };
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
        catch_up: CatchUp,
    ) -> SessionEnd {
        if let Err(e) = self.start_session(conn, welcome, catch_up).await {
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
        catch_up: CatchUp,
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
        let pending = match catch_up {
            CatchUp::None => None,
            CatchUp::Baseline => Some(Pending::Baseline),
            CatchUp::Resync => Some(Pending::ConversationList),
        };
        if let Some(pending) = pending {
            self.request_list(conn, pending, None).await?;
        }
        // Presence watches belong to a session: a new one watches them again,
        // and hears each user's presence at once.
        // A client that used a 1.1 frame says so again on the new session
        // (an empty `presence_sub` will do), so it is sent `typing`.
        let watched: Vec<String> = self.watching.iter().cloned().collect();
        let mut renewals: Vec<Vec<String>> = watched
            .chunks(MAX_PRESENCE_SUBS)
            .map(<[String]>::to_vec)
            .collect();
        if renewals.is_empty() && self.speaks_1_1 {
            renewals.push(Vec::new());
        }
        for users in renewals {
            let reference = self.shared.next_ref();
            self.in_flight.expect(reference.clone(), Pending::Presence);
            conn.send(&ClientFrame::PresenceSub { reference, users })
                .await?;
        }
        // Same ids: the node answers a repeated send with the original ack (docs/protocol.md §7.3).
        for frame in self.in_flight.resends() {
            conn.send(&frame).await?;
        }
        // Fetches queued while the connection was down (gap repair without resync).
        self.pump_fetches(conn).await
    }

    fn wake_at(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        let heartbeat = self.heartbeat.as_ref().map_or(far, Heartbeat::wake_at);
        let timer = self.timers.iter().map(|(at, _)| *at).min().unwrap_or(far);
        self.goaway_at
            .map_or(heartbeat, |g| g.min(heartbeat))
            .min(timer)
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
            Tick::Dead => return Some(lost("heartbeat: the node went silent")),
            Tick::Ping { interval_s } => {
                self.in_flight.ping(now, None);
                if let Err(e) = conn
                    .send(&ClientFrame::Ping {
                        interval_s: Some(interval_s),
                    })
                    .await
                {
                    return Some(lost(e.to_string()));
                }
                self.in_flight.sweep();
            }
            Tick::Wait => {}
        }
        if self.timers.iter().any(|(at, _)| *at <= now) {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            self.timers = later;
            let mut steps = Vec::new();
            for (_, step) in due {
                match step {
                    Later::Refetch(conv) => self.fetch_queue.push_back(conv),
                    Later::StuckCheck(conv) => self.tracker.on_stuck_check(&conv, &mut steps),
                }
            }
            self.apply(steps).await;
            if let Err(e) = self.pump_fetches(conn).await {
                return Some(lost(e.to_string()));
            }
        }
        None
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
                self.speaks_1_1 |= frame.is_1_1();
                self.note_watches(&reference, &frame);
                self.in_flight.expect(reference, Pending::User(reply));
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
                self.in_flight.submit(id, &frame, retry, reply);
                conn.send(&frame).await
            }
            Command::Fire { frame } => {
                self.speaks_1_1 |= frame.is_1_1();
                conn.send(&frame).await
            }
            Command::Ping { reply } => {
                self.in_flight.ping(Instant::now(), Some(reply));
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
                if let Some(PongFor::Heartbeat(rtt)) = self.in_flight.pong(Instant::now())
                    && let Some(hb) = self.heartbeat.as_mut()
                {
                    hb.on_pong(rtt);
                }
            }
            ServerFrame::Ack {
                ref id,
                ref conv,
                seq,
                ..
            } => {
                // Danmaku acks name a live room, which has no held position.
                if let Some(ClientFrame::Send { .. }) = self.in_flight.settle(id, &frame) {
                    let mut steps = Vec::new();
                    if self.tracker.on_ack(conv, seq, &mut steps) {
                        self.shared.set_position(conv, seq);
                    }
                    if !steps.is_empty() {
                        self.apply(steps).await;
                        self.pump_fetches(conn)
                            .await
                            .map_err(|e| lost(e.to_string()))?;
                    }
                }
            }
            ServerFrame::Reject { ref id, .. } => {
                self.in_flight.settle(id, &frame);
            }
            ServerFrame::Msg(msg) => {
                let conv = msg.conv.clone();
                let mut steps = Vec::new();
                self.tracker.on_msg(msg, &mut steps);
                self.shared
                    .set_position(&conv, self.tracker.position(&conv));
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
            // Refusals of frames without a `ref` (`typing` by a non-member):
            // the connection stays open.
            ServerFrame::Error {
                reference: None,
                code:
                    code @ (ErrorCode::Forbidden
                    | ErrorCode::Invalid
                    | ErrorCode::NotFound
                    | ErrorCode::Overloaded
                    | ErrorCode::RateLimited
                    | ErrorCode::Internal),
                message,
            } => self.emit(Event::Refused { code, message }).await,
            ServerFrame::Error {
                reference: None,
                code,
                message,
            } => {
                return Err(lost(format!("server error {code}: {message}")));
            }
            ServerFrame::Presence {
                user,
                status,
                last_seen_ms,
            } => {
                self.emit(Event::Presence {
                    user,
                    status,
                    last_seen_ms,
                })
                .await
            }
            ServerFrame::Typing { conv, user, state } => {
                self.emit(Event::Typing { conv, user, state }).await
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
                tracing::debug!(kind = other.type_name(), "unexpected frame ignored");
                return Ok(());
            }
        };
        if let Some(users) = self.watch_pending.remove(&reference)
            && matches!(answer, ServerFrame::Ok { .. })
        {
            self.watching.extend(users);
        }
        let Some(pending) = self.in_flight.take(&reference) else {
            tracing::debug!(%reference, kind = answer.type_name(), "answer for no pending request");
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
                tracing::debug!(%conv, %reference, "fetch answered");
                self.fetches_in_flight = self.fetches_in_flight.saturating_sub(1);
                let mut steps = Vec::new();
                match answer {
                    ServerFrame::HistoryPage { messages, more, .. } => {
                        self.tracker.on_page(&conv, messages, more, &mut steps);
                    }
                    ServerFrame::Error { code, message, .. } => {
                        // Only these pass by waiting; retrying anything else
                        // would freeze the conversation for the connection's life.
                        let lasting = !matches!(
                            code,
                            ErrorCode::Internal | ErrorCode::Overloaded | ErrorCode::RateLimited
                        );
                        tracing::warn!(%conv, code = code.as_str(), %message, lasting, "history fetch failed");
                        self.tracker.on_fetch_failed(&conv, lasting, &mut steps);
                    }
                    other => {
                        tracing::warn!(%conv, kind = other.type_name(), "history fetch answered with the wrong frame");
                        self.tracker.on_fetch_failed(&conv, false, &mut steps);
                    }
                }
                self.shared
                    .set_position(&conv, self.tracker.position(&conv));
                self.apply(steps).await;
            }
            (Pending::Baseline, ServerFrame::ConversationList { items, more, .. }) => {
                let next = next_list_page(&items, more);
                for item in items {
                    self.tracker.set_floor(&item.conv, item.last_seq);
                }
                self.shared.set_positions(self.tracker.positions());
                if next.is_some() {
                    self.request_list(conn, Pending::Baseline, next).await?;
                }
            }
            (Pending::ConversationList, ServerFrame::ConversationList { items, more, .. }) => {
                let next = next_list_page(&items, more);
                let mut steps = Vec::new();
                for item in items {
                    self.tracker
                        .start_resync(&item.conv, item.last_seq, &mut steps);
                }
                self.apply(steps).await;
                if next.is_some() {
                    self.request_list(conn, Pending::ConversationList, next)
                        .await?;
                }
            }
            (Pending::ConversationList | Pending::Baseline, other) => {
                tracing::warn!(kind = other.type_name(), "resync: conversation list failed");
            }
            (Pending::Presence, ServerFrame::Ok { .. }) => {}
            (Pending::Presence, other) => {
                tracing::warn!(kind = other.type_name(), "renewing presence watches failed");
            }
        }
        self.pump_fetches(conn).await
    }

    /// Keeps the set of watched users that a new session watches again: a
    /// `presence_sub` counts once the node answered it `ok`, an unsubscribe at
    /// once.
    fn note_watches(&mut self, reference: &str, frame: &ClientFrame) {
        match frame {
            ClientFrame::PresenceSub { users, .. } => {
                self.watch_pending
                    .insert(reference.to_string(), users.clone());
            }
            ClientFrame::PresenceUnsub { users, .. } => {
                for user in users {
                    self.watching.remove(user);
                }
                for pending in self.watch_pending.values_mut() {
                    pending.retain(|u| !users.contains(u));
                }
            }
            _ => {}
        }
    }

    /// Asks for the page of the conversation list after `after` for `pending`
    /// (the floor or a resync), which pages on until the list has no `more`.
    async fn request_list(
        &mut self,
        conn: &mut Connection,
        pending: Pending,
        after: Option<String>,
    ) -> Result<(), ClientError> {
        let reference = self.shared.next_ref();
        self.in_flight.expect(reference.clone(), pending);
        conn.send(&list_request(reference, after)).await
    }

    /// Carries out the tracker's steps, except sending fetches (see `pump_fetches`).
    async fn apply(&mut self, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Emit(msg) => self.emit(Event::Message(msg)).await,
                Step::Fetch { conv, .. } => self.fetch_queue.push_back(conv),
                Step::Retry { conv, delay } => {
                    let delay = backoff::equal_jitter(delay, backoff::random_unit());
                    self.timers
                        .push((Instant::now() + delay, Later::Refetch(conv)));
                }
                Step::CheckStuck { conv, delay } => {
                    self.timers
                        .push((Instant::now() + delay, Later::StuckCheck(conv)));
                }
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
            let after = Some(self.tracker.position(&conv));
            tracing::debug!(%conv, ?after, %reference, "fetch sent");
            self.in_flight
                .expect(reference.clone(), Pending::Fetch { conv: conv.clone() });
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
        self.in_flight.connection_lost(self.cfg.reconnect);
        self.watch_pending.clear();
        self.fetch_queue.clear();
        self.timers.clear();
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
                attempt = attempt.saturating_add(1);
                let delay = Backoff::new(self.cfg.backoff_initial, self.cfg.backoff_max)
                    .random_delay(attempt);
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
                Err(ClientError::Goaway { nodes }) => {
                    // A draining node: its peers next, without waiting.
                    self.endpoints.prefer(&nodes);
                    wait = nodes.is_empty();
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, attempt, "reconnect attempt failed")
                }
            }
        }
    }

    /// Fails everything still pending; dropping `self` then ends the event stream.
    fn shutdown(&mut self) {
        self.in_flight.close();
        self.commands.close();
    }
}

/// The conversation list's page size the SDK asks for; the node may answer with
/// fewer (its own maximum, or what fits one frame) and says `more`.
pub(crate) const LIST_PAGE: u32 = 500;

/// A `conversations` request for the page after `after`.
pub(crate) fn list_request(reference: String, after: Option<String>) -> ClientFrame {
    ClientFrame::Conversations {
        reference,
        page: Trailing::some(ConversationsPage {
            after,
            limit: Some(LIST_PAGE),
        }),
    }
}

/// Where the next page of a conversation list starts, if the node said there is
/// one. A node that does not page (no `more`) gave its whole answer; an empty
/// page cannot move on.
pub(crate) fn next_list_page(items: &[ConversationItem], more: Trailing<bool>) -> Option<String> {
    match more.get() {
        Some(true) => items.last().map(|i| i.conv.clone()),
        _ => None,
    }
}
