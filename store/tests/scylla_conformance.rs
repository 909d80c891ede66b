//! The `scylla` backend against a real Apache Cassandra (or ScyllaDB) node: the
//! whole conformance suite, then what only this backend has to show — seq fencing
//! between two connected stores, history across timeline buckets, appends too big
//! for one batch, conversation lists longer than a page.
//!
//! The tests that need a database are `#[ignore]`d, so `cargo test` without Java
//! reports them as ignored rather than passed; `scripts/test` starts Cassandra and
//! runs them with `--include-ignored`. `CHORUS_CASSANDRA` gives the contact points
//! (`host:port`, comma-separated; empty means `127.0.0.1:9042`):
//!
//! ```sh
//! scripts/cassandra start
//! CHORUS_CASSANDRA=127.0.0.1:9042 cargo test -p chorus-store --test scylla_conformance -- --include-ignored
//! ```
//!
//! Run with the ignored tests but unset, or set but unreachable, they fail. Each
//! test works in a fresh keyspace of its own and drops it at the end, even when it fails.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_store::conformance::{self, Namespace, SharedStore, dm, message, now_ms, query, seqs};
use chorus_store::scylla::{BUCKET_SIZE, Consistency, ScyllaOptions, ScyllaStore};
use chorus_store::{AppendBatch, DedupKey, HistoryQuery, MessageStore, SeqBlock, StoreError};
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Statement;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Contact points from `CHORUS_CASSANDRA`. The tests that need them are
/// `#[ignore]`d: `scripts/test` starts Cassandra and runs them; run by hand
/// without it, they fail rather than pass having tested nothing.
fn contact_points() -> Vec<String> {
    let value = std::env::var("CHORUS_CASSANDRA")
        .expect("CHORUS_CASSANDRA names the Cassandra node of this test (scripts/cassandra start)");
    let points: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    if points.is_empty() {
        vec!["127.0.0.1:9042".into()]
    } else {
        points
    }
}

/// A keyspace name no other run uses: label, clock and pid.
fn unique_keyspace(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut name = format!("chorus_t_{label}_{nanos:x}_{}", std::process::id());
    name.truncate(48);
    name
}

/// Runs `body` with options for a fresh keyspace, then drops the keyspace whatever
/// the body did (including panicking, which is then passed on).
async fn in_fresh_keyspace<F, Fut>(label: &str, body: F) -> TestResult
where
    F: FnOnce(ScyllaOptions) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let contact_points = contact_points();
    let options = ScyllaOptions {
        contact_points,
        keyspace: unique_keyspace(label),
        replication_factor: 1,
        consistency: Consistency::LocalQuorum,
        // A 2-core machine running the database and the build at once is slow.
        request_timeout: Duration::from_secs(15),
    };
    let outcome = tokio::spawn(body(options.clone())).await;
    let dropped = drop_keyspace(&options).await;
    match outcome {
        Ok(result) => {
            result?;
            dropped
        }
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(join.into()),
    }
}

/// Drops a test keyspace, with a connection of its own.
async fn drop_keyspace(options: &ScyllaOptions) -> TestResult {
    let session = SessionBuilder::new()
        .known_nodes(&options.contact_points)
        .build()
        .await?;
    let mut drop = Statement::new(format!("DROP KEYSPACE IF EXISTS {}", options.keyspace));
    drop.set_request_timeout(Some(Duration::from_secs(120)));
    session.query_unpaged(drop, ()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn scylla_store_passes_the_conformance_suite() -> TestResult {
    in_fresh_keyspace("conf", |options| async move {
        let store: SharedStore = Arc::new(ScyllaStore::connect(options).await?);
        if let Err(failures) = conformance::run_all(&store, &Namespace::new("scylla")).await {
            let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
            return Err(format!(
                "{} conformance check(s) failed:\n{}",
                failures.len(),
                report.join("\n")
            )
            .into());
        }
        Ok(())
    })
    .await
}

/// Two stores — two Chorus nodes that both believe they own a conversation —
/// allocate blocks of it at the same time, round after round: no seq is ever
/// handed to both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn two_owners_never_get_overlapping_blocks() -> TestResult {
    const ROUNDS: u64 = 150;
    in_fresh_keyspace("fence", |options| async move {
        let first = Arc::new(ScyllaStore::connect(options.clone()).await?);
        let second = Arc::new(ScyllaStore::connect(options).await?);
        let ns = Namespace::new("fence");
        let conv = dm(&ns.user(), &ns.user());
        let owner = |store: Arc<ScyllaStore>, conv: String, salt: u64| async move {
            let mut blocks = Vec::new();
            for round in 0..ROUNDS {
                let size = 1 + (round * 7 + salt) % 13;
                let block = store
                    .allocate_seq_block(&conv, size)
                    .await
                    .map_err(|e| e.to_string())?;
                if block.end - block.start != size {
                    return Err(format!("{block:?} is not {size} long"));
                }
                blocks.push(block);
            }
            Ok::<_, String>(blocks)
        };
        let (a, b) = tokio::join!(
            tokio::spawn(owner(Arc::clone(&first), conv.clone(), 0)),
            tokio::spawn(owner(Arc::clone(&second), conv.clone(), 5)),
        );
        let mut blocks: Vec<(char, SeqBlock)> = Vec::new();
        blocks.extend(a??.into_iter().map(|b| ('a', b)));
        blocks.extend(b??.into_iter().map(|b| ('b', b)));
        assert_eq!(blocks.len() as u64, 2 * ROUNDS);
        blocks.sort_by_key(|(_, b)| b.start);
        for pair in blocks.windows(2) {
            let [(who1, earlier), (who2, later)] = pair else {
                continue;
            };
            assert!(
                later.start >= earlier.end,
                "{who2}'s {later:?} overlaps {who1}'s {earlier:?}"
            );
        }
        assert!(blocks.first().is_some_and(|(_, b)| b.start >= 1));
        // Whoever allocates next starts past everything handed out.
        let top = blocks.iter().map(|(_, b)| b.end).max().unwrap_or(1);
        let next = first.allocate_seq_block(&conv, 1).await?;
        assert!(next.start >= top, "{next:?} starts below {top}");
        Ok(())
    })
    .await
}

/// What a history page must hold, computed from the stored seqs alone.
fn model_page(stored: &[u64], q: HistoryQuery) -> (Vec<u64>, bool) {
    let within: Vec<u64> = stored
        .iter()
        .copied()
        .filter(|&s| q.after.is_none_or(|a| s > a) && q.before.is_none_or(|b| s < b))
        .collect();
    let limit = q.limit as usize;
    let more = within.len() > limit;
    let page = if q.after.is_some() {
        within.iter().take(limit).copied().collect()
    } else {
        within[within.len().saturating_sub(limit)..].to_vec()
    };
    (page, more)
}

/// History over seqs spread across many buckets, with empty buckets between
/// them, agrees with the model for every mode at every bucket edge, and paging
/// walks visit every message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn history_pages_across_buckets() -> TestResult {
    in_fresh_keyspace("hist", |options| async move {
        let store = ScyllaStore::connect(options).await?;
        let ns = Namespace::new("buckets");
        let (a, b) = (ns.user(), ns.user());
        let conv = dm(&a, &b);
        let s = BUCKET_SIZE;
        // Buckets 0, 1, 2, 4, 9 and 10 hold messages; 3 and 5–8 do not.
        let stored: Vec<u64> = vec![
            1,
            2,
            s - 2,
            s - 1,
            s,
            s + 1,
            2 * s - 1,
            2 * s,
            4 * s + 5_000,
            4 * s + 5_001,
            4 * s + 5_002,
            10 * s - 1,
            10 * s,
        ];
        let written: Vec<_> = stored
            .iter()
            .map(|&seq| message(&ns, &conv, seq, &a, &format!("m{seq}")))
            .collect();
        store
            .append(AppendBatch {
                messages: written.clone(),
                links: vec![],
            })
            .await?;
        assert_eq!(store.last_seq(&conv).await?, 10 * s);

        let afters = [
            None,
            Some(0),
            Some(1),
            Some(s - 2),
            Some(s - 1),
            Some(s),
            Some(2 * s - 1),
            Some(3 * s),
            Some(4 * s + 5_001),
            Some(10 * s),
            Some(u64::MAX),
        ];
        let befores = [
            None,
            Some(2),
            Some(s),
            Some(s + 1),
            Some(2 * s + 1),
            Some(4 * s + 5_001),
            Some(10 * s),
            Some(10 * s + 1),
            Some(u64::MAX),
        ];
        for after in afters {
            for before in befores {
                for limit in [1, 2, 3, 5, 200] {
                    let q = query(after, before, limit);
                    let page = store.history(&conv, q).await?;
                    let (want, more) = model_page(&stored, q);
                    assert_eq!(seqs(&page.messages), want, "{q:?}");
                    assert_eq!(page.more, more, "more of {q:?}");
                }
            }
        }
        // Fields survive the trip through any bucket.
        let page = store.history(&conv, query(Some(0), None, 200)).await?;
        assert_eq!(page.messages, written);

        let (mut forward, mut after) = (Vec::new(), 0);
        loop {
            let page = store.history(&conv, query(Some(after), None, 2)).await?;
            forward.extend(seqs(&page.messages));
            match page.messages.last() {
                Some(last) if page.more => after = last.seq,
                _ => break,
            }
        }
        assert_eq!(forward, stored);
        let (mut backward, mut before) = (Vec::new(), None);
        loop {
            let page = store.history(&conv, query(None, before, 2)).await?;
            let mut chunk = seqs(&page.messages);
            chunk.extend(backward);
            backward = chunk;
            match page.messages.first() {
                Some(first) if page.more => before = Some(first.seq),
                _ => break,
            }
        }
        assert_eq!(backward, stored);
        Ok(())
    })
    .await
}

/// One append far above the server's batch size limit lands whole: every
/// message, every dedup entry, the right `last_seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn appends_larger_than_a_batch_land_whole() -> TestResult {
    const MESSAGES: u64 = 300;
    in_fresh_keyspace("big", |options| async move {
        let store = ScyllaStore::connect(options).await?;
        let ns = Namespace::new("big");
        let (a, b) = (ns.user(), ns.user());
        let conv = dm(&a, &b);
        let body = "x".repeat(4096);
        let written: Vec<_> = (1..=MESSAGES)
            .map(|seq| message(&ns, &conv, seq, &a, &body))
            .collect();
        // About 1.3 MB: dozens of batches under Cassandra's 50 KiB limit.
        store
            .append(AppendBatch {
                messages: written.clone(),
                links: vec![(a.clone(), conv.clone()), (b.clone(), conv.clone())],
            })
            .await?;
        assert_eq!(store.last_seq(&conv).await?, MESSAGES);
        let mut read = store.history(&conv, query(Some(0), None, 200)).await?;
        assert!(read.more);
        read.messages.extend(
            store
                .history(&conv, query(Some(200), None, 200))
                .await?
                .messages,
        );
        assert_eq!(read.messages, written);
        for m in [&written[0], &written[written.len() - 1]] {
            let key = DedupKey {
                conv: m.conv.clone(),
                sender: m.from.clone(),
                client_id: m.id.clone(),
            };
            let hit = store.find_dedup(&key, now_ms()).await?;
            assert_eq!(hit.map(|h| h.seq), Some(m.seq));
        }
        assert_eq!(store.conversations(&b).await?.len(), 1);
        Ok(())
    })
    .await
}

/// A conversation list longer than one page (1,000 rows) comes back whole, in id
/// order, with each conversation's `last_seq` and the user's `read_seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn conversation_lists_longer_than_a_page() -> TestResult {
    const CONVERSATIONS: usize = 2_300;
    in_fresh_keyspace("list", |options| async move {
        let store = ScyllaStore::connect(options).await?;
        let ns = Namespace::new("list");
        let user = ns.user();
        let convs: Vec<String> = (0..CONVERSATIONS).map(|_| dm(&user, &ns.user())).collect();
        store
            .append(AppendBatch {
                messages: vec![],
                links: convs.iter().map(|c| (user.clone(), c.clone())).collect(),
            })
            .await?;
        // A message and a read position in a few of them, across the pages.
        for (i, conv) in convs.iter().enumerate().step_by(997) {
            let seq = i as u64 + 1;
            store
                .append(AppendBatch {
                    messages: vec![message(&ns, conv, seq, &user, "hi")],
                    links: vec![],
                })
                .await?;
            store.set_read(&user, conv, seq).await?;
        }
        let list = store.conversations(&user).await?;
        let mut sorted = convs.clone();
        sorted.sort();
        let listed: Vec<&String> = list.iter().map(|item| &item.conv).collect();
        assert_eq!(listed, sorted.iter().collect::<Vec<_>>());
        for item in &list {
            let i = convs
                .iter()
                .position(|c| *c == item.conv)
                .unwrap_or(usize::MAX);
            let want = if i % 997 == 0 { i as u64 + 1 } else { 0 };
            assert_eq!(
                (item.last_seq, item.read_seq),
                (want, want),
                "{}",
                item.conv
            );
        }
        Ok(())
    })
    .await
}

/// Racing `set_read`s across two stores still keep the highest: the max-merge
/// does not depend on one process serialising its own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn read_positions_keep_the_highest_across_stores() -> TestResult {
    in_fresh_keyspace("read", |options| async move {
        let first = Arc::new(ScyllaStore::connect(options.clone()).await?);
        let second = Arc::new(ScyllaStore::connect(options).await?);
        let ns = Namespace::new("reads");
        let user = ns.user();
        let conv = dm(&user, &ns.user());
        let mut tasks = tokio::task::JoinSet::new();
        for seq in (1..=200u64).rev() {
            let store = if seq % 2 == 0 {
                Arc::clone(&first)
            } else {
                Arc::clone(&second)
            };
            let (user, conv) = (user.clone(), conv.clone());
            tasks.spawn(async move {
                store
                    .set_read(&user, &conv, seq)
                    .await
                    .map(|got| (seq, got))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (asked, got) = joined??;
            assert!(got >= asked, "set_read({asked}) answered {got}");
        }
        assert_eq!(first.read_seq(&user, &conv).await?, 200);
        assert_eq!(second.set_read(&user, &conv, 3).await?, 200);
        Ok(())
    })
    .await
}

/// No database at the address: `connect` fails as `Unavailable`, quickly, and
/// does not panic. Needs no database, so it always runs.
#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    let options = ScyllaOptions {
        // Nothing listens on port 1 of the loopback address.
        contact_points: vec!["127.0.0.1:1".into()],
        request_timeout: Duration::from_secs(2),
        ..ScyllaOptions::default()
    };
    // The driver gives up by itself; the timeout only keeps a regression from
    // hanging the suite.
    let connected = tokio::time::timeout(Duration::from_secs(120), ScyllaStore::connect(options))
        .await
        .expect("connect gives up on an address nobody listens on");
    match connected {
        Err(StoreError::Unavailable(why)) => {
            assert!(why.contains("127.0.0.1:1"), "{why}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("connected to a port nobody listens on"),
    }
}

/// Bad options are refused before any connection is tried.
#[tokio::test]
async fn bad_options_are_refused() {
    for options in [
        ScyllaOptions {
            keyspace: "no-dashes".into(),
            ..ScyllaOptions::default()
        },
        ScyllaOptions {
            replication_factor: 0,
            ..ScyllaOptions::default()
        },
        ScyllaOptions {
            contact_points: vec![],
            ..ScyllaOptions::default()
        },
    ] {
        match ScyllaStore::connect(options.clone()).await {
            Err(StoreError::Backend(_)) => {}
            Err(other) => panic!("{options:?}: expected Backend, got {other}"),
            Ok(_) => panic!("{options:?} was accepted"),
        }
    }
}

/// A claim whose message never landed (its appender died between the claim and
/// the write, or the write is still on its way): no dedup hit; while young, a
/// retry is answered unsettled and stores nothing; once past every ack its
/// appender could make, the retry takes the key over and is stored at its own
/// seq, and a late landing of the first write never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn a_claim_without_its_message_is_unsettled_while_young_then_taken_over() -> TestResult {
    in_fresh_keyspace("claim", |options| async move {
        let store = ScyllaStore::connect(options.clone()).await?;
        let ns = Namespace::new("claim");
        let (a, b) = (ns.user(), ns.user());
        let conv = dm(&a, &b);
        let session = SessionBuilder::new()
            .known_nodes(&options.contact_points)
            .build()
            .await?;
        let ks = &options.keyspace;
        let key = |m: &chorus_store::Message| DedupKey {
            conv: m.conv.clone(),
            sender: m.from.clone(),
            client_id: m.id.clone(),
        };
        let append = |m: chorus_store::Message| {
            store.append(AppendBatch {
                messages: vec![m],
                links: vec![],
            })
        };

        // What an append that died between its claim and its batch leaves, a
        // moment ago.
        let young = message(&ns, &conv, 7, &a, "lost write");
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.dedup (conv, sender, client_id, seq, ts_ms, claimed_ms) \
                     VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (&conv, &a, &young.id, 7i64, young.ts_ms as i64, young.ts_ms as i64),
            )
            .await?;
        assert_eq!(store.find_dedup(&key(&young), young.ts_ms).await?, None);
        let mut retry = young.clone();
        retry.seq = 1_007;
        let outcome = append(retry).await?;
        let hit = chorus_store::DedupHit {
            seq: 7,
            ts_ms: young.ts_ms,
        };
        assert_eq!(outcome.of(0), chorus_store::Appended::Unsettled(hit));
        assert!(store.history(&conv, query(None, None, 10)).await?.messages.is_empty());

        // The same, a minute ago, as a keyspace from before claims carried
        // their time left it (the message's time stands in for the claim's).
        let mut old = message(&ns, &conv, 8, &a, "lost long ago");
        old.ts_ms -= 60_000;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.dedup (conv, sender, client_id, seq, ts_ms) VALUES (?, ?, ?, ?, ?)"
                ),
                (&conv, &a, &old.id, 8i64, old.ts_ms as i64),
            )
            .await?;
        assert_eq!(store.find_dedup(&key(&old), old.ts_ms + 60_000).await?, None);
        let mut retry = old.clone();
        retry.seq = 1_008;
        retry.ts_ms += 60_000;
        let outcome = append(retry.clone()).await?;
        assert_eq!(outcome.of(0), chorus_store::Appended::Stored, "taken over");
        let page = store.history(&conv, query(None, None, 10)).await?;
        assert_eq!(page.messages, vec![retry.clone()], "stored once, at the retry's seq");

        // The first write lands after all: fenced, it never shows.
        let bucket = 8i64 / BUCKET_SIZE as i64;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.messages (conv, bucket, seq, id, sender, body, ts_ms) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
                (
                    &conv,
                    bucket,
                    8i64,
                    &old.id,
                    &a,
                    &old.body,
                    old.ts_ms as i64,
                    old.ts_ms as i64 * 1_000,
                ),
            )
            .await?;
        let page = store.history(&conv, query(None, None, 10)).await?;
        assert_eq!(page.messages, vec![retry.clone()], "the late first write is fenced");

        // Once more: a duplicate of the retry.
        let mut third = old.clone();
        third.seq = 2_008;
        third.ts_ms += 61_000;
        let hit = chorus_store::DedupHit {
            seq: 1_008,
            ts_ms: retry.ts_ms,
        };
        assert_eq!(append(third).await?.of(0), chorus_store::Appended::Duplicate(hit));
        assert_eq!(store.find_dedup(&key(&old), retry.ts_ms).await?, Some(hit));
        let page = store.history(&conv, query(None, None, 10)).await?;
        assert_eq!(page.messages, vec![retry]);
        Ok(())
    })
    .await
}

/// A connected store answers its health probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Cassandra at CHORUS_CASSANDRA: scripts/test starts one and runs it"]
async fn a_reachable_database_passes_the_probe() -> TestResult {
    in_fresh_keyspace("probe", |options| async move {
        let store = ScyllaStore::connect(options).await?;
        store.probe().await?;
        Ok(())
    })
    .await
}
