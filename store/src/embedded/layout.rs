//! Where each kind of record lives: one fjall keyspace per kind, and the key layout
//! inside it.
//!
//! Every multi-part key joins its parts with a `0x00` byte, which no id can contain
//! (ids are `[A-Za-z0-9_.-]`, conversation ids add `:`), so a prefix scan over
//! `part ‖ 0x00` never strays into a longer id sharing that prefix. Integers are
//! big-endian so that byte order is numeric order and range scans come out sorted.

use std::sync::Arc;

use parking_lot::RwLock;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, Snapshot};

use crate::{StoreError, StoreResult};

/// Joins the parts of a composite key.
const SEP: u8 = 0x00;

/// The record kinds, each in its own keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Space {
    /// `conv ‖ 0 ‖ seq` → message (id, from, body, ts).
    Messages,
    /// `conv` → highest seq stored.
    ConvMeta,
    /// `user ‖ 0 ‖ conv` → nothing: the user's conversation list.
    UserConvs,
    /// `user ‖ 0 ‖ conv` → read position.
    ReadPos,
    /// `group id` → group record.
    Groups,
    /// `conv ‖ 0 ‖ sender ‖ 0 ‖ client id` → (seq, ts).
    Dedup,
    /// `ts ‖ dedup key` → nothing: lets the sweep find expired dedup entries
    /// without scanning the live ones.
    DedupByTime,
    /// `conv` → first seq not yet handed out.
    SeqAlloc,
    /// `room id` → an operator's room settings (absent: all default).
    RoomSettings,
    /// `member ‖ 0 ‖ at_ms` → (expires, sample): the load history.
    LoadSamples,
    /// `member` → when its last sample expires: the members of the load
    /// history, listed without scanning their samples.
    LoadMembers,
    /// `user` → when the user's last session closed (ms since the epoch).
    LastSeen,
}

/// Handles on every keyspace of the store.
#[derive(Clone)]
pub(super) struct Spaces {
    /// For snapshots: a read sees whole group commits or nothing of them.
    db: Database,
    /// The snapshot multi-key reads use: opened by the writer after its last
    /// commit, so it holds whole group commits only (see [`Spaces::snapshot`]).
    published: Arc<RwLock<Arc<Snapshot>>>,
    messages: Keyspace,
    conv_meta: Keyspace,
    user_convs: Keyspace,
    read_pos: Keyspace,
    groups: Keyspace,
    dedup: Keyspace,
    dedup_by_time: Keyspace,
    seq_alloc: Keyspace,
    room_settings: Keyspace,
    load_samples: Keyspace,
    load_members: Keyspace,
    last_seen: Keyspace,
}

impl Spaces {
    /// Opens (creating on first use) every keyspace.
    pub(super) fn open(db: &Database, memtable_bytes: u64) -> fjall::Result<Self> {
        let open = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
            })
        };
        Ok(Self {
            db: db.clone(),
            published: Arc::new(RwLock::new(Arc::new(db.snapshot()))),
            messages: open("messages")?,
            conv_meta: open("conv_meta")?,
            user_convs: open("user_convs")?,
            read_pos: open("read_pos")?,
            groups: open("groups")?,
            dedup: open("dedup")?,
            dedup_by_time: open("dedup_by_time")?,
            seq_alloc: open("seq_alloc")?,
            room_settings: open("room_settings")?,
            load_samples: open("load_samples")?,
            load_members: open("load_members")?,
            last_seen: open("last_seen")?,
        })
    }

    /// A view of whole group commits for reads that span keys (history pages,
    /// conversation lists).
    ///
    /// A keyspace read outside a snapshot sees the latest version of each key,
    /// including the keys of a group commit the writer is applying at that moment.
    /// A snapshot opened at any moment is not enough either: fjall publishes a
    /// batch to new snapshots once it is applied, but a memtable flush or
    /// compaction that finishes meanwhile on one of fjall's threads raises the
    /// visible seqno too, past the batch still being applied. Either way a history
    /// page could hold a later message of a conversation without an earlier one,
    /// and the SDK, which trusts a page as complete, would skip the missing ones.
    ///
    /// So the writer, the only one who writes, opens a snapshot after each commit
    /// and before answering it ([`Spaces::publish`]), and reads use the latest. A
    /// read never waits for a commit, and a read after an ack sees what was acked.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.published.read())
    }

    /// Makes everything committed so far visible to [`Spaces::snapshot`]. Called
    /// by the writer thread only, between its commits.
    pub(super) fn publish(&self) {
        let latest = Arc::new(self.db.snapshot());
        *self.published.write() = latest;
    }

    /// A view for a lookup of one key: each key's latest version is whole (fjall
    /// applies a batch after writing its journal, and fsyncs it first when the
    /// store runs with `sync`), so a point read can take the newest state.
    pub(super) fn point_snapshot(&self) -> Snapshot {
        self.db.snapshot()
    }

    /// The keyspace holding one kind of record.
    pub(super) fn get(&self, space: Space) -> &Keyspace {
        match space {
            Space::Messages => &self.messages,
            Space::ConvMeta => &self.conv_meta,
            Space::UserConvs => &self.user_convs,
            Space::ReadPos => &self.read_pos,
            Space::Groups => &self.groups,
            Space::Dedup => &self.dedup,
            Space::DedupByTime => &self.dedup_by_time,
            Space::SeqAlloc => &self.seq_alloc,
            Space::RoomSettings => &self.room_settings,
            Space::LoadSamples => &self.load_samples,
            Space::LoadMembers => &self.load_members,
            Space::LastSeen => &self.last_seen,
        }
    }
}

/// Rejects an id that would break the key layout. The protocol's id rules already
/// exclude `0x00`; this guards the store against a caller that skipped them.
pub(super) fn check_id(what: &str, id: &str) -> StoreResult<()> {
    if id.as_bytes().contains(&SEP) {
        return Err(StoreError::Backend(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

/// `a ‖ 0`: the prefix shared by every key whose first part is `a`.
pub(super) fn prefix(a: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(SEP);
    key
}

/// `a ‖ 1`: the first key after every key that starts with [`prefix`]`(a)`.
pub(super) fn prefix_end(a: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(SEP + 1);
    key
}

/// `a ‖ 0 ‖ b`: link and read-position keys (`user ‖ 0 ‖ conv`).
pub(super) fn pair(a: &str, b: &str) -> Vec<u8> {
    let mut key = prefix(a);
    key.extend_from_slice(b.as_bytes());
    key
}

/// `conv ‖ 0 ‖ seq`.
pub(super) fn message(conv: &str, seq: u64) -> Vec<u8> {
    let mut key = prefix(conv);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq of a message key, given the length of its `conv ‖ 0` prefix.
pub(super) fn message_seq(key: &[u8], prefix_len: usize) -> StoreResult<u64> {
    key.get(prefix_len..)
        .and_then(|tail| <[u8; 8]>::try_from(tail).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("message key has no 8-byte seq".into()))
}

/// The part of a `a ‖ 0 ‖ b` key after the given prefix, as text.
pub(super) fn pair_tail(key: &[u8], prefix_len: usize) -> StoreResult<String> {
    let tail = key
        .get(prefix_len..)
        .ok_or_else(|| StoreError::Corrupt("key shorter than its prefix".into()))?;
    String::from_utf8(tail.to_vec())
        .map_err(|_| StoreError::Corrupt("key part is not UTF-8".into()))
}

/// `member ‖ 0 ‖ at_ms`: a load sample's key.
pub(super) fn load_sample(member: &str, at_ms: u64) -> Vec<u8> {
    message(member, at_ms)
}

/// `conv ‖ 0 ‖ sender ‖ 0 ‖ client id`.
pub(super) fn dedup(conv: &str, sender: &str, client_id: &str) -> Vec<u8> {
    let mut key = pair(conv, sender);
    key.push(SEP);
    key.extend_from_slice(client_id.as_bytes());
    key
}

/// `ts ‖ dedup key`: the time index entry of a dedup entry.
pub(super) fn dedup_by_time(ts_ms: u64, dedup_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + dedup_key.len());
    key.extend_from_slice(&ts_ms.to_be_bytes());
    key.extend_from_slice(dedup_key);
    key
}

/// Splits a time index key into its timestamp and the dedup key it points at.
pub(super) fn split_dedup_by_time(key: &[u8]) -> StoreResult<(u64, &[u8])> {
    let (ts, rest) = key
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("dedup time key shorter than 8 bytes".into()))?;
    Ok((u64::from_be_bytes(*ts), rest))
}
