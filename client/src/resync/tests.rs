//! The resync state machine, driven by hand and by random schedules.

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

/// The random choices of one schedule, drawn from proptest's dice (so a
/// failing schedule shrinks to a small one).
struct Dice<'a> {
    rolls: &'a [u64],
    next: usize,
}

impl Dice<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let roll = self.rolls[self.next % self.rolls.len()];
        self.next += 1;
        roll % n.max(1)
    }
}

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

/// Runs one schedule (see the property below): the peer's seqs, and the seqs
/// emitted in order.
fn run_schedule(rolls: &[u64], max_delay: u64, listed_at: u64) -> (BTreeSet<u64>, Vec<u64>) {
    use std::collections::BTreeMap;

    let mut rng = Dice { rolls, next: 0 };
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
    (peer, emitted)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// A model of one client in a busy 1:1 conversation, run over many random
    /// schedules: the client's own acks come straight from the conversation, the
    /// peer's messages through the User entity (in order, but late by a random
    /// delay), and history pages are read from the store at a random time after
    /// their request, which starts at the position held when it is sent (at most
    /// four fetches in flight, as the driver does). Every peer message must be
    /// emitted exactly once.
    #[test]
    fn random_schedules_emit_every_peer_message_exactly_once(
        rolls in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..256),
        max_delay in 1..40_000u64,
        listed_at in 0..300_000u64,
    ) {
        let (peer, emitted) = run_schedule(&rolls, max_delay, listed_at);
        let mut seen = BTreeSet::new();
        for s in &emitted {
            proptest::prop_assert!(seen.insert(*s), "seq {} emitted twice", s);
        }
        let missing: Vec<u64> = peer.difference(&seen).copied().collect();
        proptest::prop_assert!(missing.is_empty(), "peer seqs never emitted: {:?}", missing);
    }
}
