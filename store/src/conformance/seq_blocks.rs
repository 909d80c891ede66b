//! Seq blocks: start at 1 or later, have the size asked for, and never overlap —
//! not even when many callers allocate at once.

use tokio::task::JoinSet;

use super::{CheckResult, Namespace, SharedStore, dm};
use crate::SeqBlock;

/// Blocks of one conversation follow each other; another conversation's blocks
/// are independent of them.
pub async fn blocks_start_at_one_and_advance(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let conv = dm(&ns.user(), &ns.user());
    let first = store.allocate_seq_block(&conv, 100).await?;
    ensure!(
        first.start >= 1,
        "first block starts at {} (< 1)",
        first.start
    );
    ensure_eq!(
        first.end.checked_sub(first.start),
        Some(100),
        "size of {first:?}"
    );
    let second = store.allocate_seq_block(&conv, 1).await?;
    ensure!(second.start >= first.end, "{second:?} overlaps {first:?}");
    ensure_eq!(
        second.end.checked_sub(second.start),
        Some(1),
        "size of {second:?}"
    );

    let other = store
        .allocate_seq_block(&dm(&ns.user(), &ns.user()), 10)
        .await?;
    ensure!(
        other.start >= 1,
        "another conversation's block starts at {}",
        other.start
    );
    ensure_eq!(
        other.end.checked_sub(other.start),
        Some(10),
        "size of {other:?}"
    );
    Ok(())
}

/// Many tasks allocating blocks of assorted sizes in one conversation at once get
/// pairwise disjoint blocks.
pub async fn blocks_disjoint_under_concurrency(store: &SharedStore, ns: &Namespace) -> CheckResult {
    const TASKS: u64 = 40;
    const PER_TASK: u64 = 5;
    let conv = dm(&ns.user(), &ns.user());
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let (store, conv) = (SharedStore::clone(store), conv.clone());
        tasks.spawn(async move {
            let mut blocks = Vec::new();
            for i in 0..PER_TASK {
                let size = 1 + (t * PER_TASK + i) % 7;
                blocks.push((size, store.allocate_seq_block(&conv, size).await?));
            }
            Ok::<_, crate::StoreError>(blocks)
        });
    }
    let mut blocks: Vec<SeqBlock> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for (size, block) in joined?? {
            ensure!(block.start >= 1, "{block:?} starts below 1");
            ensure_eq!(
                block.end.checked_sub(block.start),
                Some(size),
                "size of {block:?}"
            );
            blocks.push(block);
        }
    }
    ensure_eq!(blocks.len() as u64, TASKS * PER_TASK, "blocks handed out");
    blocks.sort_by_key(|b| b.start);
    for pair in blocks.windows(2) {
        if let [earlier, later] = pair {
            ensure!(later.start >= earlier.end, "{later:?} overlaps {earlier:?}");
        }
    }
    Ok(())
}
