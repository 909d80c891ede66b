//! A fleet of SDK clients, one per load user, each with a task that takes its events
//! into the user's [`Inbox`] and [`ConnLog`], and the run-wide counters and latency
//! recorder they all report to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use chorus_client::{Client, ClientConfig, ClientError, Event, Events, Transport};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::LoadError;
use crate::latency::{Latency, Timeline};
use crate::ledger::{Acked, Arrival, Inbox};

/// Counters every task of a run updates; read by the progress line.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Sends started.
    pub(crate) sent: AtomicU64,
    /// Sends acked.
    pub(crate) acked: AtomicU64,
    /// Sends failed.
    pub(crate) failed: AtomicU64,
    /// First receipts of load messages, summed over users.
    pub(crate) delivered: AtomicU64,
    /// Repeated receipts.
    pub(crate) duplicates: AtomicU64,
    /// Clients connected right now (`Connected` minus `Disconnected` events).
    pub(crate) online: AtomicU64,
}

impl Stats {
    /// Sends neither acked nor failed yet.
    pub(crate) fn in_flight(&self) -> u64 {
        let done = self.acked.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// Latencies and failures of a run, behind one lock (a few µs per message at most).
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Intended send → ack.
    pub(crate) ack: Latency,
    /// Intended send → first receipt, over every receiver.
    pub(crate) delivery: Latency,
    /// `ack` by intended second.
    pub(crate) ack_timeline: Timeline,
    /// `delivery` by intended second.
    pub(crate) delivery_timeline: Timeline,
    /// Failed sends by class.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Every ack, for the delivery check.
    pub(crate) acks: Vec<Acked>,
}

/// What every task of one run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The run's tag, in user, group and message ids.
    pub(crate) tag: String,
    /// Time zero of the run: every `*_us` is measured from here.
    pub(crate) base: Instant,
    /// When the measured traffic started, µs since `base`: timelines count from here.
    traffic_start_us: AtomicU64,
    pub(crate) stats: Stats,
    pub(crate) recorder: Mutex<Recorder>,
}

impl Shared {
    /// A run with a fresh random tag, starting now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            tag: format!("{:08x}", rand::random::<u32>()),
            base: Instant::now(),
            traffic_start_us: AtomicU64::new(0),
            stats: Stats::default(),
            recorder: Mutex::new(Recorder::default()),
        })
    }

    /// µs since the run's start.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Marks `us` as the start of the measured traffic.
    pub(crate) fn set_traffic_start(&self, us: u64) {
        self.traffic_start_us.store(us, Ordering::Relaxed);
    }

    /// The second of the measured traffic that `intended_us` falls in.
    pub(crate) fn traffic_second(&self, intended_us: u64) -> u64 {
        intended_us.saturating_sub(self.traffic_start_us.load(Ordering::Relaxed)) / 1_000_000
    }

    /// The instant `us` after the run's start.
    pub(crate) fn at(&self, us: u64) -> Instant {
        self.base + Duration::from_micros(us)
    }

    /// Runs `f` on the recorder.
    pub(crate) fn record<T>(&self, f: impl FnOnce(&mut Recorder) -> T) -> T {
        f(&mut self.recorder.lock())
    }

    /// The id of load user `i`.
    pub(crate) fn user_id(&self, i: u32) -> String {
        format!("lt{}-{i}", self.tag)
    }
}

/// A user's connection history, as its events told it.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnLog {
    /// Each `Connected`, µs since the run's start.
    pub(crate) connected_us: Vec<u64>,
    /// Each `Disconnected`, µs since the run's start.
    pub(crate) disconnected_us: Vec<u64>,
    /// `Resynced` events (one per conversation that had missed messages).
    pub(crate) resynced: u64,
    /// Messages those resyncs fetched from history.
    pub(crate) resync_messages: u64,
}

/// Everything one user's event task collected.
#[derive(Debug)]
pub(crate) struct UserLog {
    pub(crate) inbox: Inbox,
    pub(crate) conn: ConnLog,
}

/// Connected clients and their event tasks, indexed by user.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) clients: Vec<Client>,
    tasks: Vec<JoinHandle<UserLog>>,
}

/// How the fleet's clients connect.
#[derive(Debug, Clone)]
pub(crate) struct FleetOptions {
    pub(crate) endpoint: String,
    /// Endpoints of other nodes: user `i` connects to
    /// `[endpoint, spread..][i mod n]`, with the others as its fallbacks.
    pub(crate) spread: Vec<String>,
    pub(crate) transport: Transport,
    pub(crate) users: u32,
    pub(crate) request_timeout: Duration,
    /// Connects in progress at once.
    pub(crate) concurrency: usize,
    /// Roots for `tls://`/`wss://` endpoints.
    pub(crate) tls: chorus_client::TlsRoots,
}

impl Fleet {
    /// Connects `options.users` clients (user `i` is [`Shared::user_id`]`(i)`).
    pub(crate) async fn connect(
        shared: &Arc<Shared>,
        options: &FleetOptions,
    ) -> Result<Self, LoadError> {
        let gate = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let mut connecting = JoinSet::new();
        for i in 0..options.users {
            let mut all = vec![options.endpoint.clone()];
            all.extend(options.spread.iter().cloned());
            let first = i as usize % all.len();
            all.rotate_left(first);
            let mut cfg = ClientConfig::new(all[0].clone(), options.transport, shared.user_id(i));
            cfg.endpoints = all;
            cfg.request_timeout = options.request_timeout;
            cfg.device = Some("loadtest".into());
            cfg.tls = options.tls.clone();
            let gate = gate.clone();
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await;
                (i, Client::connect(cfg).await)
            });
        }
        let mut slots: Vec<Option<(Client, Events)>> = Vec::new();
        slots.resize_with(options.users as usize, || None);
        let mut first_error = None;
        while let Some(joined) = connecting.join_next().await {
            match joined {
                Ok((i, Ok(connected))) => {
                    if let Some(slot) = slots.get_mut(i as usize) {
                        *slot = Some(connected);
                    }
                }
                Ok((i, Err(e))) => {
                    first_error.get_or_insert_with(|| format!("user {i} could not connect: {e}"));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("connect task failed: {e}"));
                }
            }
        }
        let mut clients = Vec::with_capacity(slots.len());
        let mut tasks = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some((client, events)) = slot else {
                continue;
            };
            clients.push(client);
            let me = tasks.len() as u32;
            tasks.push(tokio::spawn(take_events(shared.clone(), me, events)));
        }
        let fleet = Self { clients, tasks };
        if let Some(e) = first_error {
            fleet.close().await;
            return Err(LoadError::Setup(e));
        }
        Ok(fleet)
    }

    /// Closes every client and returns what each user's events said, by user.
    pub(crate) async fn close(self) -> Vec<UserLog> {
        let mut closing = JoinSet::new();
        for client in self.clients {
            closing.spawn(async move { client.close().await });
        }
        while closing.join_next().await.is_some() {}
        let mut logs = Vec::with_capacity(self.tasks.len());
        for (me, task) in self.tasks.into_iter().enumerate() {
            // A task that panicked leaves an empty inbox: its deliveries show as missing.
            logs.push(task.await.unwrap_or_else(|_| UserLog {
                inbox: Inbox::new(me as u32),
                conn: ConnLog::default(),
            }));
        }
        logs
    }
}

/// A user's event task: until the client closes, files every event.
async fn take_events(shared: Arc<Shared>, me: u32, mut events: Events) -> UserLog {
    let mut log = UserLog {
        inbox: Inbox::new(me),
        conn: ConnLog::default(),
    };
    let stats = &shared.stats;
    let mut online = false;
    while let Some(event) = events.next().await {
        let now = shared.now_us();
        match event {
            Event::Message(msg) => match log.inbox.on_message(&shared.tag, &msg, now) {
                Arrival::First(intended) => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(intended) = intended {
                        let latency = now.saturating_sub(intended);
                        shared.record(|r| {
                            r.delivery.record(latency);
                            r.delivery_timeline
                                .record(shared.traffic_second(intended), latency);
                        });
                    }
                }
                Arrival::Duplicate => {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Arrival::Foreign | Arrival::Own => {}
            },
            Event::Connected { .. } => {
                if !online {
                    stats.online.fetch_add(1, Ordering::Relaxed);
                    online = true;
                }
                log.conn.connected_us.push(now);
            }
            Event::Disconnected { .. } => {
                // A refused reconnect says Disconnected again without a Connected.
                if online {
                    stats.online.fetch_sub(1, Ordering::Relaxed);
                    online = false;
                }
                log.conn.disconnected_us.push(now);
            }
            Event::Resynced { count, .. } => {
                log.conn.resynced += 1;
                log.conn.resync_messages += count;
            }
            Event::Receipt { .. }
            | Event::LiveBatch { .. }
            | Event::Goaway { .. }
            | Event::Presence { .. }
            | Event::Typing { .. }
            | Event::Refused { .. } => {}
        }
    }
    if online {
        stats.online.fetch_sub(1, Ordering::Relaxed);
    }
    log
}

/// The report's name for why a send failed.
pub(crate) fn error_class(e: &ClientError) -> String {
    match e {
        ClientError::Timeout => "timeout".into(),
        ClientError::Rejected { code, .. } => format!("rejected_{code}"),
        ClientError::Server { code, .. } => format!("server_{code}"),
        ClientError::Closed => "closed".into(),
        ClientError::ConnectionLost => "connection_lost".into(),
        ClientError::Io(_) => "io".into(),
        ClientError::WebSocket(_) => "websocket".into(),
        ClientError::Decode(_) | ClientError::Protocol(_) => "protocol".into(),
        ClientError::Config(_) => "config".into(),
        _ => "other".into(),
    }
}
