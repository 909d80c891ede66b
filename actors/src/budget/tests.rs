use std::time::Duration;

use chorus_wire::{ErrorCode, ServerFrame};

use super::*;

fn ack(id: &str) -> ServerFrame {
    ServerFrame::Ack {
        id: id.into(),
        conv: "dm:a:b".into(),
        seq: 1,
        ts_ms: 1,
    }
}

#[tokio::test(start_paused = true)]
async fn units_are_held_until_the_answer_is_let_go() {
    let budget = RequestBudget::new(16);
    let held = budget.acquire(1).await.expect("units");
    budget.expect(AnswerKey::Id("m1".into()), held);
    assert_eq!(budget.available(), 15);
    let answer = ack("m1");
    let taken = budget.answered(AnswerKey::of(&answer).expect("an answer"));
    assert!(taken.is_some());
    // Still held while the answer waits for the socket.
    assert_eq!(budget.available(), 15);
    drop(taken);
    assert_eq!(budget.available(), 16);
    // A second answer for the same id finds nothing to free.
    assert!(budget.answered(AnswerKeyRef::Id("m1")).is_none());
}

#[tokio::test(start_paused = true)]
async fn every_answer_kind_finds_its_request() {
    let budget = RequestBudget::new(64);
    let large = budget.large();
    assert_eq!(large, 4);
    for (key, weight) in [
        (AnswerKey::Ref("r".into()), large),
        (AnswerKey::Ref("r".into()), 1),
        (AnswerKey::Pong, 1),
        (AnswerKey::Id("d".into()), 1),
    ] {
        let held = budget.acquire(weight).await.expect("units");
        budget.expect(key, held);
    }
    assert_eq!(budget.available(), 64 - 7);
    let answers = [
        ServerFrame::Error {
            reference: Some("r".into()),
            code: ErrorCode::Forbidden,
            message: String::new(),
        },
        ServerFrame::Ok {
            reference: "r".into(),
        },
        ServerFrame::Pong,
        ServerFrame::Reject {
            id: "d".into(),
            code: ErrorCode::RateLimited,
            message: String::new(),
            retry_after_ms: None,
        },
    ];
    // Two requests with one `ref`: the first answer frees the older one.
    let freed: Vec<Held> = answers
        .iter()
        .filter_map(|a| budget.answered(AnswerKey::of(a).expect("an answer")))
        .collect();
    assert_eq!(freed.len(), 4);
    assert_eq!(freed[0].num_permits(), large as usize);
    drop(freed);
    assert_eq!(budget.available(), 64);
    // Frames that answer nothing.
    let msg = ServerFrame::Receipt {
        conv: "dm:a:b".into(),
        user: "a".into(),
        seq: 1,
    };
    assert!(AnswerKey::of(&msg).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_waits_and_frees_answers_that_never_came() {
    let budget = std::sync::Arc::new(RequestBudget::new(16));
    for i in 0..16 {
        let held = budget.acquire(1).await.expect("units");
        budget.expect(AnswerKey::Id(format!("m{i}")), held);
    }
    let waiting = tokio::spawn({
        let budget = budget.clone();
        async move { budget.acquire(1).await.is_some() }
    });
    tokio::time::sleep(STALE_AFTER - Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "nothing is stale yet");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(waiting.await.expect("the waiter"), "stale units were freed");
    assert_eq!(budget.available(), 16);
    assert!(budget.answered(AnswerKeyRef::Id("m0")).is_none());
}

#[test]
fn the_budget_holds_every_weight() {
    assert_eq!(RequestBudget::new(0).large(), 1);
    assert_eq!(RequestBudget::new(256).large(), 16);
}
