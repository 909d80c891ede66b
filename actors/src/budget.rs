//! One in-flight budget per session, for every request that has an answer.
//!
//! A client may pipeline requests, but every one of them holds part of its
//! session's budget from the moment it is read until its answer has been
//! *written to the socket*. When the budget is spent the session stops reading,
//! and TCP pushes back on the client: a client that reads its answers keeps its
//! connection however fast it sends (200,000 pipelined pings are answered at the
//! pace of the socket), and one that does not read holds at most the budget's
//! worth of answers in memory, never more.
//!
//! Requests weigh what their answer may cost: one unit for a small answer
//! (`pong`, `ack`, `ok`), a sixteenth of the budget for one that may fill a
//! frame (`history_page`, `conversation_list`, `group`, `live_joined`), so that
//! the answers waiting for one session stay below `budget / 16` frames.
//!
//! Nothing on the way to the answer carries the budget: the session *expects* the
//! answer by its key (`ref`, client message id, or the next `pong`), and the
//! session's handle attaches the held units to the answer when it is queued —
//! wherever it was made, on this node or another. An answer that never comes (its
//! entity died, its node vanished) frees its units after [`STALE_AFTER`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use chorus_wire::ServerFrame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Units held for one request, released when they are dropped.
pub type Held = OwnedSemaphorePermit;

/// An expected answer's units are released this long after the request even if
/// the answer never came: the longest a remote answer may take
/// (`remote::REMOTE_ANSWER_TIMEOUT` is this).
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// How often a session waiting for budget looks for stale expectations.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The share of the budget a request with a frame-sized answer takes.
pub const LARGE_SHARE: usize = 16;

/// What an answer is matched to its request by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnswerKey {
    /// `ack`/`reject` of a `send` or `danmaku` with this client id.
    Id(String),
    /// The answer carrying this `ref`.
    Ref(String),
    /// The next `pong`.
    Pong,
}

impl AnswerKey {
    /// The request an outgoing frame answers, if it answers one.
    pub fn of(frame: &ServerFrame) -> Option<AnswerKeyRef<'_>> {
        match frame {
            ServerFrame::Ack { id, .. } | ServerFrame::Reject { id, .. } => {
                Some(AnswerKeyRef::Id(id))
            }
            ServerFrame::HistoryPage { reference, .. }
            | ServerFrame::ConversationList { reference, .. }
            | ServerFrame::Group { reference, .. }
            | ServerFrame::Ok { reference }
            | ServerFrame::LiveJoined { reference, .. }
            | ServerFrame::Error {
                reference: Some(reference),
                ..
            } => Some(AnswerKeyRef::Ref(reference)),
            ServerFrame::Pong => Some(AnswerKeyRef::Pong),
            _ => None,
        }
    }
}

/// [`AnswerKey`] borrowed from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKeyRef<'a> {
    /// See [`AnswerKey::Id`].
    Id(&'a str),
    /// See [`AnswerKey::Ref`].
    Ref(&'a str),
    /// See [`AnswerKey::Pong`].
    Pong,
}

/// Units held for expected answers, oldest first per key. Each holds at least one
/// unit, so there are never more of them than the budget has units: looking at
/// all of them is cheap.
#[derive(Debug, Default)]
struct Expected {
    ids: HashMap<String, VecDeque<(Instant, Held)>>,
    refs: HashMap<String, VecDeque<(Instant, Held)>>,
    pongs: VecDeque<(Instant, Held)>,
}

/// A session's request budget. Cheap to share (the handle and the session both
/// use it).
#[derive(Debug)]
pub struct RequestBudget {
    units: Arc<Semaphore>,
    total: usize,
    expected: Mutex<Expected>,
}

impl RequestBudget {
    /// A budget of `total` units (at least [`LARGE_SHARE`], so that every weight
    /// fits it).
    pub fn new(total: usize) -> Self {
        let total = total.max(LARGE_SHARE);
        Self {
            units: Arc::new(Semaphore::new(total)),
            total,
            expected: Mutex::new(Expected::default()),
        }
    }

    /// The units of a request whose answer may fill a frame.
    pub fn large(&self) -> u32 {
        u32::try_from(self.total / LARGE_SHARE)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Units not held now.
    pub fn available(&self) -> usize {
        self.units.available_permits()
    }

    /// Waits until `weight` units are free and takes them; while waiting, frees
    /// the units of answers that never came. (`None` only if the budget were
    /// closed, which it never is.)
    pub async fn acquire(&self, weight: u32) -> Option<Held> {
        if self.units.available_permits() < weight as usize {
            metrics::counter!("chorus_request_budget_waits_total").increment(1);
        }
        let acquire = self.units.clone().acquire_many_owned(weight);
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                held = &mut acquire => return held.ok(),
                () = tokio::time::sleep(SWEEP_EVERY) => self.release_stale(),
            }
        }
    }

    /// Holds `held` until the answer with `key` is queued (see [`Self::answered`]).
    pub fn expect(&self, key: AnswerKey, held: Held) {
        let mut st = self.lock();
        let queue = match &key {
            AnswerKey::Id(id) => st.ids.entry(id.clone()).or_default(),
            AnswerKey::Ref(r) => st.refs.entry(r.clone()).or_default(),
            AnswerKey::Pong => &mut st.pongs,
        };
        queue.push_back((Instant::now(), held));
    }

    /// The units held for the answer `key`, now that it is being queued.
    pub fn answered(&self, key: AnswerKeyRef<'_>) -> Option<Held> {
        let mut st = self.lock();
        match key {
            AnswerKeyRef::Id(id) => take(&mut st.ids, id),
            AnswerKeyRef::Ref(r) => take(&mut st.refs, r),
            AnswerKeyRef::Pong => st.pongs.pop_front().map(|(_, h)| h),
        }
    }

    /// Frees the units of expectations older than [`STALE_AFTER`].
    pub fn release_stale(&self) {
        let now = Instant::now();
        let fresh =
            |(since, _): &(Instant, Held)| now.saturating_duration_since(*since) < STALE_AFTER;
        let mut st = self.lock();
        let before = st.pending();
        let Expected { ids, refs, pongs } = &mut *st;
        for queue in ids.values_mut().chain(refs.values_mut()) {
            queue.retain(fresh);
        }
        pongs.retain(fresh);
        st.ids.retain(|_, q| !q.is_empty());
        st.refs.retain(|_, q| !q.is_empty());
        let freed = before - st.pending();
        drop(st);
        if freed > 0 {
            metrics::counter!("chorus_request_budget_expired_total").increment(freed as u64);
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Expected> {
        // Every critical section leaves the maps consistent.
        self.expected.lock()
    }
}

/// The oldest units held for `key` in `map`, removing the key when it has no more.
fn take(map: &mut HashMap<String, VecDeque<(Instant, Held)>>, key: &str) -> Option<Held> {
    let queue = map.get_mut(key)?;
    let held = queue.pop_front().map(|(_, h)| h);
    if queue.is_empty() {
        map.remove(key);
    }
    held
}

impl Expected {
    fn pending(&self) -> usize {
        self.ids
            .values()
            .chain(self.refs.values())
            .map(VecDeque::len)
            .sum::<usize>()
            + self.pongs.len()
    }
}

#[cfg(test)]
mod tests;
