use std::time::Duration;

use ractor::Message;
use ractor::message::SerializedMessage;

use super::endpoint::EndpointMsg;
use super::frame::{self, FrameError};
use super::peer_name;
use super::peers::backoff;

#[test]
fn a_frame_round_trips() {
    let bytes = frame::encode("node-1", b"hello");
    assert_eq!(
        frame::decode(bytes),
        Ok(("node-1".to_string(), b"hello".to_vec()))
    );
    let empty = frame::encode("a", b"");
    assert_eq!(frame::decode(empty), Ok(("a".to_string(), Vec::new())));
}

#[test]
fn malformed_frames_are_refused_without_panicking() {
    assert_eq!(frame::decode(Vec::new()), Err(FrameError::Short));
    assert_eq!(frame::decode(b"CF\x01".to_vec()), Err(FrameError::Short));
    assert_eq!(
        frame::decode(b"XX\x01\x01a".to_vec()),
        Err(FrameError::BadMagic)
    );
    assert_eq!(
        frame::decode(b"CF\x02\x01a".to_vec()),
        Err(FrameError::Version(2))
    );
    // The announced sender is longer than the frame.
    assert_eq!(
        frame::decode(b"CF\x01\x09ab".to_vec()),
        Err(FrameError::Short)
    );
    assert_eq!(
        frame::decode(b"CF\x01\x00rest".to_vec()),
        Err(FrameError::BadSender)
    );
    assert_eq!(
        frame::decode(b"CF\x01\x02a b".to_vec()),
        Err(FrameError::BadSender)
    );
    assert_eq!(
        frame::decode(b"CF\x01\x02\xff\xfe".to_vec()),
        Err(FrameError::BadSender)
    );
    let long = [b"CF\x01\x41".as_slice(), &[b'a'; 65]].concat();
    assert_eq!(frame::decode(long), Err(FrameError::BadSender));

    // Every prefix and every single-byte corruption of a good frame decodes or is
    // refused; none panics.
    let good = frame::encode("node-7", b"payload");
    for len in 0..=good.len() {
        let _ = frame::decode(good[..len].to_vec());
    }
    for i in 0..good.len() {
        for value in [0u8, 1, 0x40, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] = value;
            let _ = frame::decode(bad);
        }
    }
}

#[test]
fn only_frames_deserialize_as_frames() {
    let frame = EndpointMsg::Frame(vec![1, 2, 3]);
    let serialized = frame.serialize().expect("a frame serializes");
    assert!(matches!(
        EndpointMsg::deserialize(serialized),
        Ok(EndpointMsg::Frame(bytes)) if bytes == [1, 2, 3]
    ));
    let other = SerializedMessage::Cast {
        variant: "something.else".into(),
        args: vec![0xff; 10],
        metadata: Some(vec![1]),
    };
    assert!(matches!(
        EndpointMsg::deserialize(other),
        Ok(EndpointMsg::Malformed(_))
    ));
    assert!(matches!(
        EndpointMsg::deserialize(SerializedMessage::CallReply(7, vec![1])),
        Ok(EndpointMsg::Malformed(_))
    ));
}

#[test]
fn peer_names_carry_node_id_and_generation() {
    let name = peer_name::encode("node-1", 1_700_000_000_123);
    assert_eq!(name, "node-1~1700000000123");
    assert_eq!(
        peer_name::decode(&format!("{name}@127.0.0.1")),
        Some(("node-1".to_string(), 1_700_000_000_123))
    );
    assert_eq!(peer_name::decode("node-1@host"), None);
    assert_eq!(peer_name::decode("node-1~x@host"), None);
    assert_eq!(peer_name::decode("bad id~1@host"), None);
    assert_eq!(peer_name::decode("~1@host"), None);
}

#[test]
fn backoff_doubles_up_to_its_ceiling_with_jitter() {
    for _ in 0..100 {
        let first = backoff(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let third = backoff(3);
        assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
        let late = backoff(u32::MAX);
        assert!(late >= Duration::from_millis(2500) && late <= Duration::from_millis(5000));
    }
}
