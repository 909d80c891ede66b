//! The single-node backend: fjall on local disk, with group commit.
//!
//! - [`EmbeddedStore`]: the [`MessageStore`] implementation.
//! - `layout`: one keyspace per record kind, big-endian composite keys.
//! - `record`: the small length-prefixed value encoding; decoding is fallible.
//! - `writer`: the one thread that performs every write, a group at a time, with
//!   one fsync per group.
//! - `read`: history pages and conversation lists.
//! - `load`: the load history (staged by the writer, read from snapshots) and
//!   its sweep.
//!
//! Writes go through the writer thread; reads go straight to fjall from the
//! calling task (point lookups) or the blocking pool (scans). Because the writer
//! commits each group with an fsync *before* fjall makes it visible, a reader never
//! sees a write that could still be lost.
//!
//! A write that fails (a full disk, an I/O error) poisons fjall: every later
//! write fails too, until the node restarts. [`MessageStore::probe`] reports it.
//!
//! Metrics: `chorus_store_fsyncs_total` (counter), `chorus_store_commit_group_requests`
//! (histogram of requests per group commit: how many writers each fsync served),
//! `chorus_store_dedup_swept_total` (counter of expired dedup entries removed by the
//! periodic sweep), `chorus_store_load_swept_total` (expired load samples removed by
//! the same sweep).

mod layout;
mod load;
mod read;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fjall::Database;
use tokio::sync::oneshot;

use self::layout::{Space, Spaces, check_id};
use self::writer::{Counters, Reply, Request, Writer};
use crate::{
    AppendBatch, AppendOutcome, DEDUP_WINDOW_MS, DedupHit, DedupKey, GroupRecord, HistoryQuery,
    HistorySlice, ListQuery, ListSlice, LoadRecord, MessageStore, RoomSettings, SeqBlock,
    StoreError, StoreResult,
};

/// How an [`EmbeddedStore`] runs.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// fsync every group commit before acknowledging it (default `true`). With
    /// `false`, writes reach the OS before the ack and survive a crash of the
    /// process but not of the machine: only for benchmarks and throwaway nodes,
    /// since it breaks the durable-ack contract.
    pub sync: bool,
    /// The most requests one group commit takes from the queue (default 1024), so
    /// that a flood of writers cannot grow one batch without bound.
    pub max_group_requests: usize,
    /// How often expired dedup entries are swept (default 10 minutes). The first
    /// sweep runs at open.
    pub dedup_sweep_interval: Duration,
    /// The most dedup time-index entries one sweep looks at (default 10,000),
    /// which bounds how long a sweep holds up the writer. A sweep that hits the
    /// limit runs again a second later.
    pub dedup_sweep_limit: usize,
    /// The size at which a keyspace's memtable is sealed and flushed to disk
    /// (default 64 MiB, fjall's own). Each of the store's keyspaces has one, so
    /// this bounds the write buffers' share of the node's memory. fjall keeps the
    /// value a keyspace was created with: it applies to a new data directory only.
    pub memtable_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            sync: true,
            max_group_requests: 1024,
            dedup_sweep_interval: Duration::from_secs(10 * 60),
            dedup_sweep_limit: 10_000,
            memtable_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the writer thread has done since open: how well group commit is sharing
/// fsyncs (`requests / fsyncs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// fsyncs issued (one per group commit that wrote something, in sync mode,
    /// plus explicit flushes and the one at close).
    pub fsyncs: u64,
    /// Group commits performed.
    pub groups: u64,
    /// Write requests answered through those groups.
    pub requests: u64,
}

/// A [`MessageStore`] on a local fjall database. One process per directory
/// (fjall locks it); share one store between tasks behind an `Arc`.
///
/// Dropping the store stops the writer thread after it has answered every queued
/// request, and fsyncs; the dropping thread waits for that (normally
/// milliseconds), so that the directory is unlocked once the store is gone.
/// [`EmbeddedStore::close`] does the same and reports the outcome.
pub struct EmbeddedStore {
    /// The writer's queue. `None` once closed; dropping it is what tells the
    /// writer to finish.
    tx: Option<mpsc::Sender<(Instant, Request)>>,
    /// Joined on close/drop so the directory is unlocked when the store is gone.
    writer: Option<JoinHandle<StoreResult<()>>>,
    /// Keyspace handles for reads.
    spaces: Arc<Spaces>,
    /// Shared with the writer for [`EmbeddedStore::commit_stats`].
    counters: Arc<Counters>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, EmbeddedOptions::default())
    }

    /// Opens (creating if needed) the store in `path`.
    pub fn open_with(path: impl AsRef<Path>, options: EmbeddedOptions) -> StoreResult<Self> {
        let db = Database::builder(path.as_ref())
            // Durability is decided per batch by the writer; fjall's own
            // flush-to-OS on every write would only add syscalls.
            .manual_journal_persist(true)
            .open()
            .map_err(open_error)?;
        let spaces = Arc::new(Spaces::open(&db, options.memtable_bytes).map_err(open_error)?);
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db,
            spaces: Arc::clone(&spaces),
            rx,
            options,
            counters: Arc::clone(&counters),
            tops: writer::ConvTops::default(),
        };
        let handle = std::thread::Builder::new()
            .name("chorus-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            writer: Some(handle),
            spaces,
            counters,
        })
    }

    /// What group commit has done so far.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            fsyncs: self.counters.fsyncs.load(Ordering::Relaxed),
            groups: self.counters.groups.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Deletes dedup entries that have expired at `now_ms` (up to the sweep limit
    /// of the options), as the periodic sweep does. Returns how many went.
    pub async fn sweep_expired_dedup(&self, now_ms: u64) -> StoreResult<usize> {
        self.call(|reply| Request::SweepDedup { now_ms, reply })
            .await
    }

    /// Deletes load samples that have expired at `now_ms`, and members with
    /// none left (up to the sweep limit of the options), as the periodic sweep
    /// does. Returns how many samples went.
    pub async fn sweep_expired_load(&self, now_ms: u64) -> StoreResult<usize> {
        self.call(|reply| Request::SweepLoad { now_ms, reply })
            .await
    }

    /// Stops the writer after it has answered everything queued, fsyncs, and
    /// releases the directory. Blocks while the writer finishes.
    pub fn close(mut self) -> StoreResult<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> StoreResult<()> {
        drop(self.tx.take());
        match self.writer.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| StoreError::Backend("the writer thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Sends a request to the writer and waits for its answer.
    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> StoreResult<T> {
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        tx.send((Instant::now(), request(reply)))
            .map_err(|_| StoreError::Closed)?;
        // A dropped reply means the writer thread is gone.
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a scan on the blocking pool.
    async fn scan<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Spaces) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let spaces = Arc::clone(&self.spaces);
        tokio::task::spawn_blocking(move || f(&spaces))
            .await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }

    /// A point lookup (see `Spaces::point_snapshot`).
    fn get(&self, space: Space, key: &[u8]) -> StoreResult<Option<fjall::Slice>> {
        fjall::Readable::get(&self.spaces.point_snapshot(), self.spaces.get(space), key)
            .map_err(backend)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing the embedded store failed");
        }
    }
}

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        if batch.messages.is_empty() && batch.links.is_empty() {
            return Ok(AppendOutcome::default());
        }
        self.call(|reply| Request::Append { batch, reply }).await
    }

    async fn history(&self, conv: &str, query: HistoryQuery) -> StoreResult<HistorySlice> {
        let conv = conv.to_string();
        self.scan(move |spaces| read::history(spaces, &conv, query))
            .await
    }

    async fn last_seq(&self, conv: &str) -> StoreResult<u64> {
        check_id("conversation id", conv)?;
        match self.get(Space::ConvMeta, conv.as_bytes())? {
            Some(v) => record::decode_u64(&v, "conversation meta"),
            None => Ok(0),
        }
    }

    async fn conversation_page(&self, user: &str, query: ListQuery) -> StoreResult<ListSlice> {
        let user = user.to_string();
        self.scan(move |spaces| read::conversation_page(spaces, &user, &query))
            .await
    }

    async fn unlink(&self, user: &str, conv: &str) -> StoreResult<()> {
        let (user, conv) = (user.to_string(), conv.to_string());
        self.call(|reply| Request::Unlink { user, conv, reply })
            .await
    }

    async fn set_read(&self, user: &str, conv: &str, seq: u64) -> StoreResult<u64> {
        let (user, conv) = (user.to_string(), conv.to_string());
        self.call(|reply| Request::SetRead {
            user,
            conv,
            seq,
            reply,
        })
        .await
    }

    async fn read_seq(&self, user: &str, conv: &str) -> StoreResult<u64> {
        check_id("user id", user)?;
        check_id("conversation id", conv)?;
        match self.get(Space::ReadPos, &layout::pair(user, conv))? {
            Some(v) => record::decode_u64(&v, "read position"),
            None => Ok(0),
        }
    }

    async fn create_group(&self, group: &GroupRecord) -> StoreResult<bool> {
        let group = group.clone();
        self.call(|reply| Request::CreateGroup { group, reply })
            .await
    }

    async fn group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        check_id("group id", id)?;
        match self.get(Space::Groups, id.as_bytes())? {
            Some(v) => record::decode_group(id, &v).map(Some),
            None => Ok(None),
        }
    }

    async fn update_group(
        &self,
        group: &GroupRecord,
        added: &[String],
        removed: &[String],
    ) -> StoreResult<()> {
        let (group, added, removed) = (group.clone(), added.to_vec(), removed.to_vec());
        self.call(|reply| Request::UpdateGroup {
            group,
            added,
            removed,
            reply,
        })
        .await
    }

    async fn find_dedup(&self, key: &DedupKey, now_ms: u64) -> StoreResult<Option<DedupHit>> {
        check_id("conversation id", &key.conv)?;
        check_id("sender", &key.sender)?;
        check_id("client message id", &key.client_id)?;
        let stored = self.get(
            Space::Dedup,
            &layout::dedup(&key.conv, &key.sender, &key.client_id),
        )?;
        let Some(value) = stored else {
            return Ok(None);
        };
        let hit = record::decode_dedup(&value)?;
        // An entry not yet swept is still expired: the sweep is housekeeping, the
        // window is decided here.
        if now_ms.saturating_sub(hit.ts_ms) > DEDUP_WINDOW_MS {
            return Ok(None);
        }
        Ok(Some(hit))
    }

    async fn allocate_seq_block(&self, conv: &str, size: u64) -> StoreResult<SeqBlock> {
        let conv = conv.to_string();
        self.call(|reply| Request::AllocateSeqs { conv, size, reply })
            .await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.call(|reply| Request::Flush { reply }).await
    }

    async fn set_room_settings(&self, room: &str, settings: &RoomSettings) -> StoreResult<()> {
        let (room, settings) = (room.to_string(), *settings);
        self.call(|reply| Request::SetRoomSettings {
            room,
            settings,
            reply,
        })
        .await
    }

    async fn room_settings(&self, room: &str) -> StoreResult<RoomSettings> {
        check_id("room id", room)?;
        match self.get(Space::RoomSettings, room.as_bytes())? {
            Some(v) => record::decode_room_settings(&v),
            None => Ok(RoomSettings::default()),
        }
    }

    async fn set_last_seen(&self, user: &str, at_ms: u64) -> StoreResult<()> {
        let user = user.to_string();
        self.call(|reply| Request::SetLastSeen { user, at_ms, reply })
            .await
    }

    async fn last_seen(&self, user: &str) -> StoreResult<Option<u64>> {
        check_id("user id", user)?;
        self.get(Space::LastSeen, user.as_bytes())?
            .map(|v| record::decode_u64(&v, "last seen"))
            .transpose()
    }

    async fn count_groups(&self, user: &str, up_to: u64) -> StoreResult<u64> {
        let user = user.to_string();
        self.scan(move |spaces| read::count_groups(spaces, &user, up_to))
            .await
    }

    async fn probe(&self) -> StoreResult<()> {
        match self.counters.health.failure() {
            None => Ok(()),
            // Only a store whose last write failed is worth a write to find out.
            Some(_) => self.call(|reply| Request::Probe { reply }).await,
        }
    }

    async fn append_load_samples(
        &self,
        member: &str,
        samples: &[LoadRecord],
        keep_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        crate::load::check_append(member, samples)?;
        if samples.is_empty() {
            return Ok(());
        }
        let (member, samples) = (member.to_string(), samples.to_vec());
        self.call(|reply| Request::AppendLoad {
            member,
            samples,
            keep_ms,
            now_ms,
            reply,
        })
        .await
    }

    async fn load_members(&self, now_ms: u64) -> StoreResult<Vec<String>> {
        self.scan(move |spaces| load::members(spaces, now_ms)).await
    }

    async fn load_history(
        &self,
        member: &str,
        after_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreResult<Vec<LoadRecord>> {
        crate::load::check_member(member).map_err(StoreError::Refused)?;
        let member = member.to_string();
        self.scan(move |spaces| load::history(spaces, &member, after_ms, limit, now_ms))
            .await
    }
}

/// A fjall failure during normal operation.
fn backend(e: fjall::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A fjall failure at open: a locked directory is another process's, which is
/// worth retrying, not a broken store.
fn open_error(e: fjall::Error) -> StoreError {
    match e {
        fjall::Error::Locked => {
            StoreError::Unavailable("the data directory is in use by another process".into())
        }
        other => backend(other),
    }
}

/// A copy of an error, for answering every request of a failed group.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(s) => StoreError::Unavailable(s.clone()),
        StoreError::Backend(s) => StoreError::Backend(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        StoreError::Refused(s) => StoreError::Refused(s.clone()),
        StoreError::Closed => StoreError::Closed,
    }
}
