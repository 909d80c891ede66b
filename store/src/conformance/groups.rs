//! Groups: creation (the first creator of an id wins), reads, and updates that
//! link added members and unlink removed ones.

use tokio::task::JoinSet;

use super::{CheckResult, Namespace, SharedStore, group_conv};
use crate::GroupRecord;

/// Whether `user`'s conversation list holds `conv`.
async fn is_linked(store: &SharedStore, user: &str, conv: &str) -> Result<bool, super::Violation> {
    let items = store.conversations(user).await?;
    Ok(items.iter().any(|item| item.conv == conv))
}

fn record(id: &str, name: &str, owner: &str, members: &[&String]) -> GroupRecord {
    let mut members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    members.sort();
    members.dedup();
    GroupRecord {
        id: id.to_string(),
        name: name.to_string(),
        owner: owner.to_string(),
        members,
    }
}

/// A created group reads back as created and is in every member's list (with
/// `last_seq` 0); an unknown id reads as absent.
pub async fn create_then_read(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (owner, a, b, outsider) = (ns.user(), ns.user(), ns.user(), ns.user());
    let gid = ns.group_id();
    let group = record(&gid, "Book club ✓", &owner, &[&owner, &a, &b]);
    ensure!(
        store.create_group(&group).await?,
        "create_group of a new id"
    );
    ensure_eq!(
        store.group(&gid).await?,
        Some(group.clone()),
        "group after create"
    );

    let conv = group_conv(&gid);
    for member in &group.members {
        let items = store.conversations(member).await?;
        let item = items.iter().find(|item| item.conv == conv);
        ensure!(item.is_some(), "member {member} is linked to {conv}");
        ensure_eq!(
            item.map(|i| (i.last_seq, i.read_seq)),
            Some((0, 0)),
            "{conv} for {member}"
        );
    }
    ensure!(
        !is_linked(store, &outsider, &conv).await?,
        "a non-member is not linked"
    );
    ensure_eq!(store.group(&ns.group_id()).await?, None, "an unknown group");
    Ok(())
}

/// A second create of a taken id answers `false` and changes nothing, also when
/// many creators race for one id: exactly one wins.
pub async fn create_is_first_wins(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (owner, intruder) = (ns.user(), ns.user());
    let gid = ns.group_id();
    let group = record(&gid, "first", &owner, &[&owner]);
    ensure!(store.create_group(&group).await?, "first create");
    let second = record(&gid, "second", &intruder, &[&intruder]);
    ensure!(
        !store.create_group(&second).await?,
        "second create of a taken id"
    );
    ensure_eq!(
        store.group(&gid).await?,
        Some(group),
        "group after a refused create"
    );
    ensure!(
        !is_linked(store, &intruder, &group_conv(&gid)).await?,
        "a refused create links nobody"
    );

    let raced = ns.group_id();
    let mut tasks = JoinSet::new();
    for i in 0..16 {
        let creator = ns.user();
        let group = record(&raced, &format!("racer {i}"), &creator, &[&creator]);
        let store = SharedStore::clone(store);
        tasks.spawn(async move { store.create_group(&group).await.map(|won| (won, group)) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (won, group) = joined??;
        if won {
            winners.push(group);
        }
    }
    ensure_eq!(winners.len(), 1, "winners of a racing create");
    ensure_eq!(
        store.group(&raced).await?,
        winners.pop(),
        "the stored group is the winner's"
    );
    Ok(())
}

/// An update replaces name, owner and members, links `added`, unlinks `removed`,
/// and leaves other members linked.
pub async fn update_links_and_unlinks(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (owner, stays, leaves, joins) = (ns.user(), ns.user(), ns.user(), ns.user());
    let gid = ns.group_id();
    let conv = group_conv(&gid);
    let group = record(&gid, "before", &owner, &[&owner, &stays, &leaves]);
    ensure!(store.create_group(&group).await?, "create");

    let updated = record(&gid, "after", &stays, &[&stays, &joins]);
    store
        .update_group(
            &updated,
            std::slice::from_ref(&joins),
            &[leaves.clone(), owner.clone()],
        )
        .await?;
    ensure_eq!(
        store.group(&gid).await?,
        Some(updated),
        "group after update"
    );
    ensure!(
        is_linked(store, &stays, &conv).await?,
        "a remaining member stays linked"
    );
    ensure!(
        is_linked(store, &joins, &conv).await?,
        "an added member is linked"
    );
    ensure!(
        !is_linked(store, &leaves, &conv).await?,
        "a removed member is unlinked"
    );
    ensure!(
        !is_linked(store, &owner, &conv).await?,
        "the removed owner is unlinked"
    );
    Ok(())
}

/// `count_groups` counts the groups a user is linked to — not dms, not other
/// users' groups — and stops at `up_to`; leaving a group lowers it.
pub async fn count_groups_to_a_bound(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let (user, peer, other) = (ns.user(), ns.user(), ns.user());
    ensure_eq!(
        store.count_groups(&user, 10).await?,
        0,
        "a user in no group"
    );
    let mut gids = Vec::new();
    for i in 0..5 {
        let gid = ns.group_id();
        let group = record(&gid, &format!("g{i}"), &user, &[&user, &peer]);
        ensure!(store.create_group(&group).await?, "create {gid}");
        gids.push(group);
    }
    let theirs = record(&ns.group_id(), "not theirs", &other, &[&other]);
    ensure!(store.create_group(&theirs).await?, "create another's group");
    // A dm is a conversation but not a group.
    store
        .append(crate::AppendBatch {
            messages: vec![super::message(ns, &super::dm(&user, &peer), 1, &user, "hi")],
            links: vec![
                (user.clone(), super::dm(&user, &peer)),
                (peer.clone(), super::dm(&user, &peer)),
            ],
        })
        .await?;
    ensure_eq!(store.count_groups(&user, 10).await?, 5, "five groups");
    ensure_eq!(store.count_groups(&user, 5).await?, 5, "up to exactly five");
    ensure_eq!(
        store.count_groups(&user, 3).await?,
        3,
        "counting stops at 3"
    );
    ensure_eq!(store.count_groups(&user, 0).await?, 0, "counting to zero");
    ensure_eq!(store.count_groups(&other, 10).await?, 1, "the other user");

    let mut left = gids.remove(0);
    left.members.retain(|m| *m != user);
    left.owner = peer.clone();
    store
        .update_group(&left, &[], std::slice::from_ref(&user))
        .await?;
    ensure_eq!(store.count_groups(&user, 10).await?, 4, "after leaving one");
    ensure_eq!(
        store.count_groups(&peer, 10).await?,
        5,
        "the peer stays in five"
    );
    Ok(())
}
