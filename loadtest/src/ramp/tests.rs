use super::*;

fn stage(at_s: f64, connections: u32, msgs_per_s: f64) -> Stage {
    Stage {
        at_s,
        connections,
        msgs_per_s,
    }
}

#[test]
fn stages_parse_from_the_command_line() {
    assert_eq!(Stage::parse("30:90").ok(), Some(stage(30.0, 90, 0.0)));
    assert_eq!(Stage::parse("2.5:10:40").ok(), Some(stage(2.5, 10, 40.0)));
    for bad in ["", "30", "30:x", "x:3", "1:2:3:4", "1:-2"] {
        assert!(Stage::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_schedule_is_linear_between_stages_and_holds_after() {
    let s = Schedule::new(vec![stage(10.0, 100, 50.0), stage(20.0, 20, 0.0)]).expect("valid");
    assert_eq!(s.at(0.0), (0, 0.0));
    assert_eq!(s.at(5.0), (50, 25.0));
    assert_eq!(s.at(9.99).0, 99);
    assert_eq!(s.at(10.0), (100, 50.0));
    assert_eq!(s.at(15.0), (60, 25.0));
    assert_eq!(s.at(20.0), (20, 0.0));
    assert_eq!(s.at(1e9), (20, 0.0));
    assert_eq!(s.end_s(), 20.0);
}

#[test]
fn bad_schedules_are_refused() {
    assert!(Schedule::new(vec![]).is_err());
    assert!(Schedule::new(vec![stage(0.0, 1, 0.0)]).is_err(), "time 0");
    assert!(Schedule::new(vec![stage(5.0, 1, 0.0), stage(5.0, 2, 0.0)]).is_err());
    assert!(Schedule::new(vec![stage(f64::NAN, 1, 0.0)]).is_err());
    assert!(Schedule::new(vec![stage(1.0, 1, -1.0)]).is_err());
    assert!(Schedule::new(vec![stage(1.0, MAX_CONNECTIONS + 1, 0.0)]).is_err());
}
