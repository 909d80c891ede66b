//! Unit tests of the parts the conformance suite cannot see: the value encoding
//! on bad bytes, and the key layout.

use super::layout::{self, Space, Spaces};
use super::record;
use super::{EmbeddedStore, backend};
use crate::{DedupHit, GroupRecord, Message, MessageStore, RoomSettings, StoreError};

fn message() -> Message {
    Message {
        conv: "dm:a:b".into(),
        seq: 7,
        id: "m1".into(),
        from: "a".into(),
        body: "héllo ✓".into(),
        ts_ms: 1_700_000_000_000,
    }
}

#[test]
fn records_round_trip() -> Result<(), StoreError> {
    let m = message();
    let bytes = record::encode_message(&m)?;
    assert_eq!(record::decode_message(&m.conv, m.seq, &bytes)?, m);

    assert_eq!(record::decode_u64(&record::encode_u64(42), "n")?, 42);

    let hit = DedupHit { seq: 3, ts_ms: 9 };
    assert_eq!(record::decode_dedup(&record::encode_dedup(hit))?, hit);

    let g = GroupRecord {
        id: "g".into(),
        name: "Group".into(),
        owner: "a".into(),
        members: vec!["a".into(), "b".into()],
    };
    assert_eq!(record::decode_group("g", &record::encode_group(&g)?)?, g);

    for slow_mode_s in [None, Some(0), Some(30), Some(u32::MAX)] {
        let settings = RoomSettings { slow_mode_s };
        let bytes = record::encode_room_settings(&settings);
        assert_eq!(record::decode_room_settings(&bytes)?, settings);
    }
    Ok(())
}

#[test]
fn damaged_room_settings_are_corrupt_not_panics() {
    let good = record::encode_room_settings(&RoomSettings {
        slow_mode_s: Some(30),
    });
    for len in 0..good.len() {
        let res = record::decode_room_settings(&good[..len]);
        assert!(matches!(res, Err(StoreError::Corrupt(_))), "len {len}");
    }
    let bad_presence = [1u8, 2];
    assert!(matches!(
        record::decode_room_settings(&bad_presence),
        Err(StoreError::Corrupt(_))
    ));
    let mut too_big = vec![1u8, 1];
    too_big.extend_from_slice(&(u64::from(u32::MAX) + 1).to_be_bytes());
    assert!(matches!(
        record::decode_room_settings(&too_big),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn damaged_records_are_corrupt_not_panics() -> Result<(), StoreError> {
    let good = record::encode_message(&message())?;
    // Every truncation, an unknown format byte, and trailing junk.
    for len in 0..good.len() {
        let res = record::decode_message("c", 1, &good[..len]);
        assert!(matches!(res, Err(StoreError::Corrupt(_))), "len {len}");
    }
    let mut wrong_format = good.clone();
    wrong_format[0] = 99;
    assert!(matches!(
        record::decode_message("c", 1, &wrong_format),
        Err(StoreError::Corrupt(_))
    ));
    let mut trailing = good;
    trailing.push(0);
    assert!(matches!(
        record::decode_message("c", 1, &trailing),
        Err(StoreError::Corrupt(_))
    ));

    // A string length far past the end, and a member count no value could hold.
    let huge_len = [1, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        record::decode_message("c", 1, &huge_len),
        Err(StoreError::Corrupt(_))
    ));
    let mut huge_count = vec![1, 0, 0, 0, 0, 0, 0, 0, 0];
    huge_count.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(
        record::decode_group("g", &huge_count),
        Err(StoreError::Corrupt(_))
    ));
    let not_utf8 = [1, 0, 0, 0, 1, 0xff];
    assert!(matches!(
        record::decode_message("c", 1, &not_utf8),
        Err(StoreError::Corrupt(_))
    ));
    Ok(())
}

#[test]
fn message_keys_sort_by_seq_and_stay_inside_their_conversation() {
    assert!(layout::message("c", 255) < layout::message("c", 256));
    assert!(layout::message("c", u64::MAX) < layout::prefix("c0"));
    assert!(layout::message("c", 1) > layout::prefix("c"));
    let p = layout::prefix("c").len();
    assert_eq!(
        layout::message_seq(&layout::message("c", 300), p).ok(),
        Some(300)
    );
    assert!(layout::message_seq(b"c\0\x01", p).is_err());
}

#[test]
fn nul_in_ids_is_refused() {
    assert!(layout::check_id("x", "a\0b").is_err());
    assert!(layout::check_id("x", "dm:a:b").is_ok());
}

/// Damaged bytes already on disk come back as `Corrupt` through the store API.
#[tokio::test]
async fn corrupt_values_on_disk_are_reported() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    {
        let db = fjall::Database::builder(dir.path()).open()?;
        let spaces = Spaces::open(&db, super::EmbeddedOptions::default().memtable_bytes)?;
        spaces
            .get(Space::ConvMeta)
            .insert("dm:a:b", [1u8, 2, 3].as_slice())?;
        spaces
            .get(Space::Messages)
            .insert(layout::message("dm:a:b", 1), [7u8].as_slice())?;
        spaces
            .get(Space::Groups)
            .insert("g", [1u8, 0, 0].as_slice())?;
        db.persist(fjall::PersistMode::SyncAll).map_err(backend)?;
    }
    let store = EmbeddedStore::open(dir.path())?;
    assert!(matches!(
        store.last_seq("dm:a:b").await,
        Err(StoreError::Corrupt(_))
    ));
    let q = crate::HistoryQuery {
        after: None,
        before: None,
        limit: 10,
    };
    assert!(matches!(
        store.history("dm:a:b", q).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.group("g").await,
        Err(StoreError::Corrupt(_))
    ));
    // A write that must read the damaged record fails alone; the writer lives on.
    let block = store.allocate_seq_block("dm:a:b", 10).await;
    assert!(matches!(block, Err(StoreError::Corrupt(_))));
    assert_eq!(store.set_read("u", "dm:a:b", 4).await?, 4);
    store.close()?;
    Ok(())
}

/// Batch `b` of conversation `dm:a{c}:b`: seqs `b * per_batch + 1 ..= (b + 1) *
/// per_batch`, each with a body of `body_len` bytes.
fn nth_batch(c: u64, b: u64, per_batch: u64, body_len: usize) -> crate::AppendBatch {
    let messages = (1..=per_batch)
        .map(|i| Message {
            conv: format!("dm:a{c}:b"),
            seq: b * per_batch + i,
            id: format!("m{b}-{i}"),
            from: format!("a{c}"),
            body: "x".repeat(body_len),
            ts_ms: 1,
        })
        .collect();
    crate::AppendBatch {
        messages,
        links: Vec::new(),
    }
}

/// Appends batches `0..batches` to conversations `dm:a0:b ..` (all conversations'
/// batch `b` in flight at once, so they share group commits). The counters hold,
/// per conversation, the highest seq whose append has returned.
fn spawn_writer(
    store: &std::sync::Arc<EmbeddedStore>,
    convs: u64,
    batches: u64,
    per_batch: u64,
    body_len: usize,
) -> (
    tokio::task::JoinHandle<Result<(), StoreError>>,
    std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
) {
    let stored: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>> =
        std::sync::Arc::new((0..convs).map(|_| Default::default()).collect());
    let (store, counters) = (store.clone(), stored.clone());
    let writer = tokio::spawn(async move {
        for b in 0..batches {
            let mut appends = tokio::task::JoinSet::new();
            for c in 0..convs {
                let (store, counters) = (store.clone(), counters.clone());
                appends.spawn(async move {
                    store.append(nth_batch(c, b, per_batch, body_len)).await?;
                    counters[c as usize]
                        .store((b + 1) * per_batch, std::sync::atomic::Ordering::SeqCst);
                    Ok::<(), StoreError>(())
                });
            }
            while let Some(done) = appends.join_next().await {
                done.map_err(|e| StoreError::Backend(e.to_string()))??;
            }
        }
        Ok(())
    });
    (writer, stored)
}

/// Reads concurrent with group commits see each commit whole: a history page never
/// holds a message of a conversation without the earlier ones. (A keyspace read
/// outside a snapshot could see part of a commit being applied, and the SDK, which
/// trusts a page as complete, then dropped the missing messages as duplicates.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_never_show_part_of_a_group_commit() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let store = std::sync::Arc::new(EmbeddedStore::open(dir.path())?);
    const CONVS: u64 = 8;
    const BATCHES: u64 = 150;
    const PER_BATCH: u64 = 40;
    let (writer, _) = spawn_writer(&store, CONVS, BATCHES, PER_BATCH, 40);
    let mut pages = 0u64;
    while !writer.is_finished() {
        for c in 0..CONVS {
            let conv = format!("dm:a{c}:b");
            let query = crate::HistoryQuery {
                after: Some(0),
                before: None,
                limit: 200,
            };
            let page = store.history(&conv, query).await?;
            for (i, m) in page.messages.iter().enumerate() {
                assert_eq!(m.seq, i as u64 + 1, "{conv}: a page with a hole: {:?}", {
                    page.messages.iter().map(|m| m.seq).collect::<Vec<_>>()
                });
            }
            let latest = store
                .history(
                    &conv,
                    crate::HistoryQuery {
                        after: None,
                        before: None,
                        limit: 200,
                    },
                )
                .await?;
            for pair in latest.messages.windows(2) {
                assert_eq!(
                    pair[1].seq,
                    pair[0].seq + 1,
                    "{conv}: a hole in the newest page"
                );
            }
            pages += 2;
        }
    }
    writer.await??;
    assert!(pages > 0);
    Ok(())
}

/// fjall makes a batch visible to new snapshots when the batch has been applied,
/// but a memtable flush or compaction finishing meanwhile on one of its own
/// threads also raises the visible seqno, past a batch still being applied: a
/// snapshot taken at that moment holds part of a group commit. With tiny memtables
/// flushes run all the time; a page must still never show a message without the
/// conversation's earlier ones. (The writer stages a group in a hash map, so a
/// batch's keys are applied in no particular order and a partial batch shows as a
/// hole, not only as a shorter page.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_stay_whole_while_memtables_flush() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let options = super::EmbeddedOptions {
        sync: false,
        memtable_bytes: 64 * 1024,
        ..super::EmbeddedOptions::default()
    };
    let store = std::sync::Arc::new(EmbeddedStore::open_with(dir.path(), options)?);
    const CONVS: u64 = 4;
    const BATCHES: u64 = 150;
    const PER_BATCH: u64 = 40;
    let (writer, stored) = spawn_writer(&store, CONVS, BATCHES, PER_BATCH, 200);
    let mut pages = 0u64;
    while !writer.is_finished() {
        for c in 0..CONVS {
            let conv = format!("dm:a{c}:b");
            let before = stored[c as usize].load(std::sync::atomic::Ordering::SeqCst);
            let after = before.saturating_sub(PER_BATCH * 2);
            let query = crate::HistoryQuery {
                after: Some(after),
                before: None,
                limit: 200,
            };
            let page = store.history(&conv, query).await?;
            let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
            for (i, &seq) in seqs.iter().enumerate() {
                assert_eq!(
                    seq,
                    after + 1 + i as u64,
                    "{conv}: a page with a hole: {seqs:?}"
                );
            }
            assert!(
                seqs.last().copied().unwrap_or(after) >= before,
                "{conv}: a page without what was stored before it was asked for: {seqs:?}"
            );
            pages += 1;
        }
    }
    writer.await??;
    assert!(pages > 0);
    Ok(())
}
