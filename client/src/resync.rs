//! Delivery state per conversation: the last seq held, de-duplication, gap repair and
//! resync (docs/protocol.md §7.4–4.6).
//!
//! [`SeqTracker`] is a pure state machine: the connection feeds it what arrived
//! (`msg`, `ack`, `history_page`, a conversation list, a lost connection) and it answers
//! with [`Step`]s — messages to emit, history pages to fetch, resyncs to announce.
//! It never does I/O, so every rule below is unit-tested.
//!
//! Per conversation:
//!
//! 1. **Idle.** A `msg` with `seq` ≤ held is a duplicate and dropped. `seq` = held + 1,
//!    or any `seq` while nothing is held (held = 0), is emitted and becomes held.
//! 2. **Gap.** A `msg` with `seq` > held + 1 (held > 0) starts a *fill*: the message is
//!    buffered and `history(after = held)` is fetched.
//! 3. **Filling.** Pages are emitted past held, and fetched again while `more`. Every
//!    `msg` of the conversation arriving meanwhile is buffered (bounded: on overflow
//!    the buffer is emptied and the range is fetched again, since every delivered
//!    message is stored and history has it).
//! 4. **Done.** History is the authority: seqs it did not return were skipped by the
//!    server, so the message that revealed the gap is accepted even if history ended
//!    below it. Buffered messages then go through step 1 again, in order.
//! 5. **Failed fetch.** A fetch answered with a passing error (`internal` while a
//!    conversation moves between nodes, `overloaded`, ...) is retried after a growing
//!    delay for as long as the connection lasts: giving up would skip whatever
//!    history had not yet returned. Any other refusal (`forbidden` or `not_found`
//!    when the client lost access to the conversation, `invalid`, ...) will not
//!    pass by retrying, and ends the fill with what it buffered.
//!
//! A resync (after a re-connect, or a first connect with saved positions) is a fill
//! without a triggering message, started for every conversation whose `last_seq` is
//! past its position, and announced with [`Step::Resynced`] when it completes.
//!
//! **Floor.** A client started without saved positions takes the conversation list
//! once at its first connect as a *floor*: what was stored before the client existed
//! is not "missed" when a later reconnect resyncs, and the sender's own acks can move
//! the position from there. The floor never de-duplicates (a message stored just
//! before the list may still arrive live after it): de-duplication uses held, and
//! below the floor the seqs actually emitted. Under load the list can be answered
//! after messages sent since the connect, still on their way to the client; fills
//! start above them, and when they arrive they are emitted, late but not lost. A
//! conversation's *position* is the larger of held and floor; it is where resyncs
//! start and what the client reports for saving.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use chorus_wire::Message;
use chorus_wire::backoff::Backoff;

/// `history.limit` of every page the SDK fetches itself (the protocol's maximum).
pub(crate) const PAGE_LIMIT: u32 = 200;

/// Messages buffered per conversation while its history is being fetched.
const MAX_BUFFERED: usize = 1024;

/// What the connection must do after feeding the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Deliver this message to the application, in this order.
    Emit(Message),
    /// Ask for `history(conv, after, limit = PAGE_LIMIT)`; the answer goes to
    /// [`SeqTracker::on_page`], a failure to [`SeqTracker::on_fetch_failed`].
    Fetch {
        /// Conversation id.
        conv: String,
        /// The conversation's position when the step was made; the page is requested
        /// after the position at the time it is sent.
        after: u64,
    },
    /// Call [`SeqTracker::on_stuck_check`] for `conv` after `delay`.
    CheckStuck {
        /// Conversation id.
        conv: String,
        /// How long to wait first.
        delay: Duration,
    },
    /// Fetch `conv`'s next page again after `delay`: the last attempt failed.
    Retry {
        /// Conversation id.
        conv: String,
        /// How long to wait first, at most: the driver jitters it
        /// ([`chorus_wire::backoff::equal_jitter`]).
        delay: Duration,
    },
    /// A resync of `conv` completed after emitting `count` messages from history.
    Resynced {
        /// Conversation id.
        conv: String,
        /// Messages emitted from history by this resync.
        count: u64,
    },
}

/// A history fetch in progress for one conversation.
#[derive(Debug, Default)]
struct Fill {
    /// The seq of the `msg` whose jump started this fill: accepted when the fill ends,
    /// whatever history said about the seqs before it.
    trigger: Option<u64>,
    /// Whether a resync asked for this fill, so its end is announced.
    announce: bool,
    /// Messages emitted from history so far.
    count: u64,
    /// Live messages of the conversation that arrived during the fill.
    buffered: VecDeque<Message>,
    /// The buffer overflowed: fetch again from held before finishing.
    refetch: bool,
    /// Fetches of this fill that failed in a row; each retry waits longer.
    failures: u32,
}

/// The wait before the first retry of a failed fetch; it doubles with each failure
/// in a row, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two attempts of a failing fetch.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The ceiling of the wait before retrying a fetch that failed `failures` times
/// in a row; the driver jitters it when it sets the timer.
fn retry_delay(failures: u32) -> Duration {
    Backoff::new(RETRY_FIRST, RETRY_MAX).ceiling(failures)
}

#[derive(Debug, Default)]
struct ConvState {
    /// The last seq delivered (or acked to this client in order); 0 = none.
    held: u64,
    /// `last_seq` when the client first connected without saved positions; 0 = none.
    floor: u64,
    fill: Option<Fill>,
    /// Seqs of this client's own acked messages above the position. The server
    /// queues an ack straight to the sending session while other members' `msg`s
    /// travel through User entities, so an ack may overtake the `msg` before it;
    /// these fill such holes without asking history.
    own: BTreeSet<u64>,
    /// Held when the floor was set: every seq up to it was emitted (or skipped)
    /// before the floor could matter.
    below_floor: BelowFloor,
    /// A [`Step::CheckStuck`] is pending.
    stuck_check: bool,
}

/// Seqs below the floor remembered per conversation: the messages on their way
/// while the first conversation list was answered, a few at most.
const MAX_BELOW_FLOOR: usize = 4096;

/// What was emitted between the held seq at the time the floor was set and the
/// floor. A `msg` at or below the floor that arrives live was stored after this
/// session attached (what was stored before is never pushed to it): it was on its
/// way when the list was answered, fills started above it, and it is emitted once.
#[derive(Debug, Default)]
struct BelowFloor {
    /// Held when the floor was set: every seq up to it was emitted (or skipped)
    /// before the floor could matter.
    base: u64,
    emitted: BTreeSet<u64>,
}

impl BelowFloor {
    /// Records `seq` as emitted if it lies above `base` and at or below `floor`;
    /// returns whether it was not recorded before.
    fn record(&mut self, floor: u64, seq: u64) -> bool {
        self.base < seq
            && seq <= floor
            && self.emitted.len() < MAX_BELOW_FLOOR
            && self.emitted.insert(seq)
    }
}

/// Own acked seqs remembered per conversation; beyond it gap repair takes over.
const MAX_OWN: usize = 4096;

/// How long an own ack may wait above a hole for the `msg`s before it before the
/// hole is fetched from history. Under load those `msg`s trail the ack by up to
/// seconds; fetching at once would read back, and send again, what is on its way.
const STUCK_WAIT: Duration = Duration::from_secs(1);

impl ConvState {
    fn position(&self) -> u64 {
        self.held.max(self.floor)
    }

    /// Emits `msg`, remembering it if it is at or below the floor.
    fn emit(&mut self, msg: Message, out: &mut Vec<Step>) {
        self.below_floor.record(self.floor, msg.seq);
        out.push(Step::Emit(msg));
    }

    /// Moves the position over own acked seqs that directly follow it.
    fn absorb_own(&mut self) {
        let mut p = self.position();
        while self.own.remove(&(p + 1)) {
            p += 1;
            self.held = p;
        }
        let held = self.position();
        self.own.retain(|&s| s > held);
    }
}

/// Held positions and fills of every conversation the client has seen.
#[derive(Debug, Default)]
pub(crate) struct SeqTracker {
    convs: HashMap<String, ConvState>,
}

impl SeqTracker {
    /// A tracker starting from saved positions.
    pub(crate) fn new(resume: &HashMap<String, u64>) -> Self {
        let convs = resume
            .iter()
            .map(|(conv, &held)| {
                (
                    conv.clone(),
                    ConvState {
                        held,
                        ..ConvState::default()
                    },
                )
            })
            .collect();
        Self { convs }
    }

    /// The last seq held in `conv` (0 when none).
    #[cfg(test)]
    pub(crate) fn held(&self, conv: &str) -> u64 {
        self.convs.get(conv).map_or(0, |s| s.held)
    }

    /// Where a resync or fetch of `conv` starts: the larger of held and floor.
    pub(crate) fn position(&self, conv: &str) -> u64 {
        self.convs.get(conv).map_or(0, ConvState::position)
    }

    /// Every conversation with a position.
    pub(crate) fn positions(&self) -> HashMap<String, u64> {
        self.convs
            .iter()
            .filter(|(_, s)| s.position() > 0)
            .map(|(c, s)| (c.clone(), s.position()))
            .collect()
    }

    /// The first connect's conversation list said `conv` had messages up to `last_seq`.
    pub(crate) fn set_floor(&mut self, conv: &str, last_seq: u64) {
        let st = self.convs.entry(conv.to_string()).or_default();
        if last_seq > st.floor {
            st.floor = last_seq;
            st.below_floor.base = st.held;
        }
    }

    /// A `msg` arrived.
    pub(crate) fn on_msg(&mut self, msg: Message, out: &mut Vec<Step>) {
        let st = self.convs.entry(msg.conv.clone()).or_default();
        if msg.seq <= st.held {
            if st.below_floor.record(st.floor, msg.seq) {
                out.push(Step::Emit(msg));
            }
            return;
        }
        if let Some(fill) = st.fill.as_mut() {
            if fill.buffered.len() >= MAX_BUFFERED {
                tracing::debug!(conv = %msg.conv, seq = msg.seq, held = st.held, "fill buffer full: refetch");
                fill.buffered.clear();
                fill.refetch = true;
            } else {
                fill.buffered.push_back(msg);
            }
            return;
        }
        st.absorb_own();
        if msg.seq <= st.held {
            if st.below_floor.record(st.floor, msg.seq) {
                out.push(Step::Emit(msg));
            }
            return;
        }
        // A gap, also before the first message of a conversation new to this
        // client: seqs start at 1, so a first `msg` above 1 (or above the floor)
        // means earlier ones were lost on the way.
        if msg.seq > st.position() + 1 {
            let after = st.position();
            let conv = msg.conv.clone();
            tracing::debug!(%conv, trigger = msg.seq, after, "gap: fill");
            st.fill = Some(Fill {
                trigger: Some(msg.seq),
                buffered: VecDeque::from([msg]),
                ..Fill::default()
            });
            out.push(Step::Fetch { conv, after });
            return;
        }
        st.held = msg.seq;
        st.absorb_own();
        st.emit(msg, out);
    }

    /// This client's own `send` was acked at `seq`. The sender gets no `msg` for its
    /// own message, so the position moves when the ack is the next seq. Another seq
    /// is remembered: usually the `msg` before it is still on its way (the node
    /// answers a sender directly while other members' `msg`s go through their User
    /// entities) and fills the hole. A hole still open [`STUCK_WAIT`] later is not
    /// a `msg` in flight (seqs skip when a conversation moves to another node, or a
    /// fan-out was lost): [`Step::CheckStuck`] asks for that look, and history fills
    /// it. Returns whether the position moved.
    pub(crate) fn on_ack(&mut self, conv: &str, seq: u64, out: &mut Vec<Step>) -> bool {
        let st = self.convs.entry(conv.to_string()).or_default();
        if seq == st.position() + 1 && st.fill.is_none() {
            st.held = seq;
            st.absorb_own();
            return true;
        }
        if seq > st.position() {
            if st.own.len() >= MAX_OWN {
                st.own.clear();
            }
            st.own.insert(seq);
            if st.fill.is_none() && !st.stuck_check {
                st.stuck_check = true;
                out.push(Step::CheckStuck {
                    conv: conv.to_string(),
                    delay: STUCK_WAIT,
                });
            }
        }
        false
    }

    /// [`STUCK_WAIT`] after an own ack stopped above a hole: if the hole is still
    /// there, fetch it from history.
    pub(crate) fn on_stuck_check(&mut self, conv: &str, out: &mut Vec<Step>) {
        let Some(st) = self.convs.get_mut(conv) else {
            return;
        };
        st.stuck_check = false;
        if st.fill.is_some() {
            return;
        }
        st.absorb_own();
        if st.own.is_empty() {
            return;
        }
        let after = st.position();
        tracing::debug!(%conv, own = st.own.len(), after, "own ack stuck: fill");
        // Like a gap's triggering `msg`, the highest own ack is stored for sure:
        // history is the authority on what lies below it, and a fill that ends
        // refused does not leave the acks waiting (and looking again) forever.
        st.fill = Some(Fill {
            trigger: st.own.last().copied(),
            ..Fill::default()
        });
        out.push(Step::Fetch {
            conv: conv.to_string(),
            after,
        });
    }

    /// A resync learnt that `conv` has messages up to `last_seq`.
    pub(crate) fn start_resync(&mut self, conv: &str, last_seq: u64, out: &mut Vec<Step>) {
        let st = self.convs.entry(conv.to_string()).or_default();
        if last_seq <= st.position() {
            return;
        }
        if let Some(fill) = st.fill.as_mut() {
            // The running fill pages until `more == false`, which covers `last_seq`.
            fill.announce = true;
            return;
        }
        st.fill = Some(Fill {
            announce: true,
            ..Fill::default()
        });
        out.push(Step::Fetch {
            conv: conv.to_string(),
            after: st.position(),
        });
    }

    /// A page fetched for `conv`'s fill arrived.
    pub(crate) fn on_page(
        &mut self,
        conv: &str,
        messages: Vec<Message>,
        more: bool,
        out: &mut Vec<Step>,
    ) {
        let Some(st) = self.convs.get_mut(conv) else {
            return;
        };
        let Some(fill) = st.fill.as_mut() else {
            tracing::debug!(%conv, "page without a fill ignored");
            return;
        };
        fill.failures = 0;
        let before = st.held;
        tracing::debug!(
            %conv,
            held = before,
            first = messages.first().map(|m| m.seq),
            last = messages.last().map(|m| m.seq),
            count = messages.len(),
            more,
            "page"
        );
        for m in messages {
            if m.conv != conv || m.seq <= st.held {
                continue;
            }
            st.held = m.seq;
            fill.count += 1;
            st.below_floor.record(st.floor, m.seq);
            out.push(Step::Emit(m));
        }
        // A page that does not advance cannot be followed by a useful one.
        if more && st.held > before {
            out.push(Step::Fetch {
                conv: conv.to_string(),
                after: st.held.max(st.floor),
            });
            return;
        }
        if fill.refetch {
            fill.refetch = false;
            out.push(Step::Fetch {
                conv: conv.to_string(),
                after: st.held.max(st.floor),
            });
            return;
        }
        self.finish(conv, true, out);
    }

    /// A fetch for `conv` failed (an `error` for its `ref`). A passing failure is
    /// retried after a growing delay, however often it fails: the fill only ends
    /// with what history returned. A `lasting` refusal (retrying will not help: the
    /// client lost access to the conversation, say) ends the fill with what it
    /// buffered.
    pub(crate) fn on_fetch_failed(&mut self, conv: &str, lasting: bool, out: &mut Vec<Step>) {
        let Some(fill) = self.convs.get_mut(conv).and_then(|st| st.fill.as_mut()) else {
            return;
        };
        if lasting {
            self.finish(conv, false, out);
            return;
        }
        fill.failures += 1;
        out.push(Step::Retry {
            conv: conv.to_string(),
            delay: retry_delay(fill.failures),
        });
    }

    /// The connection was lost, and with it every answer in flight. When a resync
    /// follows (`resync_follows`), fills are dropped with their buffers: everything
    /// buffered is stored and the resync fetches it. Otherwise each fill ends as if
    /// it had failed, delivering what it buffered.
    ///
    /// Pending [`Step::CheckStuck`] waits die with the connection's timers; every
    /// conversation with own acks still above a hole asks for a new one.
    pub(crate) fn on_disconnect(&mut self, resync_follows: bool, out: &mut Vec<Step>) {
        for st in self.convs.values_mut() {
            st.stuck_check = false;
        }
        if resync_follows {
            for st in self.convs.values_mut() {
                st.fill = None;
            }
        } else {
            let filling: Vec<String> = self
                .convs
                .iter()
                .filter(|(_, s)| s.fill.is_some())
                .map(|(c, _)| c.clone())
                .collect();
            for conv in filling {
                self.finish(&conv, false, out);
            }
        }
        for (conv, st) in &mut self.convs {
            if st.fill.is_none() && !st.own.is_empty() && !st.stuck_check {
                st.stuck_check = true;
                out.push(Step::CheckStuck {
                    conv: conv.clone(),
                    delay: STUCK_WAIT,
                });
            }
        }
    }

    fn finish(&mut self, conv: &str, completed: bool, out: &mut Vec<Step>) {
        let Some(st) = self.convs.get_mut(conv) else {
            return;
        };
        let Some(fill) = st.fill.take() else { return };
        tracing::debug!(
            conv,
            completed,
            held = st.held,
            trigger = fill.trigger,
            buffered = fill.buffered.len(),
            "fill done"
        );
        if let Some(trigger) = fill.trigger {
            st.held = st.held.max(trigger.saturating_sub(1));
        }
        st.absorb_own();
        if !st.own.is_empty() && !st.stuck_check {
            st.stuck_check = true;
            out.push(Step::CheckStuck {
                conv: conv.to_string(),
                delay: STUCK_WAIT,
            });
        }
        if fill.announce && completed {
            out.push(Step::Resynced {
                conv: conv.to_string(),
                count: fill.count,
            });
        }
        for msg in fill.buffered {
            self.on_msg(msg, out);
        }
    }
}

#[cfg(test)]
mod tests;
