//! Unit tests of the budget selection.

use chorus_wire::{LiveItem, Prio};

use super::select_within_budget;

fn item(seq: u64, prio: Prio) -> LiveItem {
    LiveItem {
        seq,
        id: format!("i{seq}"),
        from: "u".into(),
        body: String::new(),
        ts_ms: 0,
        prio,
    }
}

#[test]
fn under_budget_everything_is_kept() {
    let items: Vec<_> = (1..=10).map(|s| item(s, Prio::Normal)).collect();
    assert_eq!(select_within_budget(items.clone(), 10), items);
}

#[test]
fn paid_and_system_are_never_dropped_and_vip_is_preferred() {
    let mut items = Vec::new();
    for s in 1..=100 {
        let prio = match s % 10 {
            0 => Prio::Paid,
            5 => Prio::System,
            1 | 2 => Prio::Vip,
            _ => Prio::Normal,
        };
        items.push(item(s, prio));
    }
    let kept = select_within_budget(items, 40);
    assert_eq!(
        kept.iter()
            .filter(|i| matches!(i.prio, Prio::Paid | Prio::System))
            .count(),
        20
    );
    assert_eq!(kept.iter().filter(|i| i.prio == Prio::Vip).count(), 20);
    assert_eq!(kept.iter().filter(|i| i.prio == Prio::Normal).count(), 0);
    assert!(kept.windows(2).all(|w| w[0].seq < w[1].seq), "seq order");
}

#[test]
fn must_keep_items_exceed_a_zero_budget() {
    let items = vec![
        item(1, Prio::Normal),
        item(2, Prio::Paid),
        item(3, Prio::System),
    ];
    let kept = select_within_budget(items, 0);
    assert_eq!(kept.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn normal_items_are_sampled_uniformly() {
    // Each of 10 positions should be kept about half the time.
    let mut hits = [0u32; 10];
    for _ in 0..2000 {
        let items: Vec<_> = (0..10).map(|s| item(s, Prio::Normal)).collect();
        for i in select_within_budget(items, 5) {
            hits[i.seq as usize] += 1;
        }
    }
    assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
}
