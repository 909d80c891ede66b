//! Id rules, send targets and conversation ids (docs/protocol.md §2, §6).

mod samples;

use chorus_wire::ids::validate_id;
use chorus_wire::limits::MAX_ID_LEN;
use chorus_wire::{ConvId, IdError, Target};
use samples::Rng;

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

#[test]
fn ids_are_1_to_64_bytes_of_the_allowed_set() {
    for ok in [
        "a",
        "Z",
        "0",
        "_",
        ".",
        "-",
        "alice",
        "user_1.dev-2",
        "..",
        "-x-",
    ] {
        assert_eq!(validate_id("id", ok), Ok(()), "{ok}");
    }
    let all = std::str::from_utf8(ID_CHARS).expect("ASCII");
    assert_eq!(validate_id("id", &all[..MAX_ID_LEN]), Ok(()));
    assert_eq!(validate_id("id", &"x".repeat(MAX_ID_LEN)), Ok(()));
    assert_eq!(
        validate_id("id", &"x".repeat(MAX_ID_LEN + 1)),
        Err(IdError::TooLong { what: "id" })
    );
    assert_eq!(
        validate_id("user id", ""),
        Err(IdError::Empty { what: "user id" })
    );
    for bad in [
        "a b", "a:b", "a/b", "é", "a\0", "a\n", "ä", "👋", "a+b", "a@b", "*", " a",
    ] {
        assert_eq!(
            validate_id("id", bad),
            Err(IdError::BadChar { what: "id" }),
            "{bad:?}"
        );
    }
    // The limit is in bytes: 33 two-byte characters are too long, not a bad character.
    assert_eq!(
        validate_id("id", &"é".repeat(33)),
        Err(IdError::TooLong { what: "id" })
    );
}

#[test]
fn every_byte_outside_the_set_is_refused() {
    for b in 0..=u8::MAX {
        let s = String::from_utf8_lossy(&[b]).into_owned();
        let expected = if ID_CHARS.contains(&b) {
            Ok(())
        } else {
            Err(IdError::BadChar { what: "id" })
        };
        assert_eq!(validate_id("id", &s), expected, "byte {b:#04x}");
    }
}

#[test]
fn targets_parse() {
    assert_eq!(Target::parse("user:bob"), Ok(Target::User("bob".into())));
    assert_eq!(
        Target::parse("group:team-1"),
        Ok(Target::Group("team-1".into()))
    );
    assert_eq!(
        Target::parse("user:"),
        Err(IdError::Empty { what: "user id" })
    );
    assert_eq!(
        Target::parse("group:"),
        Err(IdError::Empty { what: "group id" })
    );
    assert_eq!(
        Target::parse("user:a:b"),
        Err(IdError::BadChar { what: "user id" })
    );
    assert_eq!(
        Target::parse(&format!("group:{}", "g".repeat(65))),
        Err(IdError::TooLong { what: "group id" })
    );
    for bad in [
        "bob",
        "",
        "User:bob",
        "live:r1",
        "dm:a:b",
        "user",
        " user:bob",
        "group",
    ] {
        assert!(
            matches!(Target::parse(bad), Err(IdError::BadAddress(_))),
            "{bad:?}"
        );
    }
    // Hostile input is not echoed back whole.
    match Target::parse(&"x".repeat(10_000)) {
        Err(IdError::BadAddress(s)) => assert!(s.chars().count() <= 80),
        other => panic!("{other:?}"),
    }
}

#[test]
fn targets_map_to_conversations() {
    let bob = Target::parse("user:bob").expect("valid");
    assert_eq!(
        bob.conv_for("alice"),
        ConvId::Dm("alice".into(), "bob".into())
    );
    let alice = Target::parse("user:alice").expect("valid");
    assert_eq!(
        alice.conv_for("bob"),
        ConvId::Dm("alice".into(), "bob".into())
    );
    assert_eq!(
        alice.conv_for("alice"),
        ConvId::Dm("alice".into(), "alice".into())
    );
    let team = Target::parse("group:team").expect("valid");
    assert_eq!(team.conv_for("alice"), ConvId::Group("team".into()));
    assert_eq!(bob.conv_for("alice").to_string(), "dm:alice:bob");
}

#[test]
fn dm_ids_are_in_byte_order() {
    assert_eq!(ConvId::dm("bob", "alice").to_string(), "dm:alice:bob");
    assert_eq!(ConvId::dm("alice", "bob").to_string(), "dm:alice:bob");
    // Byte order, not alphabetical: upper case sorts before lower case, '-' < '.' < digits < '_'.
    assert_eq!(ConvId::dm("alice", "Zed").to_string(), "dm:Zed:alice");
    assert_eq!(ConvId::dm("a_b", "a.b").to_string(), "dm:a.b:a_b");
    assert_eq!(ConvId::dm("a-", "a.").to_string(), "dm:a-:a.");
    assert_eq!(ConvId::dm("ab", "a").to_string(), "dm:a:ab");
    assert_eq!(ConvId::dm("9", "_").to_string(), "dm:9:_");
    assert_eq!(ConvId::dm("me", "me").to_string(), "dm:me:me");
}

#[test]
fn conversation_ids_parse() {
    assert_eq!(
        ConvId::parse("dm:alice:bob"),
        Ok(ConvId::Dm("alice".into(), "bob".into()))
    );
    assert_eq!(
        ConvId::parse("dm:me:me"),
        Ok(ConvId::Dm("me".into(), "me".into()))
    );
    assert_eq!(
        ConvId::parse("group:team"),
        Ok(ConvId::Group("team".into()))
    );
    assert_eq!(ConvId::parse("live:r1"), Ok(ConvId::Live("r1".into())));
    // Out of canonical order, or not an address at all.
    for bad in [
        "dm:bob:alice",
        "dm:alice",
        "dm:",
        "user:bob",
        "alice",
        "",
        "DM:alice:bob",
        "chan:x",
        "group",
    ] {
        assert!(
            matches!(ConvId::parse(bad), Err(IdError::BadAddress(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        ConvId::parse("dm::bob"),
        Err(IdError::Empty { what: "user id" })
    );
    assert_eq!(
        ConvId::parse("dm:alice:"),
        Err(IdError::Empty { what: "user id" })
    );
    assert_eq!(
        ConvId::parse("dm:a:b:c"),
        Err(IdError::BadChar { what: "user id" })
    );
    assert_eq!(
        ConvId::parse("group:"),
        Err(IdError::Empty { what: "group id" })
    );
    assert_eq!(
        ConvId::parse("live:a b"),
        Err(IdError::BadChar { what: "room id" })
    );
}

#[test]
fn dm_parties_and_peers() {
    let dm = ConvId::dm("bob", "alice");
    assert!(dm.is_dm_party("alice") && dm.is_dm_party("bob"));
    assert!(!dm.is_dm_party("carol"));
    assert_eq!(dm.dm_peer("alice"), Some("bob"));
    assert_eq!(dm.dm_peer("bob"), Some("alice"));
    assert_eq!(dm.dm_peer("carol"), None);
    assert_eq!(ConvId::dm("me", "me").dm_peer("me"), Some("me"));
    let group = ConvId::Group("alice".into());
    assert!(!group.is_dm_party("alice"));
    assert_eq!(group.dm_peer("alice"), None);
}

fn random_id(rng: &mut Rng) -> String {
    let len = rng.below(MAX_ID_LEN) + 1;
    (0..len)
        .map(|_| ID_CHARS[rng.below(ID_CHARS.len())] as char)
        .collect()
}

#[test]
fn display_and_parse_round_trip_for_random_ids() {
    let mut rng = Rng::new(2024);
    for _ in 0..5_000 {
        let (x, y) = (random_id(&mut rng), random_id(&mut rng));
        let dm = ConvId::dm(&x, &y);
        assert_eq!(dm, ConvId::dm(&y, &x), "canonical whatever the order");
        let text = dm.to_string();
        assert_eq!(ConvId::parse(&text), Ok(dm.clone()), "{text}");
        let (a, b) = text["dm:".len()..].split_once(':').expect("two parties");
        assert!(a.as_bytes() <= b.as_bytes());
        for conv in [ConvId::Group(x.clone()), ConvId::Live(y.clone())] {
            assert_eq!(ConvId::parse(&conv.to_string()), Ok(conv));
        }
        assert_eq!(
            Target::parse(&format!("user:{x}")),
            Ok(Target::User(x.clone()))
        );
        assert_eq!(
            Target::parse(&format!("group:{y}")),
            Ok(Target::Group(y.clone()))
        );
        if a != b {
            let reversed = format!("dm:{b}:{a}");
            assert!(matches!(
                ConvId::parse(&reversed),
                Err(IdError::BadAddress(_))
            ));
        }
    }
}
