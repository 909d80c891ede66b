//! Last-seen times (presence's `last_seen_ms`): absent until written, then the
//! latest time written, whatever order the writes arrive in.

use super::{CheckResult, Namespace, SharedStore};

/// A user never recorded has none; each later time replaces the stored one,
/// an earlier one does not.
pub async fn only_a_later_time_replaces(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let user = ns.user();
    ensure_eq!(store.last_seen(&user).await?, None, "a user never seen");
    store.set_last_seen(&user, 1_000).await?;
    ensure_eq!(
        store.last_seen(&user).await?,
        Some(1_000),
        "after one close"
    );
    store.set_last_seen(&user, 999).await?;
    ensure_eq!(
        store.last_seen(&user).await?,
        Some(1_000),
        "after an earlier time arrived late"
    );
    store.set_last_seen(&user, 1_700_000_000_000).await?;
    ensure_eq!(
        store.last_seen(&user).await?,
        Some(1_700_000_000_000),
        "after a later close"
    );
    Ok(())
}

/// Users keep their own times, including users whose ids share a prefix;
/// concurrent writes of one user leave the latest.
pub async fn users_stay_apart_and_racing_writes_keep_the_latest(
    store: &SharedStore,
    ns: &Namespace,
) -> CheckResult {
    let first = ns.user();
    let longer = format!("{first}x");
    store.set_last_seen(&first, 10).await?;
    store.set_last_seen(&longer, 20).await?;
    ensure_eq!(store.last_seen(&first).await?, Some(10), "the first user");
    ensure_eq!(store.last_seen(&longer).await?, Some(20), "the longer id");

    let racer = ns.user();
    let mut tasks = Vec::new();
    for at in (1..=32u64).rev() {
        let (store, racer) = (store.clone(), racer.clone());
        tasks.push(tokio::spawn(async move {
            store.set_last_seen(&racer, at * 1_000).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    ensure_eq!(
        store.last_seen(&racer).await?,
        Some(32_000),
        "after 32 racing writes"
    );
    Ok(())
}
