use super::*;

const S: Duration = Duration::from_secs(1);

fn params() -> AdaptiveParams {
    AdaptiveParams {
        min: 10 * S,
        max: 40 * S,
        step: 5 * S,
        margin: 2 * S,
        k: 3,
        reprobe_after: 100 * S,
        pong_timeout: 5 * S,
    }
}

fn bounds() -> Bounds {
    Bounds::new(&params(), None)
}

/// `n` successes at the record's interval.
fn succeed(r: &mut Record, n: u32) {
    for _ in 0..n {
        let quiet = r.interval;
        r.on_success(quiet, &bounds());
    }
}

#[test]
fn defaults_are_marss_and_valid() {
    let p = AdaptiveParams::default();
    assert_eq!(p.min, Duration::from_secs(270));
    assert_eq!(p.step, Duration::from_secs(60));
    assert_eq!(p.margin, Duration::from_secs(20));
    assert_eq!(p.k, 3);
    assert_eq!(p.problem(), None);
    assert_eq!(Record::new(&p).interval, p.min);
}

#[test]
fn unusable_parameters_are_named() {
    let bad = [
        AdaptiveParams {
            min: Duration::ZERO,
            ..params()
        },
        AdaptiveParams {
            max: 5 * S,
            ..params()
        },
        AdaptiveParams {
            margin: 5 * S,
            ..params()
        },
        AdaptiveParams { k: 0, ..params() },
    ];
    for p in bad {
        assert!(p.problem().is_some(), "{p:?}");
    }
}

#[test]
fn probing_steps_up_after_k_successes_in_a_row() {
    let mut r = Record::new(&params());
    succeed(&mut r, 2);
    assert_eq!(r.interval, 10 * S);
    r.on_failure(&bounds()); // at the floor: nowhere to go, and the streak restarts
    assert_eq!(r.phase, Phase::Probing { last_good: None });
    succeed(&mut r, 2);
    assert_eq!(r.interval, 10 * S, "a failure broke the streak");
    succeed(&mut r, 1);
    assert_eq!(r.interval, 15 * S);
    assert_eq!(
        r.phase,
        Phase::Probing {
            last_good: Some(10 * S)
        }
    );
}

#[test]
fn the_first_failure_while_probing_settles_below_the_last_good_interval() {
    let mut r = Record::new(&params());
    succeed(&mut r, 3 * 3); // 10, 15, 20 survived
    assert_eq!(r.interval, 25 * S);
    succeed(&mut r, 1);
    r.on_failure(&bounds());
    assert_eq!(r.phase, Phase::Stable);
    assert_eq!(r.interval, 18 * S, "last good (20) less the margin");
    assert_eq!((r.successes, r.failures), (0, 0));
}

#[test]
fn the_ceiling_is_held_without_margin() {
    let mut r = Record::new(&params());
    succeed(&mut r, 3 * 7); // 10 .. 40
    assert_eq!(r.interval, 40 * S);
    assert_eq!(r.phase, Phase::Stable);
}

#[test]
fn a_node_ceiling_below_the_clients_floor_wins() {
    let b = Bounds::new(&params(), Some(8 * S));
    assert_eq!((b.min, b.max), (8 * S, 8 * S));
    let mut r = Record::new(&params());
    r.fit(&b);
    assert_eq!(r.interval, 8 * S);
}

#[test]
fn k_failures_in_a_row_at_the_stable_interval_start_over() {
    let mut r = Record::stable(18 * S);
    r.on_failure(&bounds());
    r.on_failure(&bounds());
    succeed(&mut r, 1); // a blip: the count restarts
    r.on_failure(&bounds());
    r.on_failure(&bounds());
    assert_eq!(r.phase, Phase::Stable);
    r.on_failure(&bounds());
    assert_eq!(r, Record::new(&params()));
}

#[test]
fn a_reprobe_comes_after_holding_the_stable_interval_long_enough() {
    let mut r = Record::stable(18 * S);
    succeed(&mut r, 5); // 90 s held
    assert_eq!(r.phase, Phase::Stable);
    assert_eq!(r.held, 90 * S);
    succeed(&mut r, 1);
    assert_eq!(r.phase, Phase::Reprobing { stable: 18 * S });
    assert_eq!(r.interval, 23 * S);
}

#[test]
fn a_failed_reprobe_returns_to_the_same_stable_interval() {
    let mut r = Record::stable(18 * S);
    for _ in 0..4 {
        succeed(&mut r, 6);
        assert!(matches!(r.phase, Phase::Reprobing { .. }));
        r.on_failure(&bounds());
        assert_eq!(
            r,
            Record::stable(18 * S),
            "no drift after repeated re-probes"
        );
    }
}

#[test]
fn a_successful_reprobe_goes_on_probing_upwards() {
    let mut r = Record::stable(18 * S);
    succeed(&mut r, 6);
    succeed(&mut r, 3); // 23 survived
    assert_eq!(
        r.phase,
        Phase::Probing {
            last_good: Some(23 * S)
        }
    );
    assert_eq!(r.interval, 28 * S);
    r.on_failure(&bounds());
    assert_eq!(r, Record::stable(21 * S));
}

#[test]
fn a_failure_without_a_proven_interval_backs_off_a_step_and_the_margin() {
    let mut r = Record::probing(30 * S, None);
    r.on_failure(&bounds());
    assert_eq!(r, Record::stable(23 * S));
    let mut r = Record::probing(12 * S, None);
    r.on_failure(&bounds());
    assert_eq!(r, Record::stable(10 * S), "never below the floor");
}

#[test]
fn fit_brings_a_stored_record_within_bounds() {
    let mut r = Record {
        phase: Phase::Reprobing { stable: 90 * S },
        interval: Duration::ZERO,
        successes: 0,
        failures: 0,
        held: Duration::ZERO,
    };
    r.fit(&bounds());
    assert_eq!(r.interval, 10 * S);
    assert_eq!(r.phase, Phase::Reprobing { stable: 40 * S });
}
