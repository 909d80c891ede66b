//! The load history on fjall: `load_samples` holds `member ‖ 0 ‖ at_ms` →
//! `format ‖ expires_ms ‖ sample`, `load_members` holds `member` →
//! `format ‖ expires_ms` (the latest expiry among its samples), so that the
//! members are listed without walking their samples.
//!
//! Expiry is decided on read, to the millisecond, against the caller's `now_ms`;
//! the periodic sweep (the dedup sweep's timer, and its per-run bound) only
//! reclaims the space: it walks each member's samples oldest first and stops at
//! the first one still live, so its work is the expired samples, not the live
//! ones.

use fjall::Readable;

use super::backend;
use super::layout::{self, Space, Spaces};
use super::writer::{Staging, Swept};
use crate::load::{MAX_MEMBERS, Refusal, read_limit};
use crate::{LoadRecord, StoreError, StoreResult};

/// The first byte of both values.
const FORMAT_V1: u8 = 1;

fn encode(expires_ms: u64, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + data.len());
    value.push(FORMAT_V1);
    value.extend_from_slice(&expires_ms.to_be_bytes());
    value.extend_from_slice(data);
    value
}

/// `(expires_ms, sample)` of a stored value.
fn decode(value: &[u8]) -> StoreResult<(u64, &[u8])> {
    match value.split_first() {
        Some((&FORMAT_V1, rest)) => {
            let (expires, data) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| StoreError::Corrupt("load value shorter than 9 bytes".into()))?;
            Ok((u64::from_be_bytes(*expires), data))
        }
        Some((format, _)) => Err(StoreError::Corrupt(format!(
            "load value of unknown format {format}"
        ))),
        None => Err(StoreError::Corrupt("empty load value".into())),
    }
}

/// Whether `member` is kept and live at `now_ms`, on the overlay.
fn member_live(s: &Staging<'_>, member: &str, now_ms: u64) -> StoreResult<Option<u64>> {
    Ok(match s.get(Space::LoadMembers, member.as_bytes())? {
        Some(value) => decode(&value).ok().map(|(e, _)| e).filter(|e| *e > now_ms),
        None => None,
    })
}

/// How many members are live at `now_ms`, counting this group's staged ones.
/// The keyspace holds at most [`MAX_MEMBERS`] live members plus expired ones
/// the sweep has not reached, so this stays small.
fn live_members(s: &Staging<'_>, now_ms: u64) -> StoreResult<usize> {
    let mut count = 0;
    let staged = s.staged_keys(Space::LoadMembers);
    for guard in s.spaces().get(Space::LoadMembers).iter() {
        let (key, value) = guard.into_inner().map_err(backend)?;
        if staged.iter().any(|(k, _)| **k == *key) {
            continue;
        }
        if decode(&value).is_ok_and(|(e, _)| e > now_ms) {
            count += 1;
        }
    }
    for (key, written) in staged {
        if written && member_live(s, &String::from_utf8_lossy(&key), now_ms)?.is_some() {
            count += 1;
        }
    }
    Ok(count)
}

/// Stages an append already checked against the bounds that need no reading.
pub(super) fn stage_append(
    s: &mut Staging<'_>,
    member: &str,
    samples: &[LoadRecord],
    keep_ms: u64,
    now_ms: u64,
) -> StoreResult<()> {
    let live: Vec<&LoadRecord> = samples
        .iter()
        .filter(|r| r.expires_ms(keep_ms) > now_ms)
        .collect();
    let Some(latest) = live.iter().map(|r| r.expires_ms(keep_ms)).max() else {
        return Ok(());
    };
    let known = member_live(s, member, now_ms)?;
    if known.is_none() && live_members(s, now_ms)? >= MAX_MEMBERS {
        return Err(Refusal::Members.refuse(format!(
            "member {member:?} would be one past the {MAX_MEMBERS} members kept"
        )));
    }
    for record in live {
        s.put(
            Space::LoadSamples,
            layout::load_sample(member, record.at_ms),
            encode(record.expires_ms(keep_ms), &record.data),
        );
    }
    let expires = known.map_or(latest, |k| k.max(latest));
    s.put(
        Space::LoadMembers,
        member.as_bytes().to_vec(),
        encode(expires, &[]),
    );
    Ok(())
}

/// Stages the deletion of samples expired at `now_ms`, and of members with
/// none left, looking at no more than `limit` entries.
pub(super) fn stage_sweep(s: &mut Staging<'_>, now_ms: u64, limit: usize) -> StoreResult<Swept> {
    let mut swept = Swept {
        scanned: 0,
        removed: 0,
    };
    let members = s.spaces().get(Space::LoadMembers).clone();
    let samples = s.spaces().get(Space::LoadSamples).clone();
    for guard in members.iter() {
        if swept.scanned >= limit {
            break;
        }
        let (member, value) = guard.into_inner().map_err(backend)?;
        swept.scanned += 1;
        let member_expired = decode(&value).map_or(true, |(e, _)| e <= now_ms);
        let Ok(name) = std::str::from_utf8(&member) else {
            s.delete(Space::LoadMembers, member.to_vec());
            continue;
        };
        let mut all_gone = true;
        for guard in samples.range(layout::prefix(name)..layout::prefix_end(name)) {
            if swept.scanned >= limit {
                all_gone = false;
                break;
            }
            let (key, value) = guard.into_inner().map_err(backend)?;
            swept.scanned += 1;
            // A value that does not decode is garbage and goes too, so one bad
            // record cannot wedge the sweep.
            if decode(&value).map_or(true, |(e, _)| e <= now_ms) {
                s.delete(Space::LoadSamples, key.to_vec());
                swept.removed += 1;
            } else {
                all_gone = false;
                break;
            }
        }
        if member_expired && all_gone {
            s.delete(Space::LoadMembers, member.to_vec());
        }
    }
    Ok(swept)
}

/// The members live at `now_ms`, in id order, at most [`MAX_MEMBERS`].
pub(super) fn members(spaces: &Spaces, now_ms: u64) -> StoreResult<Vec<String>> {
    let snapshot = spaces.snapshot();
    let mut out = Vec::new();
    for guard in snapshot.iter(spaces.get(Space::LoadMembers)) {
        if out.len() >= MAX_MEMBERS {
            break;
        }
        let (key, value) = guard.into_inner().map_err(backend)?;
        let (expires, _) = decode(&value)?;
        if expires <= now_ms {
            continue;
        }
        let member = String::from_utf8(key.to_vec())
            .map_err(|_| StoreError::Corrupt("load member id is not UTF-8".into()))?;
        out.push(member);
    }
    Ok(out)
}

/// A member's samples after `after_ms`, live at `now_ms`, oldest first.
pub(super) fn history(
    spaces: &Spaces,
    member: &str,
    after_ms: u64,
    limit: usize,
    now_ms: u64,
) -> StoreResult<Vec<LoadRecord>> {
    let limit = read_limit(limit);
    let mut out = Vec::new();
    let Some(first) = after_ms.checked_add(1) else {
        return Ok(out);
    };
    let snapshot = spaces.snapshot();
    let prefix_len = layout::prefix(member).len();
    let range = layout::load_sample(member, first)..layout::prefix_end(member);
    for guard in snapshot.range(spaces.get(Space::LoadSamples), range) {
        if out.len() >= limit {
            break;
        }
        let (key, value) = guard.into_inner().map_err(backend)?;
        let (expires, data) = decode(&value)?;
        if expires <= now_ms {
            continue;
        }
        out.push(LoadRecord {
            at_ms: layout::message_seq(&key, prefix_len)?,
            data: data.to_vec(),
        });
    }
    Ok(out)
}
