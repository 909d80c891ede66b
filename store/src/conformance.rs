//! The conformance suite: what every [`MessageStore`] backend must do, written once.
//!
//! A backend's integration test builds a store and calls [`run_all`] (or single
//! checks). Every check takes the store and a [`Namespace`] and makes fresh ids
//! from it, so checks never see each other's rows, and runs against a shared
//! database (a Cassandra keyspace used by several test runs) do not collide.
//! Checks run inside a tokio runtime (the concurrent ones spawn tasks; a
//! multi-threaded runtime makes their races real) and use only the
//! [`MessageStore`] API. Checks never sleep: time-dependent behaviour is driven
//! through the `now_ms` arguments of the API.
//!
//! - [`append`]: batches over many conversations, `last_seq`, concurrent appends.
//! - [`history`]: every mode of docs/protocol.md §7.6 and `more` at each edge.
//! - [`conversations`]: conversation lists, read positions, unlink.
//! - [`groups`]: create (first wins), read, update with links and unlinks, and
//!   the bounded count of a user's groups.
//! - [`dedup`]: the idempotency window and its edges; insert-if-absent appends,
//!   also racing ones.
//! - [`seq_blocks`]: seq blocks, alone and under concurrent allocation.
//! - [`room_settings`]: live rooms' operator settings.
//! - [`last_seen`]: when each user's last session closed.
//! - [`load_history`]: members' load samples, their expiry and their bounds.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chorus_wire::ConvId;

use crate::{HistoryQuery, Message, MessageStore, StoreError};

/// Fails the check unless `actual == expected`, naming what was compared.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($what:tt)+) => {{
        let (actual, expected) = (&$actual, &$expected);
        if actual != expected {
            return Err($crate::conformance::Violation::Broken(format!(
                "{}: expected {:?}, got {:?}",
                format!($($what)+),
                expected,
                actual
            )));
        }
    }};
}

/// Fails the check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {{
        if !$cond {
            return Err($crate::conformance::Violation::Broken(format!($($what)+)));
        }
    }};
}

pub mod append;
pub mod conversations;
pub mod dedup;
pub mod groups;
pub mod history;
pub mod last_seen;
pub mod load_history;
pub mod room_settings;
pub mod seq_blocks;

/// The store as the checks take it: shared, because the concurrent checks hand it
/// to spawned tasks.
pub type SharedStore = Arc<dyn MessageStore>;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// The store returned an error where the contract promises success.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// The store answered, but not what the contract says.
    #[error("{0}")]
    Broken(String),
    /// A task spawned by a concurrent check panicked or was cancelled.
    #[error("check task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The outcome of one check.
pub type CheckResult = Result<(), Violation>;

/// One failed check of a [`run_all`] run.
#[derive(Debug)]
pub struct Failure {
    /// The check's function name.
    pub check: &'static str,
    /// What went wrong.
    pub violation: Violation,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.violation)
    }
}

/// A source of ids no other run has used: a label, a random nonce, and a counter.
/// Every id it hands out is new, so a check can never trip over another's rows.
#[derive(Debug)]
pub struct Namespace {
    /// `label` + nonce, already restricted to the id alphabet.
    prefix: String,
    /// Makes each id of this namespace distinct.
    next: AtomicU64,
}

impl Namespace {
    /// A fresh namespace. `label` (kept to `[A-Za-z0-9_.-]`, at most 16
    /// characters) says which run made the rows, for anyone looking at a shared
    /// database.
    pub fn new(label: &str) -> Self {
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(16)
            .collect();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // RandomState is seeded randomly per process, so the nonce differs between
        // runs even when the clock and pid repeat.
        let nonce = RandomState::new().hash_one((nanos, std::process::id())) & 0xffff_ffff_ffff;
        Self {
            prefix: format!("{label}{nonce:012x}"),
            next: AtomicU64::new(1),
        }
    }

    /// A new id with a one-letter kind, e.g. `u` for a user.
    fn id(&self, kind: char) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{kind}{n}", self.prefix)
    }

    /// A new user id.
    pub fn user(&self) -> String {
        self.id('u')
    }

    /// A new group id (without `group:`).
    pub fn group_id(&self) -> String {
        self.id('g')
    }

    /// A new client message id.
    pub fn client_id(&self) -> String {
        self.id('m')
    }

    /// A new live room id (without `live:`).
    pub fn room(&self) -> String {
        self.id('r')
    }
}

/// The dm conversation id of two users, in canonical order.
pub fn dm(a: &str, b: &str) -> String {
    ConvId::dm(a, b).to_string()
}

/// The conversation id of a group.
pub fn group_conv(gid: &str) -> String {
    ConvId::Group(gid.to_string()).to_string()
}

/// Wall-clock ms since the Unix epoch: message timestamps must be recent, or a
/// backend's dedup sweep may rightly remove their entries mid-check.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A message as a caller would store it, with a fresh client id.
pub fn message(ns: &Namespace, conv: &str, seq: u64, from: &str, body: &str) -> Message {
    Message {
        conv: conv.to_string(),
        seq,
        id: ns.client_id(),
        from: from.to_string(),
        body: body.to_string(),
        ts_ms: now_ms(),
    }
}

/// A history query.
pub fn query(after: Option<u64>, before: Option<u64>, limit: u32) -> HistoryQuery {
    HistoryQuery {
        after,
        before,
        limit,
    }
}

/// The seqs of some messages, in order.
pub fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Runs every check, each in its own ids, and returns every failure (not just
/// the first), so one run shows all that a backend gets wrong.
pub async fn run_all(store: &SharedStore, ns: &Namespace) -> Result<(), Vec<Failure>> {
    let mut failures = Vec::new();
    macro_rules! check {
        ($($path:path),+ $(,)?) => {$(
            if let Err(violation) = $path(store, ns).await {
                failures.push(Failure {
                    check: stringify!($path),
                    violation,
                });
            }
        )+};
    }
    check!(
        append::batch_with_many_conversations,
        append::last_seq_is_the_maximum,
        append::fields_round_trip,
        append::concurrent_appends_all_land,
        history::empty_conversation,
        history::every_mode_and_edge,
        history::paging_walks_everything,
        history::conversations_stay_apart,
        conversations::list_with_last_and_read_seq,
        conversations::read_positions_never_move_backwards,
        conversations::concurrent_reads_keep_the_highest,
        conversations::unlink_removes_one_conversation,
        conversations::pages_walk_the_list_in_id_order,
        groups::create_then_read,
        groups::create_is_first_wins,
        groups::update_links_and_unlinks,
        groups::count_groups_to_a_bound,
        dedup::finds_stored_messages,
        dedup::window_edges,
        dedup::second_append_stores_nothing,
        dedup::duplicate_within_a_batch,
        dedup::racing_appends_store_once,
        dedup::past_the_window_stores_again,
        seq_blocks::blocks_start_at_one_and_advance,
        seq_blocks::blocks_disjoint_under_concurrency,
        room_settings::last_write_reads_back,
        room_settings::rooms_stay_apart,
        last_seen::only_a_later_time_replaces,
        last_seen::users_stay_apart_and_racing_writes_keep_the_latest,
        load_history::samples_read_back_in_time_order,
        load_history::samples_expire,
        load_history::members_stay_apart,
        load_history::bounds_are_refused,
        // Last: it fills the members the store keeps.
        load_history::members_are_capped,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
