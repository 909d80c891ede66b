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
        /// How long to wait first.
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

/// The wait before retrying a fetch that failed `failures` times in a row.
fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
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
mod tests {
    use super::*;

    fn msg(conv: &str, seq: u64) -> Message {
        Message {
            conv: conv.into(),
            seq,
            id: format!("m{seq}"),
            from: "bob".into(),
            body: format!("body {seq}"),
            ts_ms: seq,
        }
    }

    fn emitted(steps: &[Step]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Emit(m) => Some(m.seq),
                _ => None,
            })
            .collect()
    }

    /// A tracker holding `held` of [`C`] that got this client's own acks `acks`.
    fn with_own_acks(held: u64, acks: &[u64]) -> SeqTracker {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), held)]));
        let mut out = Vec::new();
        for &seq in acks {
            t.on_ack(C, seq, &mut out);
        }
        t
    }

    fn feed(t: &mut SeqTracker, conv: &str, seqs: &[u64]) -> Vec<Step> {
        let mut out = Vec::new();
        for &s in seqs {
            t.on_msg(msg(conv, s), &mut out);
        }
        out
    }

    const C: &str = "dm:alice:bob";

    #[test]
    fn in_order_messages_pass_and_duplicates_are_dropped() {
        let mut t = SeqTracker::default();
        let out = feed(&mut t, C, &[1, 2, 2, 3, 1, 3]);
        assert_eq!(
            out.iter().filter(|s| !matches!(s, Step::Emit(_))).count(),
            0
        );
        assert_eq!(emitted(&out), [1, 2, 3]);
        assert_eq!(t.held(C), 3);
    }

    #[test]
    fn a_first_message_above_1_fetches_what_came_before() {
        let mut t = SeqTracker::default();
        let out = feed(&mut t, C, &[41, 42]);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 0
            }]
        );
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 40)], false, &mut out);
        assert_eq!(emitted(&out), [40, 41, 42]);
    }

    #[test]
    fn a_gap_is_fetched_and_emitted_before_what_follows() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 2)]));
        let out = feed(&mut t, C, &[5, 6]);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 2
            }]
        );
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 3), msg(C, 4), msg(C, 5)], false, &mut out);
        assert_eq!(emitted(&out), [3, 4, 5, 6]);
        assert_eq!(t.held(C), 6);
        assert!(!out.iter().any(|s| matches!(s, Step::Resynced { .. })));
    }

    #[test]
    fn a_gap_fill_pages_until_history_has_no_more() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[10]);
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 2), msg(C, 3)], true, &mut out);
        assert_eq!(
            out.last(),
            Some(&Step::Fetch {
                conv: C.into(),
                after: 3
            })
        );
        let mut out = Vec::new();
        t.on_page(C, (4..=10).map(|s| msg(C, s)).collect(), false, &mut out);
        assert_eq!(emitted(&out), [4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn seqs_skipped_by_the_server_are_accepted_after_the_fetch() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 4)]));
        feed(&mut t, C, &[7]);
        let mut out = Vec::new();
        t.on_page(C, vec![], false, &mut out);
        assert_eq!(emitted(&out), [7]);
        assert_eq!(emitted(&feed(&mut t, C, &[8])), [8]);
    }

    #[test]
    fn a_new_gap_in_the_buffer_starts_another_fill() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[3, 6]);
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 2), msg(C, 3)], false, &mut out);
        assert_eq!(emitted(&out), [2, 3]);
        assert_eq!(
            out.last(),
            Some(&Step::Fetch {
                conv: C.into(),
                after: 3
            })
        );
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 4), msg(C, 5), msg(C, 6)], false, &mut out);
        assert_eq!(emitted(&out), [4, 5, 6]);
    }

    #[test]
    fn a_failing_fetch_is_retried_ever_later_and_never_skips_a_seq() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[5, 6]);
        let mut delays = Vec::new();
        for _ in 0..12 {
            let mut out = Vec::new();
            t.on_fetch_failed(C, false, &mut out);
            match out.as_slice() {
                [Step::Retry { conv, delay }] if conv == C => delays.push(*delay),
                other => panic!("expected one retry, got {other:?}"),
            }
        }
        assert_eq!(delays[0], RETRY_FIRST);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(delays.last(), Some(&RETRY_MAX));
        assert_eq!(t.held(C), 1, "nothing accepted past the hole");
        // History answers at last: the hole is filled, then the buffer follows.
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 2), msg(C, 3), msg(C, 4)], false, &mut out);
        assert_eq!(emitted(&out), [2, 3, 4, 5, 6]);
        // A later failure of another fill starts from the first delay again.
        feed(&mut t, C, &[9]);
        let mut out = Vec::new();
        t.on_fetch_failed(C, false, &mut out);
        assert_eq!(
            out,
            [Step::Retry {
                conv: C.into(),
                delay: RETRY_FIRST
            }]
        );
    }

    #[test]
    fn a_lasting_refusal_ends_the_fill_with_what_it_buffered() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[5, 6]);
        let mut out = Vec::new();
        t.on_fetch_failed(C, true, &mut out);
        assert_eq!(emitted(&out), [5, 6]);
    }

    #[test]
    fn an_own_ack_stuck_behind_a_hole_fetches_history_after_a_while() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 22)]));
        // The conversation moved to another node: its seqs continue at 1001.
        let mut out = Vec::new();
        assert!(!t.on_ack(C, 1001, &mut out));
        assert_eq!(
            out,
            [Step::CheckStuck {
                conv: C.into(),
                delay: STUCK_WAIT
            }],
            "one ack ahead may be a msg overtaken: look again later"
        );
        let mut out = Vec::new();
        assert!(!t.on_ack(C, 1002, &mut out));
        assert!(out.is_empty(), "one look is pending already");
        let mut out = Vec::new();
        t.on_stuck_check(C, &mut out);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 22
            }]
        );
        let mut out = Vec::new();
        t.on_page(
            C,
            vec![msg(C, 23), msg(C, 1001), msg(C, 1002)],
            false,
            &mut out,
        );
        assert_eq!(emitted(&out), [23, 1001, 1002]);
        assert_eq!(t.position(C), 1002);
    }

    #[test]
    fn a_hole_filled_by_its_msg_before_the_look_fetches_nothing() {
        let mut t = with_own_acks(4, &[6, 7]);
        assert_eq!(emitted(&feed(&mut t, C, &[5])), [5]);
        assert_eq!(t.position(C), 7, "the own acks follow the msg");
        let mut out = Vec::new();
        t.on_stuck_check(C, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_lost_connection_asks_again_for_the_look_at_a_stuck_ack() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 4)]));
        let mut out = Vec::new();
        t.on_ack(C, 6, &mut out);
        assert_eq!(out.len(), 1, "a look is asked for");
        // The connection goes, and with it the driver's timers.
        for resync in [true, false] {
            let mut out = Vec::new();
            t.on_disconnect(resync, &mut out);
            assert_eq!(
                out,
                [Step::CheckStuck {
                    conv: C.into(),
                    delay: STUCK_WAIT
                }],
                "resync {resync}"
            );
        }
        let mut out = Vec::new();
        t.on_stuck_check(C, &mut out);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 4
            }]
        );
    }

    #[test]
    fn a_refused_stuck_fill_moves_past_the_own_acks_and_stops_looking() {
        let mut t = with_own_acks(4, &[6, 8]);
        let mut out = Vec::new();
        t.on_stuck_check(C, &mut out);
        assert!(matches!(out.as_slice(), [Step::Fetch { .. }]));
        let mut out = Vec::new();
        t.on_fetch_failed(C, true, &mut out);
        assert!(out.is_empty(), "no new look: {out:?}");
        assert_eq!(t.position(C), 8);
    }

    #[test]
    fn an_own_ack_next_in_line_during_a_fill_is_kept_for_after_it() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[4]);
        // The fill for 2..3 runs; this client's own message 5 is acked meanwhile.
        let mut out = Vec::new();
        assert!(!t.on_ack(C, 5, &mut out));
        assert!(out.is_empty(), "no look while a fill runs: {out:?}");
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 2), msg(C, 3), msg(C, 4)], false, &mut out);
        assert_eq!(emitted(&out), [2, 3, 4]);
        assert_eq!(t.position(C), 5, "the ack follows the fill");
        assert_eq!(
            emitted(&feed(&mut t, C, &[5, 6])),
            [6],
            "5 is this client's own"
        );
    }

    #[test]
    fn other_conversations_are_not_held_up_by_a_fill() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[5]);
        assert_eq!(emitted(&feed(&mut t, "group:g", &[1, 2])), [1, 2]);
    }

    #[test]
    fn acks_move_the_position_only_when_in_order() {
        let mut t = SeqTracker::default();
        assert!(t.on_ack(C, 1, &mut Vec::new()));
        assert!(!t.on_ack(C, 3, &mut Vec::new()));
        assert_eq!(t.held(C), 1);
        // 3 was this client's own: the position passes over it once 2 is in.
        assert!(t.on_ack(C, 2, &mut Vec::new()));
        assert_eq!(t.held(C), 3);
        assert!(emitted(&feed(&mut t, C, &[2, 3])).is_empty());
    }

    #[test]
    fn an_ack_that_overtakes_the_msg_before_it_causes_no_fetch() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 6)]));
        assert_eq!(emitted(&feed(&mut t, C, &[7])), [7]);
        // Our message 9 is acked before the other member's 8 reaches us.
        assert!(!t.on_ack(C, 9, &mut Vec::new()));
        let out = feed(&mut t, C, &[8, 10]);
        assert!(
            !out.iter().any(|s| matches!(s, Step::Fetch { .. })),
            "{out:?}"
        );
        assert_eq!(emitted(&out), [8, 10]);
        assert_eq!(t.held(C), 10);
    }

    #[test]
    fn resync_fetches_past_held_and_announces_the_count() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 2)]));
        let mut out = Vec::new();
        t.start_resync(C, 2, &mut out);
        t.start_resync("group:g", 0, &mut out);
        assert!(out.is_empty());
        t.start_resync(C, 5, &mut out);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 2
            }]
        );
        // A live message during the resync waits for it.
        let buffered = feed(&mut t, C, &[6]);
        assert!(buffered.is_empty());
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 3), msg(C, 4), msg(C, 5)], false, &mut out);
        assert_eq!(emitted(&out), [3, 4, 5, 6]);
        assert!(out.contains(&Step::Resynced {
            conv: C.into(),
            count: 3
        }));
        assert_eq!(t.positions(), HashMap::from([(C.to_string(), 6)]));
    }

    #[test]
    fn resync_joins_a_gap_fill_already_running() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[4]);
        let mut out = Vec::new();
        t.start_resync(C, 4, &mut out);
        assert!(out.is_empty(), "no second fetch for the same conversation");
        t.on_page(C, vec![msg(C, 2), msg(C, 3), msg(C, 4)], false, &mut out);
        assert_eq!(emitted(&out), [2, 3, 4]);
        assert!(out.contains(&Step::Resynced {
            conv: C.into(),
            count: 3
        }));
    }

    #[test]
    fn the_floor_is_where_a_resync_starts_but_never_drops_a_message() {
        let mut t = SeqTracker::default();
        t.set_floor(C, 10);
        assert_eq!(t.position(C), 10);
        // A message stored before the list but delivered after it still passes.
        assert_eq!(emitted(&feed(&mut t, C, &[9, 10])), [9, 10]);
        let mut out = Vec::new();
        t.start_resync(C, 10, &mut out);
        assert!(out.is_empty());
        t.start_resync(C, 12, &mut out);
        assert_eq!(
            out,
            [Step::Fetch {
                conv: C.into(),
                after: 10
            }]
        );
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 11), msg(C, 12)], false, &mut out);
        assert_eq!(emitted(&out), [11, 12]);
        assert_eq!(t.positions(), HashMap::from([(C.to_string(), 12)]));
    }

    #[test]
    fn own_acks_move_the_position_from_the_floor() {
        let mut t = SeqTracker::default();
        t.set_floor(C, 7);
        t.set_floor("group:g", 0);
        assert!(t.on_ack(C, 8, &mut Vec::new()));
        assert_eq!(t.positions(), HashMap::from([(C.to_string(), 8)]));
        let mut out = Vec::new();
        t.start_resync(C, 8, &mut out);
        assert!(out.is_empty(), "nothing was missed");
    }

    #[test]
    fn buffer_overflow_refetches_instead_of_growing() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        let n = MAX_BUFFERED as u64 + 10;
        feed(&mut t, C, &(3..3 + n).collect::<Vec<_>>());
        let mut out = Vec::new();
        t.on_page(C, vec![msg(C, 2)], false, &mut out);
        assert_eq!(
            out.last(),
            Some(&Step::Fetch {
                conv: C.into(),
                after: 2
            })
        );
        let mut out = Vec::new();
        t.on_page(C, (3..3 + n).map(|s| msg(C, s)).collect(), false, &mut out);
        assert_eq!(emitted(&out), (3..3 + n).collect::<Vec<_>>());
    }

    #[test]
    fn disconnect_drops_fills_when_a_resync_follows() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[5]);
        let mut out = Vec::new();
        t.on_disconnect(true, &mut out);
        assert!(out.is_empty());
        assert_eq!(t.held(C), 1);
        // A late page of the dropped fill is ignored.
        t.on_page(C, vec![msg(C, 2)], false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn disconnect_without_resync_delivers_the_buffer() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 1)]));
        feed(&mut t, C, &[5]);
        let mut out = Vec::new();
        t.on_disconnect(false, &mut out);
        assert_eq!(emitted(&out), [5]);
    }

    #[test]
    fn pages_of_another_conversation_or_going_backwards_are_ignored() {
        let mut t = SeqTracker::new(&HashMap::from([(C.to_string(), 3)]));
        feed(&mut t, C, &[6]);
        let mut out = Vec::new();
        t.on_page(
            C,
            vec![msg("group:x", 4), msg(C, 2), msg(C, 4)],
            true,
            &mut out,
        );
        assert_eq!(emitted(&out), [4]);
        let mut out = Vec::new();
        // `more` without progress must not loop.
        t.on_page(C, vec![msg(C, 4)], true, &mut out);
        assert_eq!(emitted(&out), [6]);
    }

    /// A model of one client in a busy 1:1 conversation, run over many random
    /// schedules: the client's own acks come straight from the conversation, the
    /// peer's messages through the User entity (in order, but late by a random
    /// delay), and history pages are read from the store at a random time after
    /// their request, which starts at the position held when it is sent (at most
    /// four fetches in flight, as the driver does). Every peer message must be
    /// emitted exactly once.
    #[test]
    fn random_schedules_emit_every_peer_message_exactly_once() {
        use std::collections::BTreeMap;

        #[derive(Debug)]
        enum Ev {
            Ack(u64),
            Msg(u64),
            Page {
                after: u64,
                upto: u64,
            },
            /// The first connect's conversation list, answered late under load.
            Baseline(u64),
            /// A `CheckStuck` step's wait is over.
            Stuck,
        }
        struct Rng(u64);
        impl Rng {
            fn below(&mut self, n: u64) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 % n.max(1)
            }
        }
        for seed in 1..400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut t = SeqTracker::default();
            // (time, order) -> event: the session's outbound queue, by push time.
            let mut queue: BTreeMap<(u64, u64), Ev> = BTreeMap::new();
            let mut order = 0u64;
            let mut push = |q: &mut BTreeMap<(u64, u64), Ev>, at: u64, ev: Ev| {
                order += 1;
                q.insert((at, order), ev);
            };
            let mut peer = BTreeSet::new();
            let mut user_free = 0u64;
            let max_delay = 1 + rng.below(40_000);
            for seq in 1..=600u64 {
                let at = seq * 1_000;
                if rng.below(2) == 0 {
                    push(&mut queue, at, Ev::Ack(seq));
                } else {
                    peer.insert(seq);
                    user_free = user_free.max(at + rng.below(max_delay));
                    push(&mut queue, user_free, Ev::Msg(seq));
                }
            }
            let listed_at = rng.below(300_000);
            push(
                &mut queue,
                listed_at,
                Ev::Baseline((listed_at / 1_000).min(600)),
            );
            let mut emitted: Vec<u64> = Vec::new();
            let mut fetch_queue = 0usize;
            let mut in_flight = 0usize;
            let mut now = 0u64;
            let mut steps = Vec::new();
            loop {
                let mut checks = 0;
                for step in steps.drain(..) {
                    match step {
                        Step::Emit(m) => emitted.push(m.seq),
                        Step::Fetch { .. } => fetch_queue += 1,
                        Step::CheckStuck { .. } => checks += 1,
                        Step::Retry { .. } | Step::Resynced { .. } => {}
                    }
                }
                for _ in 0..checks {
                    // Any wait: the check must be right however late or early it runs.
                    let at = now + rng.below(60_000);
                    push(&mut queue, at, Ev::Stuck);
                }
                while in_flight < 4 && fetch_queue > 0 {
                    fetch_queue -= 1;
                    in_flight += 1;
                    let after = t.position(C);
                    let read_at = now + rng.below(20_000);
                    // Stored by then: every seq whose write completed (seq * 1 ms).
                    let upto = (read_at / 1_000).min(600);
                    push(&mut queue, read_at, Ev::Page { after, upto });
                }
                let Some(((at, _), ev)) = queue.pop_first() else {
                    break;
                };
                now = at;
                match ev {
                    Ev::Ack(seq) => {
                        t.on_ack(C, seq, &mut steps);
                    }
                    Ev::Msg(seq) => t.on_msg(msg(C, seq), &mut steps),
                    Ev::Baseline(last) => t.set_floor(C, last),
                    Ev::Stuck => t.on_stuck_check(C, &mut steps),
                    Ev::Page { after, upto } => {
                        in_flight -= 1;
                        let last = upto.min(after + u64::from(PAGE_LIMIT));
                        let page = (after + 1..=last).map(|s| msg(C, s)).collect();
                        t.on_page(C, page, last < upto, &mut steps);
                    }
                }
            }
            let mut seen = BTreeSet::new();
            for s in &emitted {
                assert!(seen.insert(*s), "seed {seed}: seq {s} emitted twice");
            }
            let missing: Vec<u64> = peer.difference(&seen).copied().collect();
            assert!(
                missing.is_empty(),
                "seed {seed}: peer seqs never emitted: {missing:?}"
            );
        }
    }
}
