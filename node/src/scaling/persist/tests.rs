//! The batched writes against a real embedded store behind a switch that
//! makes its load-history writes fail or hang: an outage delays the writes,
//! never loses what fits in the buffer, and never blocks the caller past the
//! timeout. On a paused clock, so the hang's timeout passes at once.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use chorus_store::embedded::EmbeddedStore;
use chorus_store::{
    AppendBatch, AppendOutcome, DedupHit, DedupKey, GroupRecord, HistoryQuery, HistorySlice,
    ListQuery, ListSlice, RoomSettings, SeqBlock, StoreError,
};

use super::*;

const WORKS: u8 = 0;
const FAILS: u8 = 1;
const HANGS: u8 = 2;

/// The embedded store, with load-history writes that fail or hang on demand.
struct Outage {
    inner: EmbeddedStore,
    mode: AtomicU8,
}

#[async_trait]
impl MessageStore for Outage {
    async fn append(&self, batch: AppendBatch) -> StoreResult<AppendOutcome> {
        self.inner.append(batch).await
    }
    async fn history(&self, conv: &str, query: HistoryQuery) -> StoreResult<HistorySlice> {
        self.inner.history(conv, query).await
    }
    async fn last_seq(&self, conv: &str) -> StoreResult<u64> {
        self.inner.last_seq(conv).await
    }
    async fn conversation_page(&self, user: &str, query: ListQuery) -> StoreResult<ListSlice> {
        self.inner.conversation_page(user, query).await
    }
    async fn unlink(&self, user: &str, conv: &str) -> StoreResult<()> {
        self.inner.unlink(user, conv).await
    }
    async fn set_read(&self, user: &str, conv: &str, seq: u64) -> StoreResult<u64> {
        self.inner.set_read(user, conv, seq).await
    }
    async fn read_seq(&self, user: &str, conv: &str) -> StoreResult<u64> {
        self.inner.read_seq(user, conv).await
    }
    async fn create_group(&self, group: &GroupRecord) -> StoreResult<bool> {
        self.inner.create_group(group).await
    }
    async fn group(&self, id: &str) -> StoreResult<Option<GroupRecord>> {
        self.inner.group(id).await
    }
    async fn update_group(
        &self,
        group: &GroupRecord,
        added: &[String],
        removed: &[String],
    ) -> StoreResult<()> {
        self.inner.update_group(group, added, removed).await
    }
    async fn find_dedup(&self, key: &DedupKey, now_ms: u64) -> StoreResult<Option<DedupHit>> {
        self.inner.find_dedup(key, now_ms).await
    }
    async fn allocate_seq_block(&self, conv: &str, size: u64) -> StoreResult<SeqBlock> {
        self.inner.allocate_seq_block(conv, size).await
    }
    async fn flush(&self) -> StoreResult<()> {
        self.inner.flush().await
    }
    async fn set_room_settings(&self, room: &str, settings: &RoomSettings) -> StoreResult<()> {
        self.inner.set_room_settings(room, settings).await
    }
    async fn room_settings(&self, room: &str) -> StoreResult<RoomSettings> {
        self.inner.room_settings(room).await
    }
    async fn set_last_seen(&self, user: &str, at_ms: u64) -> StoreResult<()> {
        self.inner.set_last_seen(user, at_ms).await
    }
    async fn last_seen(&self, user: &str) -> StoreResult<Option<u64>> {
        self.inner.last_seen(user).await
    }
    async fn count_groups(&self, user: &str, up_to: u64) -> StoreResult<u64> {
        self.inner.count_groups(user, up_to).await
    }
    async fn probe(&self) -> StoreResult<()> {
        self.inner.probe().await
    }
    async fn append_load_samples(
        &self,
        member: &str,
        samples: &[LoadRecord],
        keep_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        match self.mode.load(Ordering::Relaxed) {
            FAILS => Err(StoreError::Unavailable("the database is down".into())),
            HANGS => std::future::pending().await,
            _ => {
                self.inner
                    .append_load_samples(member, samples, keep_ms, now_ms)
                    .await
            }
        }
    }
    async fn load_members(&self, now_ms: u64) -> StoreResult<Vec<String>> {
        self.inner.load_members(now_ms).await
    }
    async fn load_history(
        &self,
        member: &str,
        after_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreResult<Vec<LoadRecord>> {
        self.inner
            .load_history(member, after_ms, limit, now_ms)
            .await
    }
}

fn sample(at_ms: u64, connections: u64) -> LoadSample {
    LoadSample {
        at_ms,
        connections,
        ..LoadSample::default()
    }
}

const NOW: u64 = 1_800_000_000_000;
const KEEP_MS: u64 = 3_600_000;

fn setup(dir: &std::path::Path) -> (Arc<Outage>, Writer) {
    let store = Arc::new(Outage {
        inner: EmbeddedStore::open(dir).expect("opens"),
        mode: AtomicU8::new(WORKS),
    });
    let writer = Writer {
        store: store.clone(),
        member: "n1".into(),
        keep_ms: KEEP_MS,
        timeout: Duration::from_secs(5),
    };
    (store, writer)
}

#[test]
fn the_buffer_keeps_the_newest_within_its_bound() {
    let mut pending = Pending::new(3);
    for i in 1..=5 {
        pending.push(sample(i, i));
    }
    assert_eq!(pending.len(), 3);
    let taken = pending.take();
    assert_eq!(
        taken.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    pending.push(sample(6, 6));
    pending.put_back(taken);
    // Put back ahead of the newer one; the bound drops the oldest.
    let again = pending.take();
    assert_eq!(
        again.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_delays_the_writes_and_loses_nothing_that_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, writer) = setup(dir.path());
    let pending = Mutex::new(Pending::new(100));
    for i in 0..5 {
        lock(&pending).push(sample(NOW - 50_000 + i * 1000, i));
    }
    store.mode.store(FAILS, Ordering::Relaxed);
    assert_eq!(writer.write_pending(&pending, NOW).await, Written::Failed);
    assert_eq!(lock(&pending).len(), 5, "kept for the next batch");

    // A store that never answers costs the batch its timeout, no more.
    store.mode.store(HANGS, Ordering::Relaxed);
    lock(&pending).push(sample(NOW - 10_000, 5));
    let begun = tokio::time::Instant::now();
    assert_eq!(writer.write_pending(&pending, NOW).await, Written::Failed);
    assert_eq!(begun.elapsed(), Duration::from_secs(5));
    assert_eq!(lock(&pending).len(), 6);

    // The real store answers from its writer thread: on a paused clock the
    // runtime, idle meanwhile, would jump to the timeout.
    tokio::time::resume();
    store.mode.store(WORKS, Ordering::Relaxed);
    assert_eq!(
        writer.write_pending(&pending, NOW).await,
        Written::Stored(6)
    );
    assert_eq!(lock(&pending).len(), 0);
    assert_eq!(writer.write_pending(&pending, NOW).await, Written::Nothing);

    let read = read_histories(store.as_ref(), KEEP_MS, 100, NOW)
        .await
        .expect("reads");
    assert_eq!(read.len(), 1);
    let (member, samples) = &read[0];
    assert_eq!(member, "n1");
    assert_eq!(
        samples.iter().map(|s| s.connections).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5],
        "every sample, in time order"
    );
}

#[tokio::test]
async fn the_read_keeps_the_newest_per_member_and_skips_bad_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = setup(dir.path());
    let records: Vec<LoadRecord> = (0..10)
        .map(|i| encode(&sample(NOW - 100_000 + i * 1000, i)).expect("encodes"))
        .collect();
    store
        .append_load_samples("n2", &records, KEEP_MS, NOW)
        .await
        .expect("stores");
    let junk = [
        LoadRecord {
            at_ms: NOW - 500,
            data: b"not json".to_vec(),
        },
        // A sample whose own time is not its key's.
        encode(&sample(NOW - 200, 99))
            .map(|mut r| {
                r.at_ms = NOW - 300;
                r
            })
            .expect("encodes"),
    ];
    store
        .append_load_samples("n2", &junk, KEEP_MS, NOW)
        .await
        .expect("stores");
    let read = read_histories(store.as_ref(), KEEP_MS, 4, NOW)
        .await
        .expect("reads");
    let (_, samples) = &read[0];
    assert_eq!(
        samples.iter().map(|s| s.connections).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );
    // Outside the window nothing is read.
    let old = read_histories(store.as_ref(), 10_000, 100, NOW)
        .await
        .expect("reads");
    assert!(old.is_empty(), "{old:?}");
}
