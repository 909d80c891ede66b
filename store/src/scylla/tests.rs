//! Unit tests of the parts that need no database: seq ranges, buckets, contact
//! points, keyspace names. Everything that talks to a server is tested against a
//! real Cassandra node in `tests/scylla_*.rs`.

use super::read::{bucket_of, seq_range};
use super::schema::check_keyspace_name;
use super::{BUCKET_SIZE, with_default_port};
use crate::HistoryQuery;

fn q(after: Option<u64>, before: Option<u64>) -> HistoryQuery {
    HistoryQuery {
        after,
        before,
        limit: 10,
    }
}

#[test]
fn seq_ranges_follow_the_protocol_bounds() {
    let max = i64::MAX;
    assert_eq!(seq_range(&q(None, None)), Some((0, max)));
    assert_eq!(seq_range(&q(Some(0), None)), Some((1, max)));
    assert_eq!(seq_range(&q(Some(4), Some(9))), Some((5, 8)));
    assert_eq!(seq_range(&q(None, Some(1))), Some((0, 0)));
    // Nothing can qualify.
    assert_eq!(seq_range(&q(None, Some(0))), None);
    assert_eq!(seq_range(&q(Some(5), Some(6))), None);
    assert_eq!(seq_range(&q(Some(10), Some(5))), None);
    assert_eq!(seq_range(&q(Some(u64::MAX), None)), None);
    assert_eq!(seq_range(&q(Some(i64::MAX as u64), None)), None);
    // Bounds past what a bigint holds are clamped, not wrapped.
    assert_eq!(seq_range(&q(None, Some(u64::MAX))), Some((0, max)));
    assert_eq!(seq_range(&q(Some(max as u64 - 1), None)), Some((max, max)));
}

#[test]
fn buckets_split_at_multiples_of_the_bucket_size() {
    let size = BUCKET_SIZE as i64;
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(size - 1), 0);
    assert_eq!(bucket_of(size), 1);
    assert_eq!(bucket_of(3 * size + 7), 3);
    assert_eq!(bucket_of(i64::MAX), i64::MAX / size);
}

#[test]
fn contact_points_get_the_default_port() {
    assert_eq!(with_default_port("127.0.0.1:9142"), "127.0.0.1:9142");
    assert_eq!(with_default_port("127.0.0.1"), "127.0.0.1:9042");
    assert_eq!(with_default_port("db1"), "db1:9042");
    assert_eq!(with_default_port("[::1]:9142"), "[::1]:9142");
    assert_eq!(with_default_port("::1"), "[::1]:9042");
}

#[test]
fn keyspace_names_are_plain_identifiers() {
    for good in ["chorus", "Chorus_2", "a", &"k".repeat(48)] {
        assert!(check_keyspace_name(good).is_ok(), "{good}");
    }
    for bad in ["", "_x", "a-b", "a.b", "ks; DROP", "é", &"k".repeat(49)] {
        assert!(check_keyspace_name(bad).is_err(), "{bad}");
    }
}
