//! Inter-node envelopes: every kind round-trips, and bytes that are not an
//! envelope (truncated, trailing, random, hostile lengths) are errors, not panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chorus_wire::cluster::{
    CloseCode, EntityEnvelope, Envelope, GroupOp, NestedFrame, RequestEnvelope, SessionAddr,
};
use chorus_wire::codec::{decode_envelope, encode_envelope};
use chorus_wire::{DecodeError, LiveItem, Message, Prio, ServerFrame};

fn addr() -> SessionAddr {
    SessionAddr {
        node: "n2".into(),
        generation: 1_763_000_000_000,
        id: 0xdead_beef_0000_0001,
        user: "alice".into(),
    }
}

fn samples() -> Vec<Envelope> {
    let request = RequestEnvelope {
        user: "alice".into(),
        reference: "r1".into(),
        reply: addr(),
    };
    let item = LiveItem {
        seq: 0,
        id: "d1".into(),
        from: "bob".into(),
        body: "666".into(),
        ts_ms: 5,
        prio: Prio::Paid,
    };
    let entity = |msg| Envelope::Entity { hops: 1, msg };
    vec![
        entity(EntityEnvelope::UserAttach {
            user: "alice".into(),
            session: addr(),
            call: 7,
        }),
        entity(EntityEnvelope::UserDetach {
            user: "alice".into(),
            session: 9,
        }),
        entity(EntityEnvelope::UserDeliver {
            user: "alice".into(),
            frame: NestedFrame(ServerFrame::Msg(Message {
                conv: "dm:alice:bob".into(),
                seq: 3,
                id: "m1".into(),
                from: "bob".into(),
                body: "hi 你好".into(),
                ts_ms: 1,
            })),
            except: Some(4),
        }),
        entity(EntityEnvelope::UserKick {
            user: "alice".into(),
        }),
        entity(EntityEnvelope::ConvSend {
            conv: "dm:alice:bob".into(),
            sender: "alice".into(),
            session: addr(),
            client_id: "m1".into(),
            body: "hello".into(),
        }),
        entity(EntityEnvelope::ConvHistory {
            conv: "group:g".into(),
            request: request.clone(),
            after: Some(1),
            before: None,
            limit: 50,
        }),
        entity(EntityEnvelope::ConvRead {
            conv: "group:g".into(),
            user: "alice".into(),
            seq: 9,
        }),
        entity(EntityEnvelope::ConvGroup {
            conv: "group:g".into(),
            request,
            op: GroupOp::Create {
                name: "team".into(),
                members: vec!["alice".into(), "bob".into()],
            },
        }),
        entity(EntityEnvelope::LiveJoin {
            room: "r".into(),
            reference: "j".into(),
            viewer: addr(),
            new_viewer: true,
        }),
        entity(EntityEnvelope::LiveLeave {
            room: "r".into(),
            reference: None,
            reply: None,
            node: "n2".into(),
        }),
        entity(EntityEnvelope::LiveViewers {
            room: "r".into(),
            node: "n2".into(),
            count: 20_000,
        }),
        entity(EntityEnvelope::LiveDanmaku {
            room: "r".into(),
            item: item.clone(),
            reply: addr(),
        }),
        entity(EntityEnvelope::LiveSlowMode {
            room: "r".into(),
            seconds: Some(30),
        }),
        entity(EntityEnvelope::LiveSlowMode {
            room: "r".into(),
            seconds: None,
        }),
        Envelope::Sessions {
            ids: vec![1, 2, 3],
            user: "alice".into(),
            frame: NestedFrame(ServerFrame::Pong),
        },
        Envelope::Close {
            ids: vec![1],
            reason: CloseCode::Kicked,
        },
        Envelope::Reply { call: 7 },
        Envelope::LiveBatch {
            room: "r".into(),
            frame: NestedFrame(ServerFrame::LiveBatch {
                room: "r".into(),
                items: vec![item],
                viewers: 3,
                dropped: 2,
            }),
            weight: 3,
            ordinary: false,
        },
    ]
}

#[test]
fn every_envelope_round_trips() {
    for envelope in samples() {
        let bytes = encode_envelope(&envelope);
        assert_eq!(decode_envelope(&bytes).unwrap(), envelope);
    }
}

#[test]
fn entity_keys_name_the_owner() {
    let keys: Vec<String> = samples()
        .into_iter()
        .filter_map(|e| match e {
            Envelope::Entity { msg, .. } => Some(msg.entity_key()),
            _ => None,
        })
        .collect();
    assert_eq!(keys[0], "user:alice");
    assert_eq!(keys[4], "dm:alice:bob");
    assert_eq!(keys[8], "live:r");
    assert_eq!(keys[12], "live:r", "slow mode goes to the room's owner");
}

/// Variants are appended only: the ones that existed before slow mode keep their
/// index, so nodes of the previous release still decode them.
#[test]
fn slow_mode_is_the_last_entity_variant() {
    let bytes = |msg| encode_envelope(&Envelope::Entity { hops: 0, msg });
    let danmaku = bytes(EntityEnvelope::LiveDanmaku {
        room: "r".into(),
        item: LiveItem {
            seq: 0,
            id: "d".into(),
            from: "u".into(),
            body: String::new(),
            ts_ms: 0,
            prio: Prio::Normal,
        },
        reply: addr(),
    });
    let slow = bytes(EntityEnvelope::LiveSlowMode {
        room: "r".into(),
        seconds: Some(0),
    });
    // Envelope::Entity is 0, hops 0, then the entity variant's index.
    assert_eq!(&danmaku[..3], &[0, 0, 11]);
    assert_eq!(&slow[..3], &[0, 0, 12]);
}

#[test]
fn truncated_and_padded_envelopes_are_errors() {
    for envelope in samples() {
        let bytes = encode_envelope(&envelope);
        for cut in 0..bytes.len() {
            assert!(
                decode_envelope(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(decode_envelope(&padded), Err(DecodeError::TrailingBytes(1)));
    }
}

#[test]
fn garbage_never_panics() {
    // A deterministic xorshift stream: reproducible without a seed file.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..2_000usize {
        let bytes: Vec<u8> = (0..len % 300).map(|_| next() as u8).collect();
        let _ = decode_envelope(&bytes);
    }
    // A hostile length: a string claiming 4 GiB inside a 12-byte envelope.
    let hostile = [0u8, 1, 9, 0xfc, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert!(decode_envelope(&hostile).is_err());
}

#[test]
fn close_codes_are_distinct() {
    let a = encode_envelope(&Envelope::Close {
        ids: vec![],
        reason: CloseCode::Kicked,
    });
    let b = encode_envelope(&Envelope::Close {
        ids: vec![],
        reason: CloseCode::Shutdown,
    });
    assert_ne!(a, b);
}

/// A frame with a trailing field (here `conversation_list.more`, absent) nested
/// in an envelope with a field after it: the frame ends where its length says,
/// so `except` is not read as `more` (the envelope fuzz target found
/// `InvalidBooleanValue(7)` from exactly this envelope).
#[test]
fn a_nested_frame_ends_where_its_length_says() {
    use chorus_wire::{ConversationItem, Trailing};
    for more in [Trailing::ABSENT, Trailing::some(true)] {
        let envelope = Envelope::Entity {
            hops: 1,
            msg: EntityEnvelope::UserDeliver {
                user: "alice".into(),
                frame: NestedFrame(ServerFrame::ConversationList {
                    reference: "c1".into(),
                    items: vec![ConversationItem {
                        conv: "dm:alice:bob".into(),
                        last_seq: 302,
                        read_seq: 300,
                    }],
                    more,
                }),
                except: Some(7),
            },
        };
        assert_eq!(
            decode_envelope(&encode_envelope(&envelope)),
            Ok(envelope.clone())
        );
    }
    // A nested frame whose own bytes do not decode is refused with the envelope.
    let envelope = Envelope::Sessions {
        ids: vec![1],
        user: "alice".into(),
        frame: NestedFrame(ServerFrame::Pong),
    };
    let mut bytes = encode_envelope(&envelope);
    let last = bytes.len() - 1;
    bytes[last] = 0xff; // the nested frame's variant index: no such frame
    assert!(decode_envelope(&bytes).is_err());
}
