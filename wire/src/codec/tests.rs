//! Unit tests of the codec; the full round-trip suite is in `wire/tests/`.
use super::*;

#[test]
fn oversized_prefix_is_refused_before_allocation() {
    let mut d = TcpDecoder::new(65_536);
    d.buffer().extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_eq!(
        d.next_payload(),
        Err(DecodeError::TooLarge { len: u64::from(u32::MAX), max: 65_536 })
    );
    assert!(d.buffer().capacity() < 1 << 20);
}
