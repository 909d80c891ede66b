//! The writer thread: every mutation of the store, one group commit at a time.
//!
//! ```text
//!  append / set_read / create_group / ...      (any number of tokio tasks)
//!        │  Request + oneshot reply
//!        ▼
//!  ┌────────────── writer thread ──────────────┐
//!  │ 1. block for the first request            │
//!  │ 2. drain whatever else is already queued  │
//!  │ 3. stage each request on an overlay       │
//!  │ 4. one fjall batch, fsync'd on commit     │
//!  │ 5. reply to every request of the group    │
//!  └───────────────────────────────────────────┘
//! ```
//!
//! One thread owning every write is what makes the read-modify-write operations
//! (monotonic read positions, `last_seq = max`, create-if-absent groups, seq
//! blocks) correct without locks: nothing else writes between the read and the
//! write. Requests of one group see each other's staged writes through the
//! overlay, because the batch only reaches fjall at the end.
//!
//! The batch is committed with `PersistMode::SyncAll`, which makes fjall fsync its
//! journal *before* applying the batch to the memtables, so a write is neither
//! acknowledged nor visible to readers until it is on disk.
//!
//! Dedup is insert-if-absent for the same reason: staging an append looks the
//! message's idempotency key up (on the overlay, then the disk) and stores
//! nothing for a key already in the window, so no two appends of one message
//! both land, whatever order they reach the writer in.
//!
//! A failed commit or fsync is remembered in [`Health`] (fjall then refuses every
//! later write: it poisons the database, and only a restart clears that); the
//! store's `probe` reads it, and tries a one-key write to see whether a failure
//! has passed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use parking_lot::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fjall::{Database, PersistMode};
use tokio::sync::oneshot;

use super::layout::{self, Space, Spaces, check_id};
use super::{EmbeddedOptions, backend, load, record, same_error};
use crate::{
    AppendBatch, AppendOutcome, Appended, DEDUP_WINDOW_MS, DedupHit, GroupRecord, LoadRecord,
    RoomSettings, SeqBlock, StoreError, StoreResult,
};
use chorus_wire::ConvId;

/// Where a request's outcome goes.
pub(super) type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// One mutation, as sent to the writer thread.
pub(super) enum Request {
    /// Messages and links, durably.
    Append {
        /// What to write.
        batch: AppendBatch,
        /// Answered once the batch is fsync'd, with what became of each message.
        reply: Reply<AppendOutcome>,
    },
    /// Raise a read position.
    SetRead {
        /// The reader.
        user: String,
        /// The conversation read.
        conv: String,
        /// The position reached.
        seq: u64,
        /// Answered with the position now stored.
        reply: Reply<u64>,
    },
    /// Remove a conversation from a user's list.
    Unlink {
        /// The user.
        user: String,
        /// The conversation.
        conv: String,
        /// Answered once durable.
        reply: Reply<()>,
    },
    /// Create a group if its id is free.
    CreateGroup {
        /// The new group.
        group: GroupRecord,
        /// Answered with whether it was created.
        reply: Reply<bool>,
    },
    /// Replace a group and adjust its members' links.
    UpdateGroup {
        /// The group's new state.
        group: GroupRecord,
        /// Users to link.
        added: Vec<String>,
        /// Users to unlink.
        removed: Vec<String>,
        /// Answered once durable.
        reply: Reply<()>,
    },
    /// Hand out a block of seqs.
    AllocateSeqs {
        /// The conversation.
        conv: String,
        /// How many seqs.
        size: u64,
        /// Answered with the block once its high-water mark is durable.
        reply: Reply<SeqBlock>,
    },
    /// Replace a live room's settings (the default removes them).
    SetRoomSettings {
        /// The room id.
        room: String,
        /// Its new settings.
        settings: RoomSettings,
        /// Answered once durable.
        reply: Reply<()>,
    },
    /// Record when a user's last session closed (a later time stays).
    SetLastSeen {
        /// The user.
        user: String,
        /// When, ms since the epoch.
        at_ms: u64,
        /// Answered once durable.
        reply: Reply<()>,
    },
    /// Store load samples of one member (already checked against the bounds
    /// that need no reading).
    AppendLoad {
        /// The member.
        member: String,
        /// Its samples.
        samples: Vec<LoadRecord>,
        /// How long each is kept past its `at_ms`.
        keep_ms: u64,
        /// The time expiry is judged against.
        now_ms: u64,
        /// Answered once durable.
        reply: Reply<()>,
    },
    /// Delete load samples expired at `now_ms`, and members with none left
    /// (bounded by the sweep limit).
    SweepLoad {
        /// The time to judge expiry against.
        now_ms: u64,
        /// Answered with how many samples were removed.
        reply: Reply<usize>,
    },
    /// Delete dedup entries expired at `now_ms` (bounded by the sweep limit).
    SweepDedup {
        /// The time to judge expiry against.
        now_ms: u64,
        /// Answered with how many entries were removed.
        reply: Reply<usize>,
    },
    /// Make everything written so far durable.
    Flush {
        /// Answered after an fsync.
        reply: Reply<()>,
    },
    /// Whether writes work: answered from [`Health`] at once while the last
    /// write succeeded, else after a one-key write that tries again.
    Probe {
        /// Answered with the write's outcome.
        reply: Reply<()>,
    },
}

/// Whether the writer's last commit or fsync failed, and why; shared with the
/// store handle, which reports it through `probe`.
#[derive(Debug, Default)]
pub(super) struct Health(Mutex<Option<String>>);

impl Health {
    /// The failure of the last write, if it failed.
    pub(super) fn failure(&self) -> Option<String> {
        self.0.lock().clone()
    }

    fn record(&self, outcome: &StoreResult<()>) {
        let mut failure = self.0.lock();
        match outcome {
            Ok(()) => {
                if failure.take().is_some() {
                    tracing::info!("the embedded store writes again");
                }
            }
            Err(e) => *failure = Some(e.to_string()),
        }
    }
}

/// Counts behind [`super::CommitStats`], shared with the store handle.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// fsyncs issued by the writer.
    pub(super) fsyncs: AtomicU64,
    /// Groups committed (each one fjall batch).
    pub(super) groups: AtomicU64,
    /// Requests answered through a committed group.
    pub(super) requests: AtomicU64,
    /// The outcome of the last write.
    pub(super) health: Health,
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Database,
    pub(super) spaces: Arc<Spaces>,
    /// Requests, each with when it was queued.
    pub(super) rx: Receiver<(Instant, Request)>,
    pub(super) options: EmbeddedOptions,
    pub(super) counters: Arc<Counters>,
    /// What the writer itself stored as conversations' highest seqs.
    pub(super) tops: ConvTops,
}

/// The highest seq stored per conversation, as the writer thread last committed
/// it. Every append raises its conversation's top, and reading it back from the
/// store is a memtable search among the many versions of one key, a tenth of the
/// writer's time at 5,000 msgs/s. The writer is the only one writing it, so what
/// it committed is what the store holds.
#[derive(Debug, Default)]
pub(super) struct ConvTops(HashMap<Vec<u8>, u64>);

/// Conversations [`ConvTops`] remembers before it starts afresh.
const MAX_CONV_TOPS: usize = 100_000;

impl ConvTops {
    fn get(&self, conv: &[u8]) -> Option<u64> {
        self.0.get(conv).copied()
    }

    /// A group with these top writes (`None`: deleted) was committed.
    fn committed(&mut self, written: Vec<(Vec<u8>, Option<u64>)>) {
        if self.0.len() + written.len() > MAX_CONV_TOPS {
            self.0.clear();
        }
        for (conv, top) in written {
            match top {
                Some(top) => self.0.insert(conv, top),
                None => self.0.remove(&conv),
            };
        }
    }

    /// A group failed: what it staged may or may not be on disk.
    fn forget(&mut self) {
        self.0.clear();
    }
}

/// Delivers a staged request's outcome once its group's commit has settled.
type Completion = Box<dyn FnOnce(&StoreResult<()>) + Send>;

/// How soon to sweep again when a run hit its limit: there is a backlog, but
/// spreading it out keeps each group-commit pause short.
const SWEEP_BACKLOG_DELAY: Duration = Duration::from_secs(1);

impl Writer {
    /// Serves requests until every sender is gone, then makes the last writes
    /// durable. The returned error is what `close` reports.
    pub(super) fn run(mut self) -> StoreResult<()> {
        // The first sweep runs as soon as the thread starts: entries that expired
        // while the node was down are cleared at open.
        let mut next_sweep = Instant::now();
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut group = vec![first];
                    while group.len() < self.options.max_group_requests.max(1) {
                        match self.rx.try_recv() {
                            Ok(req) => group.push(req),
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Only once the queue is empty too: nothing is left unanswered.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_sweep {
                next_sweep = Instant::now() + self.periodic_sweep();
            }
        }
        self.db.persist(PersistMode::SyncAll).map_err(backend)?;
        self.count_fsync();
        Ok(())
    }

    /// Stages, commits and answers one group of requests.
    fn commit_group(&mut self, group: Vec<(Instant, Request)>) {
        let mut staging = Staging::new(&self.spaces, &self.tops);
        let mut done: Vec<Completion> = Vec::with_capacity(group.len());
        let mut flush = false;
        let limit = self.options.dedup_sweep_limit;
        for (queued, req) in group {
            metrics::histogram!("chorus_store_queue_seconds")
                .record(queued.elapsed().as_secs_f64());
            match req {
                Request::Append { batch, reply } => {
                    staging.apply(reply, &mut done, |s| stage_append(s, &batch));
                }
                Request::SetRead {
                    user,
                    conv,
                    seq,
                    reply,
                } => staging.apply(reply, &mut done, |s| stage_set_read(s, &user, &conv, seq)),
                Request::Unlink { user, conv, reply } => {
                    staging.apply(reply, &mut done, |s| stage_unlink(s, &user, &conv));
                }
                Request::CreateGroup { group, reply } => {
                    staging.apply(reply, &mut done, |s| stage_create_group(s, &group));
                }
                Request::UpdateGroup {
                    group,
                    added,
                    removed,
                    reply,
                } => staging.apply(reply, &mut done, |s| {
                    stage_update_group(s, &group, &added, &removed)
                }),
                Request::AllocateSeqs { conv, size, reply } => {
                    staging.apply(reply, &mut done, |s| stage_allocate(s, &conv, size));
                }
                Request::SetRoomSettings {
                    room,
                    settings,
                    reply,
                } => staging.apply(reply, &mut done, |s| {
                    stage_room_settings(s, &room, &settings)
                }),
                Request::SetLastSeen { user, at_ms, reply } => {
                    staging.apply(reply, &mut done, |s| stage_last_seen(s, &user, at_ms));
                }
                Request::AppendLoad {
                    member,
                    samples,
                    keep_ms,
                    now_ms,
                    reply,
                } => staging.apply(reply, &mut done, |s| {
                    load::stage_append(s, &member, &samples, keep_ms, now_ms)
                }),
                Request::SweepLoad { now_ms, reply } => {
                    staging.apply(reply, &mut done, |s| {
                        load::stage_sweep(s, now_ms, limit).map(|swept| swept.removed)
                    });
                }
                Request::SweepDedup { now_ms, reply } => {
                    staging.apply(reply, &mut done, |s| {
                        stage_sweep(s, now_ms, limit).map(|swept| swept.removed)
                    });
                }
                Request::Flush { reply } => {
                    flush = true;
                    staging.apply(reply, &mut done, |_| Ok(()));
                }
                Request::Probe { reply } => {
                    if self.counters.health.failure().is_some() {
                        // Something to write, so the commit tries the disk again.
                        flush = true;
                        staging.delete(Space::ConvMeta, PROBE_KEY.to_vec());
                        staging.commit_op();
                    }
                    staging.apply(reply, &mut done, |_| Ok(()));
                }
            }
        }

        let requests = done.len();
        let mode = if self.options.sync {
            PersistMode::SyncAll
        } else {
            PersistMode::Buffer
        };
        let tops = staging.tops_written();
        let mut outcome = self.commit(staging, mode);
        match outcome {
            Ok(_) => self.tops.committed(tops),
            Err(_) => self.tops.forget(),
        }
        let batch_synced = matches!(outcome, Ok(true)) && self.options.sync;
        if flush && !batch_synced && outcome.is_ok() {
            outcome = self
                .db
                .persist(PersistMode::SyncAll)
                .map(|()| true)
                .map_err(backend);
            if outcome.is_ok() {
                self.count_fsync();
            }
        }
        let outcome = outcome.map(|_| ());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, requests, "store group commit failed");
        }
        self.counters.health.record(&outcome);

        self.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.counters
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        metrics::histogram!("chorus_store_commit_group_requests").record(requests as f64);
        for complete in done {
            complete(&outcome);
        }
    }

    /// Writes the staged group as one fjall batch. `Ok(true)` when something was
    /// written (and, in sync mode, fsync'd).
    fn commit(&self, staging: Staging<'_>, mode: PersistMode) -> StoreResult<bool> {
        let mut batch = self.db.batch().durability(Some(mode));
        for (space, writes) in staging.group {
            let keyspace = self.spaces.get(space);
            for (key, value) in writes {
                match value {
                    Some(value) => batch.insert(keyspace, key, value),
                    None => batch.remove(keyspace, key),
                }
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        let started = Instant::now();
        batch.commit().map_err(backend)?;
        metrics::histogram!("chorus_store_commit_seconds").record(started.elapsed().as_secs_f64());
        // Before anyone is answered: a read after an ack sees what was acked.
        self.spaces.publish();
        if mode == PersistMode::SyncAll {
            self.count_fsync();
        }
        Ok(true)
    }

    fn count_fsync(&self) {
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("chorus_store_fsyncs_total").increment(1);
    }

    /// The timer-driven dedup sweep, as a group of its own. Returns the delay to
    /// the next run.
    fn periodic_sweep(&self) -> Duration {
        let limit = self.options.dedup_sweep_limit;
        let mut staging = Staging::new(&self.spaces, &self.tops);
        let now = now_ms();
        let swept = stage_sweep(&mut staging, now, limit).and_then(|dedup| {
            load::stage_sweep(&mut staging, now, limit).map(|samples| (dedup, samples))
        });
        // Losing a sweep's deletes in a crash only means sweeping them again, so
        // this group does not pay for an fsync of its own.
        match swept.and_then(|n| self.commit(staging, PersistMode::Buffer).map(|_| n)) {
            Ok((swept, samples)) => {
                if swept.removed > 0 {
                    tracing::debug!(removed = swept.removed, "swept expired dedup entries");
                    metrics::counter!("chorus_store_dedup_swept_total")
                        .increment(swept.removed as u64);
                }
                if samples.removed > 0 {
                    tracing::debug!(removed = samples.removed, "swept expired load samples");
                    metrics::counter!("chorus_store_load_swept_total")
                        .increment(samples.removed as u64);
                }
                let backlog = |scanned: usize| limit > 0 && scanned >= limit;
                if backlog(swept.scanned) || backlog(samples.scanned) {
                    SWEEP_BACKLOG_DELAY
                } else {
                    self.options.dedup_sweep_interval
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "dedup sweep failed");
                self.options.dedup_sweep_interval
            }
        }
    }
}

/// Wall-clock time in ms since the Unix epoch (0 if the clock is before it).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Staged writes per keyspace: `None` is a delete.
type Layer = HashMap<Space, HashMap<Vec<u8>, Option<Vec<u8>>>>;

/// The overlay a group is staged on. Reads see, in order: the current request's
/// writes, the group's earlier requests' writes, then the disk. A request that
/// fails has its own writes discarded and does not disturb the others.
pub(super) struct Staging<'a> {
    spaces: &'a Spaces,
    /// Conversation tops already known, read before the disk.
    tops: &'a ConvTops,
    /// Writes of requests already staged successfully.
    group: Layer,
    /// Writes of the request being staged.
    op: Layer,
}

impl<'a> Staging<'a> {
    fn new(spaces: &'a Spaces, tops: &'a ConvTops) -> Self {
        Self {
            spaces,
            tops,
            group: Layer::new(),
            op: Layer::new(),
        }
    }

    /// Stages one request; on success its reply waits for the commit, on failure
    /// it is answered at once.
    fn apply<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        done: &mut Vec<Completion>,
        stage: impl FnOnce(&mut Self) -> StoreResult<T>,
    ) {
        match stage(self) {
            Ok(value) => {
                for (space, writes) in self.op.drain() {
                    self.group.entry(space).or_default().extend(writes);
                }
                done.push(Box::new(move |outcome| {
                    // A caller that stopped waiting is not an error of the store.
                    let _ = reply.send(match outcome {
                        Ok(()) => Ok(value),
                        Err(e) => Err(same_error(e)),
                    });
                }));
            }
            Err(e) => {
                self.op.clear();
                let _ = reply.send(Err(e));
            }
        }
    }

    pub(super) fn get(&self, space: Space, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        for layer in [&self.op, &self.group] {
            if let Some(staged) = layer.get(&space).and_then(|w| w.get(key)) {
                return Ok(staged.clone());
            }
        }
        let stored = self.spaces.get(space).get(key).map_err(backend)?;
        Ok(stored.map(|v| v.to_vec()))
    }

    fn get_u64(&self, space: Space, key: &[u8], what: &'static str) -> StoreResult<u64> {
        if space == Space::ConvMeta
            && !self.staged(space, key)
            && let Some(top) = self.tops.get(key)
        {
            return Ok(top);
        }
        match self.get(space, key)? {
            Some(value) => record::decode_u64(&value, what),
            None => Ok(0),
        }
    }

    /// The disk's handles, for scans that staging does not cover.
    pub(super) fn spaces(&self) -> &Spaces {
        self.spaces
    }

    /// The keys of `space` this group has staged so far, with whether each is
    /// written (`true`) or deleted.
    pub(super) fn staged_keys(&self, space: Space) -> Vec<(Vec<u8>, bool)> {
        let mut keys: HashMap<Vec<u8>, bool> = HashMap::new();
        for layer in [&self.group, &self.op] {
            if let Some(writes) = layer.get(&space) {
                for (key, value) in writes {
                    keys.insert(key.clone(), value.is_some());
                }
            }
        }
        keys.into_iter().collect()
    }

    fn staged(&self, space: Space, key: &[u8]) -> bool {
        [&self.op, &self.group]
            .iter()
            .any(|layer| layer.get(&space).is_some_and(|w| w.contains_key(key)))
    }

    /// The conversation tops this group writes or deletes, for [`ConvTops`] once
    /// committed. A value that does not decode is left to the store to read back.
    fn tops_written(&self) -> Vec<(Vec<u8>, Option<u64>)> {
        let Some(writes) = self.group.get(&Space::ConvMeta) else {
            return Vec::new();
        };
        writes
            .iter()
            .map(|(conv, value)| {
                let top = value
                    .as_deref()
                    .and_then(|v| record::decode_u64(v, "conversation meta").ok());
                (conv.clone(), top)
            })
            .collect()
    }

    /// Moves the current request's writes into the group without a reply (for
    /// writes the writer makes of its own accord).
    fn commit_op(&mut self) {
        for (space, writes) in self.op.drain() {
            self.group.entry(space).or_default().extend(writes);
        }
    }

    pub(super) fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.op.entry(space).or_default().insert(key, Some(value));
    }

    pub(super) fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.op.entry(space).or_default().insert(key, None);
    }
}

/// A key no conversation id can be (ids never hold NUL): the probe's write.
const PROBE_KEY: &[u8] = b"\0probe";

/// The idempotency entry of `key` if one is in the window of a message
/// accepted at `ts_ms`. An entry that does not decode is replaced rather than
/// trusted, so one damaged record cannot make a message unstorable.
fn dedup_in_window(s: &Staging<'_>, key: &[u8], ts_ms: u64) -> StoreResult<Option<DedupHit>> {
    let Some(value) = s.get(Space::Dedup, key)? else {
        return Ok(None);
    };
    match record::decode_dedup(&value) {
        Ok(hit) if ts_ms.saturating_sub(hit.ts_ms) <= DEDUP_WINDOW_MS => Ok(Some(hit)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "replacing an undecodable dedup entry");
            Ok(None)
        }
    }
}

fn stage_append(s: &mut Staging<'_>, batch: &AppendBatch) -> StoreResult<AppendOutcome> {
    let mut tops: HashMap<&str, u64> = HashMap::new();
    let mut outcome = AppendOutcome::default();
    for m in &batch.messages {
        check_id("conversation id", &m.conv)?;
        check_id("sender", &m.from)?;
        check_id("client message id", &m.id)?;
        let dedup_key = layout::dedup(&m.conv, &m.from, &m.id);
        // Insert-if-absent: the overlay holds this group's earlier appends, so a
        // retry in the same group is caught as well as one on disk.
        if let Some(first) = dedup_in_window(s, &dedup_key, m.ts_ms)? {
            outcome.messages.push(Appended::Duplicate(first));
            continue;
        }
        outcome.messages.push(Appended::Stored);
        s.put(
            Space::Messages,
            layout::message(&m.conv, m.seq),
            record::encode_message(m)?,
        );
        s.put(
            Space::DedupByTime,
            layout::dedup_by_time(m.ts_ms, &dedup_key),
            Vec::new(),
        );
        let hit = DedupHit {
            seq: m.seq,
            ts_ms: m.ts_ms,
        };
        s.put(Space::Dedup, dedup_key, record::encode_dedup(hit));
        let top = tops.entry(m.conv.as_str()).or_default();
        *top = (*top).max(m.seq);
    }
    for (conv, top) in tops {
        // `max`, not overwrite: batches of one conversation may commit out of seq
        // order when several owners' blocks interleave.
        if top > s.get_u64(Space::ConvMeta, conv.as_bytes(), "conversation meta")? {
            s.put(
                Space::ConvMeta,
                conv.as_bytes().to_vec(),
                record::encode_u64(top),
            );
        }
    }
    for (user, conv) in &batch.links {
        stage_link(s, user, conv)?;
    }
    Ok(outcome)
}

fn stage_link(s: &mut Staging<'_>, user: &str, conv: &str) -> StoreResult<()> {
    check_id("user id", user)?;
    check_id("conversation id", conv)?;
    s.put(Space::UserConvs, layout::pair(user, conv), Vec::new());
    Ok(())
}

fn stage_unlink(s: &mut Staging<'_>, user: &str, conv: &str) -> StoreResult<()> {
    check_id("user id", user)?;
    check_id("conversation id", conv)?;
    s.delete(Space::UserConvs, layout::pair(user, conv));
    Ok(())
}

fn stage_set_read(s: &mut Staging<'_>, user: &str, conv: &str, seq: u64) -> StoreResult<u64> {
    check_id("user id", user)?;
    check_id("conversation id", conv)?;
    let key = layout::pair(user, conv);
    let current = s.get_u64(Space::ReadPos, &key, "read position")?;
    if seq <= current {
        return Ok(current);
    }
    s.put(Space::ReadPos, key, record::encode_u64(seq));
    Ok(seq)
}

fn stage_create_group(s: &mut Staging<'_>, group: &GroupRecord) -> StoreResult<bool> {
    check_id("group id", &group.id)?;
    if s.get(Space::Groups, group.id.as_bytes())?.is_some() {
        return Ok(false);
    }
    s.put(
        Space::Groups,
        group.id.as_bytes().to_vec(),
        record::encode_group(group)?,
    );
    let conv = ConvId::Group(group.id.clone()).to_string();
    for member in &group.members {
        stage_link(s, member, &conv)?;
    }
    Ok(true)
}

fn stage_update_group(
    s: &mut Staging<'_>,
    group: &GroupRecord,
    added: &[String],
    removed: &[String],
) -> StoreResult<()> {
    check_id("group id", &group.id)?;
    s.put(
        Space::Groups,
        group.id.as_bytes().to_vec(),
        record::encode_group(group)?,
    );
    let conv = ConvId::Group(group.id.clone()).to_string();
    for user in removed {
        stage_unlink(s, user, &conv)?;
    }
    for user in added {
        stage_link(s, user, &conv)?;
    }
    Ok(())
}

fn stage_allocate(s: &mut Staging<'_>, conv: &str, size: u64) -> StoreResult<SeqBlock> {
    check_id("conversation id", conv)?;
    let next = s.get_u64(Space::SeqAlloc, conv.as_bytes(), "seq allocator")?;
    let last = s.get_u64(Space::ConvMeta, conv.as_bytes(), "conversation meta")?;
    // Starting past `last_seq` as well keeps blocks clear of seqs that were
    // written without an allocation (imported data, an older layout).
    let start = next.max(last.saturating_add(1)).max(1);
    let end = start
        .checked_add(size)
        .ok_or_else(|| StoreError::Backend(format!("seq space of {conv} exhausted")))?;
    s.put(
        Space::SeqAlloc,
        conv.as_bytes().to_vec(),
        record::encode_u64(end),
    );
    Ok(SeqBlock { start, end })
}

fn stage_last_seen(s: &mut Staging<'_>, user: &str, at_ms: u64) -> StoreResult<()> {
    check_id("user id", user)?;
    let key = user.as_bytes();
    if s.get_u64(Space::LastSeen, key, "last seen")? < at_ms {
        s.put(Space::LastSeen, key.to_vec(), record::encode_u64(at_ms));
    }
    Ok(())
}

fn stage_room_settings(
    s: &mut Staging<'_>,
    room: &str,
    settings: &RoomSettings,
) -> StoreResult<()> {
    check_id("room id", room)?;
    let key = room.as_bytes().to_vec();
    if settings.is_default() {
        s.delete(Space::RoomSettings, key);
    } else {
        s.put(
            Space::RoomSettings,
            key,
            record::encode_room_settings(settings),
        );
    }
    Ok(())
}

/// What one sweep run did.
pub(super) struct Swept {
    /// Entries looked at (the run's bounded work).
    pub(super) scanned: usize,
    /// Entries deleted.
    pub(super) removed: usize,
}

/// Deletes dedup entries accepted before `now_ms - DEDUP_WINDOW_MS`, oldest first,
/// through the time index, looking at no more than `limit` index entries.
fn stage_sweep(s: &mut Staging<'_>, now_ms: u64, limit: usize) -> StoreResult<Swept> {
    let cutoff = now_ms.saturating_sub(DEDUP_WINDOW_MS);
    let end = cutoff.to_be_bytes().to_vec();
    let index = s.spaces.get(Space::DedupByTime).clone();
    let mut swept = Swept {
        scanned: 0,
        removed: 0,
    };
    for guard in index.range(..end).take(limit) {
        let key = guard.key().map_err(backend)?;
        swept.scanned += 1;
        if let Ok((_, dedup_key)) = layout::split_dedup_by_time(&key) {
            // The primary entry may have been rewritten since (a retry that slipped
            // past dedup); only an entry that is itself expired goes. A value that
            // does not decode is garbage either way and goes too, so one bad record
            // cannot wedge the sweep.
            let expired = match s.get(Space::Dedup, dedup_key)? {
                Some(value) => record::decode_dedup(&value).map_or(true, |hit| hit.ts_ms < cutoff),
                None => false,
            };
            if expired {
                s.delete(Space::Dedup, dedup_key.to_vec());
                swept.removed += 1;
            }
        }
        s.delete(Space::DedupByTime, key.to_vec());
    }
    Ok(swept)
}
