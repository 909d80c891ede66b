use std::borrow::Cow;
use std::time::Duration;

use chorus_wire::codec::Frame;
use chorus_wire::{Encoding, LiveItem, Prio, ServerFrame};

use super::batch::{self, Incoming};
use super::board::Accepted;
use super::plan::{self, Burst, RoleShares};
use super::report::LiveCheck;
use super::viewer::{End, Tally};
use crate::ledger;
use crate::token::Role;

fn item(seq: u64, body: &str, prio: Prio) -> LiveItem {
    LiveItem {
        seq,
        id: format!("id-{seq}"),
        from: "lt1234-s0".into(),
        body: body.into(),
        ts_ms: 1_790_000_000_000 + seq,
        prio,
    }
}

#[test]
fn steady_items_and_bursts_are_merged_in_time_order() {
    let bursts = [Burst {
        at_s: 1.0,
        count: 4,
    }];
    let s = plan::schedule(2.0, Duration::from_secs(2), &bursts, 3, 2);
    let times: Vec<u64> = s.iter().map(|x| x.at_us).collect();
    assert_eq!(
        times,
        [
            0, 500_000, 1_000_000, 1_000_000, 1_250_000, 1_500_000, 1_500_000, 1_750_000
        ]
    );
    assert_eq!(
        s.iter().map(|x| x.sender).collect::<Vec<_>>(),
        [0, 1, 2, 0, 1, 2, 0, 1]
    );
    assert_eq!(
        s.iter().map(|x| x.room).collect::<Vec<_>>(),
        [0, 1, 0, 1, 0, 1, 0, 1]
    );
    assert!(plan::in_burst(&bursts, 1_999_999));
    assert!(!plan::in_burst(&bursts, 2_000_000));
    assert!(!plan::in_burst(&bursts, 999_999));
    // A burst alone, with no steady rate.
    assert_eq!(
        plan::schedule(0.0, Duration::from_secs(1), &bursts, 1, 1).len(),
        4
    );
}

#[test]
fn roles_go_to_blocks_of_senders() {
    let shares = RoleShares {
        system: 0.1,
        paid: 0.2,
        vip: 0.0,
    };
    let roles = shares.assign(10);
    assert_eq!(roles[0], Some(Role::System));
    assert_eq!(&roles[1..3], [Some(Role::Paid), Some(Role::Paid)]);
    assert!(roles[3..].iter().all(Option::is_none));
    // A positive share never rounds down to nobody.
    let few = RoleShares {
        paid: 0.01,
        ..RoleShares::default()
    }
    .assign(5);
    assert_eq!(few, [Some(Role::Paid), None, None, None, None]);
    assert!(RoleShares::default().assign(3).iter().all(Option::is_none));
}

#[test]
fn batches_read_in_both_encodings_match_the_wire_crate() {
    let long_body = ledger::body(Some(123_456_789), 300);
    let frame = ServerFrame::LiveBatch {
        room: "lt1-room0".into(),
        items: vec![
            item(1, &ledger::body(Some(42), 32), Prio::Normal),
            item(300, &long_body, Prio::Paid),
            item(70_000, "t7;", Prio::System),
            item(5_000_000_000, "x", Prio::Vip),
        ],
        viewers: 20_000,
        dropped: 65_536,
    };
    for encoding in [Encoding::Binary, Encoding::Json] {
        let bytes = frame.encode(encoding);
        let Some(Incoming::Batch(b)) = batch::read(&bytes, encoding) else {
            panic!("a live_batch in {encoding:?}");
        };
        assert_eq!(b.room, "lt1-room0");
        assert_eq!(b.dropped, 65_536);
        let seqs: Vec<(u64, Prio)> = b.items.iter().map(|i| (i.seq, i.prio)).collect();
        assert_eq!(
            seqs,
            [
                (1, Prio::Normal),
                (300, Prio::Paid),
                (70_000, Prio::System),
                (5_000_000_000, Prio::Vip)
            ]
        );
        assert_eq!(b.items[1].body, Cow::Borrowed(long_body.as_bytes()));
        let intended: Vec<Option<u64>> = b
            .items
            .iter()
            .map(|i| batch::intended_us(&i.body))
            .collect();
        assert_eq!(intended, [Some(42), Some(123_456_789), Some(7), None]);
    }
}

#[test]
fn other_frames_are_decoded_and_bad_bytes_refused() {
    for encoding in [Encoding::Binary, Encoding::Json] {
        let pong = ServerFrame::Pong.encode(encoding);
        assert!(matches!(
            batch::read(&pong, encoding),
            Some(Incoming::Other(f)) if *f == ServerFrame::Pong
        ));
        let batch = ServerFrame::LiveBatch {
            room: "r".into(),
            items: vec![item(1, "t1;", Prio::Normal)],
            viewers: 1,
            dropped: 0,
        }
        .encode(encoding);
        assert!(batch::read(&batch[..batch.len() - 1], encoding).is_none());
    }
    // A binary item count the frame cannot hold.
    assert!(batch::read(&[11, 1, b'r', 252, 255, 255, 255, 0], Encoding::Binary).is_none());
    assert_eq!(batch::intended_us(b"t;"), None);
    assert_eq!(batch::intended_us(b"t12x;"), None);
    assert_eq!(batch::intended_us(b"t99999999999999999999;"), None);
}

#[test]
fn the_check_balances_each_viewer_against_its_room() {
    let room = Accepted {
        total: 10,
        by_prio: [6, 1, 2, 1],
        must_keep_seq_sum: 2 + 5 + 9,
    };
    let good = Tally {
        room: 0,
        delivered: 7,
        dropped: 3,
        batches: 2,
        must_keep: 3,
        must_keep_seq_sum: 16,
        ..Tally::default()
    };
    let c = LiveCheck::compute(std::slice::from_ref(&good), &[room], 0);
    assert!(c.passed(), "{c:?}");
    assert_eq!((c.viewers_checked, c.balanced), (1, 1));

    let short = Tally {
        delivered: 6,
        ..good.clone()
    };
    let missed_paid = Tally {
        must_keep: 2,
        must_keep_seq_sum: 7,
        ..good.clone()
    };
    let gone = Tally {
        end: Some(End::Disconnected),
        ..good.clone()
    };
    let never = Tally {
        end: Some(End::NotJoined("connect_timeout".into())),
        ..Tally::default()
    };
    let c = LiveCheck::compute(&[good, short, missed_paid, gone, never], &[room], 0);
    assert!(!c.passed());
    assert_eq!(c.viewers_checked, 3);
    assert_eq!((c.balanced, c.unbalanced), (2, 1));
    assert_eq!((c.paid_system_complete, c.paid_system_incomplete), (2, 1));
    assert_eq!((c.disconnected, c.not_joined), (1, 1));
    assert_eq!(c.samples.len(), 2);
    assert!(c.samples[0].contains("accepted 10 ≠ delivered 6 + dropped 3"));
    assert!(
        !LiveCheck::compute(&[], &[room], 1).passed(),
        "an unanswered send fails"
    );
}
