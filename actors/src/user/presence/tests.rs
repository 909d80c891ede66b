use std::time::{Duration, Instant};

use chorus_wire::PresenceStatus;

use super::{FLAP, Next, POLL, Presence};

const MS: u64 = 1_700_000_000_000;

#[test]
fn offline_is_shown_when_the_flap_window_closes() {
    let mut p = Presence::new(true, None);
    let t0 = Instant::now();
    // The last session left: the window opens.
    assert_eq!(
        p.sessions_are("u", false, false, t0, MS),
        (Next::CheckIn(FLAP), None)
    );
    assert_eq!(p.shown, PresenceStatus::Online);
    // Checked early (another event): still waiting, for what is left.
    let early = t0 + Duration::from_millis(500);
    assert_eq!(
        p.sessions_are("u", false, false, early, MS + 500),
        (Next::CheckIn(FLAP - Duration::from_millis(500)), None)
    );
    // The window closed: offline, last seen when the last session left.
    assert_eq!(
        p.sessions_are("u", false, false, t0 + FLAP, MS + 2_000),
        (Next::Idle, Some(MS))
    );
    assert_eq!(p.shown, PresenceStatus::Offline);
    assert_eq!(p.last_seen_ms, Some(MS));
    // Nothing more to do while offline.
    assert_eq!(
        p.sessions_are("u", false, false, t0 + FLAP * 3, MS + 6_000),
        (Next::Idle, None)
    );
}

#[test]
fn a_reconnect_within_the_window_shows_no_change() {
    let mut p = Presence::new(true, None);
    let t0 = Instant::now();
    p.sessions_are("u", false, false, t0, MS);
    // Back within the window: still online, the window is closed.
    let back = t0 + FLAP - Duration::from_millis(1);
    assert_eq!(
        p.sessions_are("u", true, false, back, MS),
        (Next::Idle, None)
    );
    assert_eq!(p.shown, PresenceStatus::Online);
    assert!(p.leaving.is_none());
    // The check scheduled by the first leave finds sessions: no change.
    assert_eq!(
        p.sessions_are("u", true, false, t0 + FLAP, MS + 2_000),
        (Next::Idle, None)
    );
    assert_eq!(p.shown, PresenceStatus::Online);
    // A second leave opens a new window from its own time.
    let t1 = t0 + FLAP * 2;
    assert_eq!(
        p.sessions_are("u", false, false, t1, MS + 4_000),
        (Next::CheckIn(FLAP), None)
    );
    assert_eq!(
        p.sessions_are("u", false, false, t1 + FLAP, MS + 6_000),
        (Next::Idle, Some(MS + 4_000))
    );
}

#[test]
fn online_is_shown_at_once_and_clears_last_seen() {
    let mut p = Presence::new(false, Some(MS));
    assert_eq!(p.shown, PresenceStatus::Offline);
    let ServerFrame::Presence { last_seen_ms, .. } = p.frame("u") else {
        panic!("a presence frame");
    };
    assert_eq!(last_seen_ms, Some(MS));
    p.sessions_are("u", true, false, Instant::now(), MS + 1);
    assert_eq!(p.shown, PresenceStatus::Online);
    let ServerFrame::Presence {
        status,
        last_seen_ms,
        ..
    } = p.frame("u")
    else {
        panic!("a presence frame");
    };
    assert_eq!((status, last_seen_ms), (PresenceStatus::Online, None));
}

#[test]
fn remote_sessions_are_polled_only_while_watched() {
    let mut p = Presence::new(true, None);
    assert_eq!(
        p.sessions_are("u", true, true, Instant::now(), MS),
        (Next::Idle, None),
        "nobody watches: nothing to poll for"
    );
    assert!(POLL < FLAP);
}

use chorus_wire::ServerFrame;
