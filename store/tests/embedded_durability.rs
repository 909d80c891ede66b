//! What the embedded store keeps across a restart: everything, after a clean close
//! or a drop; every acknowledged append, after `kill -9`; and the seq allocator
//! resumes past every block it handed out.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chorus_store::conformance::{Namespace, dm, group_conv, message, query, seqs};
use chorus_store::embedded::EmbeddedStore;
use chorus_store::{
    AppendBatch, ConversationItem, DedupKey, GroupRecord, MessageStore, RoomSettings,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Set in the child process of the kill test: the directory it writes to.
const CHILD_DIR_ENV: &str = "CHORUS_STORE_KILL_CHILD_DIR";

/// The conversation the kill child writes to.
const KILL_CONV: &str = "dm:a:b";

#[tokio::test]
async fn everything_survives_close_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ns = Namespace::new("reopen");
    let (alice, bob) = (ns.user(), ns.user());
    let conv = dm(&alice, &bob);
    let gid = ns.group_id();
    let group = GroupRecord {
        id: gid.clone(),
        name: "g".into(),
        owner: alice.clone(),
        members: {
            let mut m = vec![alice.clone(), bob.clone()];
            m.sort();
            m
        },
    };
    let written: Vec<_> = (1..=30)
        .map(|seq| message(&ns, &conv, seq, &alice, "durable"))
        .collect();
    let room = ns.room();
    let slow = RoomSettings {
        slow_mode_s: Some(30),
    };

    let block = {
        let store = EmbeddedStore::open(dir.path())?;
        let block = store.allocate_seq_block(&conv, 1000).await?;
        store
            .append(AppendBatch {
                messages: written.clone(),
                links: vec![(alice.clone(), conv.clone()), (bob.clone(), conv.clone())],
            })
            .await?;
        assert_eq!(store.set_read(&bob, &conv, 12).await?, 12);
        assert!(store.create_group(&group).await?);
        store.set_room_settings(&room, &slow).await?;
        store.close()?;
        block
    };

    let store = EmbeddedStore::open(dir.path())?;
    let page = store.history(&conv, query(None, None, 200)).await?;
    assert_eq!(page.messages, written);
    assert_eq!(store.last_seq(&conv).await?, 30);
    assert_eq!(store.read_seq(&bob, &conv).await?, 12);
    assert_eq!(store.group(&gid).await?, Some(group));
    assert_eq!(store.room_settings(&room).await?, slow);
    let bobs = store.conversations(&bob).await?;
    assert_eq!(bobs, {
        let mut want = vec![
            ConversationItem {
                conv: conv.clone(),
                last_seq: 30,
                read_seq: 12,
            },
            ConversationItem {
                conv: group_conv(&gid),
                last_seq: 0,
                read_seq: 0,
            },
        ];
        want.sort_by(|a, b| a.conv.cmp(&b.conv));
        want
    });
    let key = DedupKey {
        conv: conv.clone(),
        sender: alice.clone(),
        client_id: written[4].id.clone(),
    };
    assert_eq!(
        store
            .find_dedup(&key, written[4].ts_ms)
            .await?
            .map(|h| h.seq),
        Some(5)
    );

    let next = store.allocate_seq_block(&conv, 10).await?;
    assert!(next.start >= block.end, "{next:?} reuses seqs of {block:?}");
    Ok(())
}

/// Dropping the store without `close` still answers, fsyncs and unlocks.
#[tokio::test]
async fn dropping_the_store_keeps_writes_and_unlocks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ns = Namespace::new("drop");
    let conv = dm(&ns.user(), &ns.user());
    let mut blocks = Vec::new();
    for round in 0..3u64 {
        let store = EmbeddedStore::open(dir.path())?;
        blocks.push(store.allocate_seq_block(&conv, 5).await?);
        store
            .append(AppendBatch {
                messages: vec![message(&ns, &conv, round + 1, "x", "y")],
                links: vec![],
            })
            .await?;
        drop(store);
    }
    let store = EmbeddedStore::open(dir.path())?;
    let page = store.history(&conv, query(Some(0), None, 10)).await?;
    assert_eq!(seqs(&page.messages), vec![1, 2, 3]);
    blocks.push(store.allocate_seq_block(&conv, 5).await?);
    for pair in blocks.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "{:?} overlaps {:?}",
            pair[1],
            pair[0]
        );
    }
    Ok(())
}

/// The child half of [`acknowledged_appends_survive_kill_9`]: appends forever from
/// several tasks and prints each acknowledged seq. Does nothing unless started by
/// that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_child() -> TestResult {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return Ok(());
    };
    let store = Arc::new(EmbeddedStore::open(Path::new(&dir))?);
    let ns = Arc::new(Namespace::new("kill"));
    let next = Arc::new(AtomicU64::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, ns, next) = (Arc::clone(&store), Arc::clone(&ns), Arc::clone(&next));
        tasks.spawn(append_forever(store, ns, next));
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

/// One appender of the kill child: returns only on a store error.
async fn append_forever(
    store: Arc<EmbeddedStore>,
    ns: Arc<Namespace>,
    next: Arc<AtomicU64>,
) -> Result<(), chorus_store::StoreError> {
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let m = message(&ns, KILL_CONV, seq, "a", &format!("body {seq}"));
        store
            .append(AppendBatch {
                messages: vec![m],
                links: vec![("a".into(), KILL_CONV.into())],
            })
            .await?;
        // Printed only once the append has returned: each line is an ack.
        println!("acked {seq}");
    }
}

/// Runs [`kill_9_child`] in a child process of this test binary, kills it with
/// SIGKILL once it has acknowledged a few hundred appends, and checks that every
/// acknowledged message is in the reopened store.
#[test]
fn acknowledged_appends_survive_kill_9() -> TestResult {
    const ACKS_BEFORE_KILL: usize = 300;
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["kill_9_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(seq) = line.strip_prefix("acked ") {
            acked.push(seq.trim().parse::<u64>()?);
            if acked.len() == ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no final fsync.
    child.kill()?;
    child.wait()?;
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path())?;
        let (mut stored, mut after) = (Vec::new(), 0);
        loop {
            let page = store
                .history(KILL_CONV, query(Some(after), None, 200))
                .await?;
            stored.extend(seqs(&page.messages));
            match page.messages.last() {
                Some(last) if page.more => after = last.seq,
                _ => break,
            }
        }
        for seq in &acked {
            assert!(
                stored.binary_search(seq).is_ok(),
                "acked seq {seq} lost in kill -9"
            );
        }
        let last = store.last_seq(KILL_CONV).await?;
        assert!(
            acked.iter().all(|&s| s <= last),
            "last_seq {last} is behind the acks"
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
