#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::time::Duration;

use super::{GossipKey, OVERHEAD, Opened, Rejected, ReplayGuard};

const NOW: u64 = 1_767_225_600_000;

fn sealed(key: &GossipKey, at: u64, nonce: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    key.seal(at, nonce, payload, &mut out);
    out
}

#[test]
fn a_sealed_packet_opens_under_the_same_cookie_only() {
    let key = GossipKey::from_cookie("the cluster's cookie");
    let packet = sealed(&key, NOW, 7, b"chitchat envelope");
    assert_eq!(packet.len(), OVERHEAD + b"chitchat envelope".len());
    let opened = key.open(&packet).unwrap();
    assert_eq!(opened.sent_at_ms, NOW);
    assert_eq!(opened.payload, b"chitchat envelope");
    // Every node derives the same key from the same cookie.
    let twin = GossipKey::from_cookie("the cluster's cookie");
    assert_eq!(twin.open(&packet).unwrap().payload, b"chitchat envelope");
    for other in ["another cookie", "the cluster's cookiE", ""] {
        assert_eq!(
            GossipKey::from_cookie(other).open(&packet),
            Err(Rejected::BadMac)
        );
    }
}

#[test]
fn any_altered_or_cut_packet_is_refused() {
    let key = GossipKey::from_cookie("cookie");
    let packet = sealed(&key, NOW, 1, b"payload");
    for i in 0..packet.len() {
        for bit in 0..8 {
            let mut altered = packet.clone();
            altered[i] ^= 1 << bit;
            assert!(key.open(&altered).is_err(), "byte {i} bit {bit}");
        }
    }
    for len in 0..packet.len() {
        assert!(key.open(&packet[..len]).is_err(), "cut to {len}");
    }
    let mut longer = packet.clone();
    longer.push(0);
    assert_eq!(key.open(&longer), Err(Rejected::BadMac));
    // Unsealed bytes and other formats say so before any MAC is computed.
    assert_eq!(key.open(b""), Err(Rejected::Malformed));
    assert_eq!(key.open(&[0u8; 200]), Err(Rejected::Malformed));
    let mut version_2 = packet;
    version_2[2] = 2;
    assert_eq!(key.open(&version_2), Err(Rejected::Malformed));
}

#[test]
fn the_same_payload_sealed_twice_gives_two_packets() {
    let key = GossipKey::from_cookie("cookie");
    let a = sealed(&key, NOW, 1, b"same");
    let b = sealed(&key, NOW, 2, b"same");
    assert_ne!(a, b);
    let mut guard = ReplayGuard::new(Duration::from_secs(30), 16);
    assert_eq!(guard.admit(&key.open(&a).unwrap(), NOW), Ok(()));
    assert_eq!(guard.admit(&key.open(&b).unwrap(), NOW), Ok(()));
}

fn packet(at: u64, tag: u8) -> Opened<'static> {
    Opened {
        sent_at_ms: at,
        tag: [tag; 32],
        payload: b"",
    }
}

#[test]
fn a_packet_is_accepted_once_and_only_within_the_window() {
    let mut guard = ReplayGuard::new(Duration::from_secs(30), 1024);
    assert_eq!(guard.admit(&packet(NOW, 1), NOW), Ok(()));
    assert_eq!(
        guard.admit(&packet(NOW, 1), NOW + 1),
        Err(Rejected::Replayed)
    );
    assert_eq!(
        guard.admit(&packet(NOW, 1), NOW + 30_000),
        Err(Rejected::Replayed),
        "still remembered at the edge of the window"
    );
    // Then its timestamp alone refuses it.
    assert_eq!(
        guard.admit(&packet(NOW, 1), NOW + 30_001),
        Err(Rejected::Stale)
    );
    // Old and future stamps, just outside and just inside the window.
    assert_eq!(
        guard.admit(&packet(NOW - 30_001, 2), NOW),
        Err(Rejected::Stale)
    );
    assert_eq!(
        guard.admit(&packet(NOW + 30_001, 3), NOW),
        Err(Rejected::Stale)
    );
    assert_eq!(guard.admit(&packet(NOW - 30_000, 4), NOW), Ok(()));
    assert_eq!(guard.admit(&packet(NOW + 30_000, 5), NOW), Ok(()));
    assert_eq!(
        guard.admit(&packet(NOW + 30_000, 5), NOW),
        Err(Rejected::Replayed)
    );
    assert_eq!(guard.admit(&packet(0, 6), NOW), Err(Rejected::Stale));
    assert_eq!(guard.admit(&packet(u64::MAX, 7), NOW), Err(Rejected::Stale));
}

#[test]
fn memory_is_bounded_by_the_window_and_the_capacity() {
    let mut guard = ReplayGuard::new(Duration::from_secs(30), 1024);
    for tag in 0..100u8 {
        guard.admit(&packet(NOW, tag), NOW).unwrap();
    }
    assert_eq!(guard.remembered(), 100);
    // A packet from a clock ahead outlives the others.
    guard.admit(&packet(NOW + 20_000, 200), NOW).unwrap();
    // Once their stamps leave the window they are forgotten.
    guard
        .admit(&packet(NOW + 31_000, 201), NOW + 31_000)
        .unwrap();
    assert_eq!(guard.remembered(), 2);
    assert_eq!(
        guard.admit(&packet(NOW + 20_000, 200), NOW + 31_000),
        Err(Rejected::Replayed)
    );

    let mut small = ReplayGuard::new(Duration::from_secs(30), 3);
    for tag in 0..10u8 {
        small
            .admit(&packet(NOW + u64::from(tag), tag), NOW)
            .unwrap();
        assert!(small.remembered() <= 3);
    }
    // The newest are the ones remembered.
    assert_eq!(
        small.admit(&packet(NOW + 9, 9), NOW),
        Err(Rejected::Replayed)
    );
}

#[test]
fn keys_are_never_printed() {
    let key = GossipKey::from_cookie("super secret cookie");
    assert_eq!(format!("{key:?}"), "GossipKey(<redacted>)");
}
