//! Group records and the links of their members.
//!
//! A group id is claimed with `INSERT ... IF NOT EXISTS` (first creator wins,
//! however many race), then its members are linked. Updates are plain writes,
//! batched with the link changes they imply: they come from the group's owner
//! entity after the group exists, so they never race the create.

use std::time::Duration;

use chorus_wire::ConvId;
use chorus_wire::backoff::Backoff;

use super::ScyllaStore;
use super::append::Batches;
use super::error::{check_id, is_transient, query_error};
use super::lwt::LwtOutcome;
use crate::{GroupRecord, StoreError, StoreResult};

/// How many times a create whose outcome is unknown (a timeout) is tried again.
const CREATE_RETRIES: u32 = 3;

/// The pause before create attempt `n` after a timeout.
const CREATE_RETRY: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));

/// Creates a group if its id is free, and links its members.
pub(super) async fn create(store: &ScyllaStore, group: &GroupRecord) -> StoreResult<bool> {
    check_group(group)?;
    let what = "creating a group";
    // After a timeout the first attempt may have been applied without our
    // hearing of it; a retry that then finds exactly our record knows it won.
    let mut maybe_ours = false;
    let mut attempt = 0;
    loop {
        let result = store
            .session
            .execute_unpaged(
                &store.st.insert_group,
                (&group.id, &group.name, &group.owner, &group.members),
            )
            .await;
        match result {
            Ok(answer) => {
                let outcome = LwtOutcome::parse(what, answer)?;
                let won = outcome.applied || (maybe_ours && is_same(&outcome, group));
                if !won {
                    return Ok(false);
                }
                break;
            }
            Err(e) if is_transient(&e) && attempt < CREATE_RETRIES => {
                attempt += 1;
                maybe_ours = true;
                tracing::debug!(group = %group.id, attempt, error = %e, "group create failed, retrying");
                tokio::time::sleep(CREATE_RETRY.random_delay(attempt)).await;
            }
            Err(e) => return Err(query_error(what, e)),
        }
    }
    // The id is ours. Links are idempotent inserts; should this write fail, the
    // caller gets the error and nothing is acked, and the members are linked
    // again by the group's next update or message.
    let conv = ConvId::Group(group.id.clone()).to_string();
    let mut out = Batches::new();
    for member in &group.members {
        out.push_rotating(
            &store.st.insert_link,
            (member.clone(), conv.clone()),
            member.len() + conv.len(),
        );
    }
    out.run(&store.session, "linking a new group's members")
        .await?;
    Ok(true)
}

/// Whether the row an LWT found is exactly this record.
fn is_same(found: &LwtOutcome, group: &GroupRecord) -> bool {
    found.text("name") == Some(group.name.as_str())
        && found.text("owner") == Some(group.owner.as_str())
        && found.text_list("members").as_ref() == Some(&group.members)
}

/// A group's state, if it exists.
pub(super) async fn get(store: &ScyllaStore, id: &str) -> StoreResult<Option<GroupRecord>> {
    check_id("group id", id)?;
    type GroupRow = (Option<String>, Option<String>, Option<Vec<String>>);
    let row: Option<GroupRow> = store
        .one_row("reading a group", &store.st.select_group, (id,))
        .await?;
    let Some((name, owner, members)) = row else {
        return Ok(None);
    };
    let (Some(name), Some(owner)) = (name, owner) else {
        return Err(StoreError::Corrupt(format!(
            "group {id} has no name or owner"
        )));
    };
    Ok(Some(GroupRecord {
        id: id.to_string(),
        name,
        owner,
        // An empty frozen list may come back as null.
        members: members.unwrap_or_default(),
    }))
}

/// Replaces a group's record, linking `added` and unlinking `removed`, in one
/// logged batch (several for a very large change).
pub(super) async fn update(
    store: &ScyllaStore,
    group: &GroupRecord,
    added: &[String],
    removed: &[String],
) -> StoreResult<()> {
    check_group(group)?;
    for user in added.iter().chain(removed) {
        check_id("user id", user)?;
    }
    let conv = ConvId::Group(group.id.clone()).to_string();
    let mut out = Batches::new();
    out.push_rotating(
        &store.st.update_group,
        (
            group.name.clone(),
            group.owner.clone(),
            group.members.clone(),
            group.id.clone(),
        ),
        group.name.len() + group.owner.len() + group.members.iter().map(String::len).sum::<usize>(),
    );
    for user in removed {
        // Statements of one batch share a timestamp, and then a delete beats an
        // insert: a user both removed and added ends up added, as the embedded
        // backend does by applying removals first.
        if added.contains(user) {
            continue;
        }
        out.push_rotating(
            &store.st.delete_link,
            (user.clone(), conv.clone()),
            user.len() + conv.len(),
        );
    }
    for user in added {
        out.push_rotating(
            &store.st.insert_link,
            (user.clone(), conv.clone()),
            user.len() + conv.len(),
        );
    }
    out.run(&store.session, "updating a group").await
}

/// The ids a group record carries must all be storable.
fn check_group(group: &GroupRecord) -> StoreResult<()> {
    check_id("group id", &group.id)?;
    for member in &group.members {
        check_id("group member", member)?;
    }
    Ok(())
}
