//! The conformance suite on a fresh embedded store, plus what only the embedded
//! backend promises: group commit sharing fsyncs, and the dedup sweep.

use std::sync::Arc;

use chorus_store::conformance::{self, Namespace, SharedStore, dm, message, now_ms};
use chorus_store::embedded::{EmbeddedOptions, EmbeddedStore};
use chorus_store::{AppendBatch, DEDUP_WINDOW_MS, DedupKey, LoadRecord, MessageStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_passes_the_conformance_suite() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store: SharedStore = Arc::new(EmbeddedStore::open(dir.path())?);
    if let Err(failures) = conformance::run_all(&store, &Namespace::new("embedded")).await {
        let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
        panic!(
            "{} conformance check(s) failed:\n{}",
            failures.len(),
            report.join("\n")
        );
    }
    Ok(())
}

/// Concurrent appenders share fsyncs, and every append that returned had its
/// group fsync'd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() -> TestResult {
    const APPENDS: u64 = 200;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path())?);
    let ns = Namespace::new("groupcommit");
    let before = store.commit_stats();

    let mut tasks = tokio::task::JoinSet::new();
    for seq in 1..=APPENDS {
        let conv = dm(&ns.user(), &ns.user());
        let batch = AppendBatch {
            messages: vec![message(&ns, &conv, seq, "someone", "hi")],
            links: vec![],
        };
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.append(batch).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }

    let after = store.commit_stats();
    let fsyncs = after.fsyncs - before.fsyncs;
    let requests = after.requests - before.requests;
    println!("{APPENDS} concurrent appends: {fsyncs} fsyncs");
    assert_eq!(
        requests, APPENDS,
        "every append went through a group commit"
    );
    assert!(fsyncs >= 1, "appends were fsync'd");
    assert!(
        fsyncs < APPENDS,
        "{APPENDS} concurrent appends should share fsyncs, got {fsyncs}"
    );
    Ok(())
}

/// The sweep deletes expired dedup entries and only those; `find_dedup` then
/// misses them even when asked with a `now` inside their window.
#[tokio::test]
async fn sweep_removes_only_expired_dedup_entries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    let ns = Namespace::new("sweep");
    let (a, b) = (ns.user(), ns.user());
    let conv = dm(&a, &b);
    let now = now_ms();
    let mut old = message(&ns, &conv, 1, &a, "old");
    old.ts_ms = now - 1_000;
    let fresh = message(&ns, &conv, 2, &a, "fresh");
    store
        .append(AppendBatch {
            messages: vec![old.clone(), fresh.clone()],
            links: vec![],
        })
        .await?;
    let key = |m: &chorus_store::Message| DedupKey {
        conv: m.conv.clone(),
        sender: m.from.clone(),
        client_id: m.id.clone(),
    };
    assert!(store.find_dedup(&key(&old), now).await?.is_some());

    // At `now + window`, `old` has been out of the window for a second; `fresh`
    // (accepted at or after `now`) has not.
    let removed = store.sweep_expired_dedup(now + DEDUP_WINDOW_MS).await?;
    assert_eq!(removed, 1);
    assert_eq!(store.find_dedup(&key(&old), now).await?, None);
    assert!(store.find_dedup(&key(&fresh), now).await?.is_some());
    // Messages themselves are untouched.
    assert_eq!(store.last_seq(&conv).await?, 2);
    assert_eq!(store.sweep_expired_dedup(now + DEDUP_WINDOW_MS).await?, 0);
    Ok(())
}

/// With `sync` off nothing is fsync'd per group, and the store still works.
#[tokio::test]
async fn unsynced_mode_skips_fsyncs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let options = EmbeddedOptions {
        sync: false,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), options)?;
    let ns = Namespace::new("nosync");
    let conv = dm(&ns.user(), &ns.user());
    for seq in 1..=5 {
        store
            .append(AppendBatch {
                messages: vec![message(&ns, &conv, seq, "x", "y")],
                links: vec![],
            })
            .await?;
    }
    assert_eq!(store.commit_stats().fsyncs, 0);
    assert_eq!(store.last_seq(&conv).await?, 5);
    store.flush().await?;
    assert_eq!(
        store.commit_stats().fsyncs,
        1,
        "flush fsyncs even when groups do not"
    );
    Ok(())
}

/// A second open of a directory in use is refused as unavailable, not a panic.
#[tokio::test]
async fn second_open_of_a_directory_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let _store = EmbeddedStore::open(dir.path())?;
    match EmbeddedStore::open(dir.path()) {
        Err(chorus_store::StoreError::Unavailable(_)) => Ok(()),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("a locked directory opened twice"),
    }
}

/// The sweep deletes expired load samples oldest first and stops at the first
/// live one; a member is deleted once none of its samples is left. Shown by
/// reading at an earlier time after the sweep: what the sweep removed is gone
/// even for a reader to whom it would still be live.
#[tokio::test]
async fn sweep_removes_only_expired_load_samples() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    let now = now_ms();
    let keep = 60_000;
    let record = |at_ms: u64| LoadRecord {
        at_ms,
        data: b"{}".to_vec(),
    };
    // a: samples expiring at now + 10 s, + 20 s, + 30 s; b: one at now + 10 s.
    let a: Vec<LoadRecord> = [50_000, 40_000, 30_000]
        .iter()
        .map(|ago| record(now - ago))
        .collect();
    store.append_load_samples("a", &a, keep, now).await?;
    store
        .append_load_samples("b", &[record(now - 50_000)], keep, now)
        .await?;

    assert_eq!(
        store.sweep_expired_load(now).await?,
        0,
        "nothing expired yet"
    );
    assert_eq!(
        store.sweep_expired_load(now + 15_000).await?,
        2,
        "a's first, b's one"
    );
    let at_first = store.load_history("a", 0, 10, now).await?;
    assert_eq!(
        at_first.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
        vec![now - 40_000, now - 30_000],
        "the swept samples are gone, the live ones kept"
    );
    assert!(store.load_history("b", 0, 10, now).await?.is_empty());
    assert_eq!(
        store.load_members(now).await?,
        vec!["a".to_string()],
        "b went with its samples"
    );
    assert_eq!(store.sweep_expired_load(now + 60_000).await?, 2);
    assert!(store.load_members(now).await?.is_empty());
    Ok(())
}
