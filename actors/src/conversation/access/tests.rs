//! The access rules and the bounded group cache, without actors.

use std::sync::Arc;

use chorus_store::GroupRecord;
use chorus_wire::{ConvId, ErrorCode};

use super::{GroupAccess, GroupCache, Rule, Verdict, verdict};

fn group(owner: &str, members: &[&str]) -> GroupAccess {
    GroupAccess::of(&GroupRecord {
        id: "g".into(),
        name: "g".into(),
        owner: owner.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    })
}

fn denied(v: Verdict) -> (ErrorCode, String) {
    match v {
        Verdict::Deny(why) => (why.code, why.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_dm_is_decided_from_its_id() {
    let dm = ConvId::dm("alice", "bob");
    assert_eq!(verdict(&dm, Rule::Member("alice"), None), Verdict::Allow);
    assert_eq!(verdict(&dm, Rule::Member("bob"), None), Verdict::Allow);
    assert_eq!(
        denied(verdict(&dm, Rule::Member("mallory"), None)).0,
        ErrorCode::Forbidden
    );
}

#[test]
fn a_group_is_decided_from_what_is_known_of_it() {
    let conv = ConvId::Group("g".into());
    let g = group("owner", &["owner", "member"]);
    assert_eq!(verdict(&conv, Rule::Member("x"), None), Verdict::Unknown);
    assert_eq!(
        verdict(&conv, Rule::Member("member"), Some(Some(&g))),
        Verdict::Allow
    );
    assert_eq!(
        denied(verdict(&conv, Rule::Member("x"), Some(Some(&g)))),
        (ErrorCode::Forbidden, "not a member of this group".into())
    );
    assert_eq!(
        verdict(&conv, Rule::Owner("owner"), Some(Some(&g))),
        Verdict::Allow
    );
    assert_eq!(
        denied(verdict(&conv, Rule::Owner("member"), Some(Some(&g)))).0,
        ErrorCode::Forbidden
    );
    assert_eq!(
        denied(verdict(&conv, Rule::Member("member"), Some(None))),
        (ErrorCode::NotFound, "no such group".into())
    );
    assert_eq!(verdict(&conv, Rule::Absent, Some(None)), Verdict::Allow);
    assert_eq!(
        denied(verdict(&conv, Rule::Absent, Some(Some(&g)))).0,
        ErrorCode::Invalid
    );
    assert_eq!(verdict(&conv, Rule::Free, None), Verdict::Allow);
}

#[test]
fn the_cache_keeps_to_its_bound_dropping_the_least_recently_used() {
    // Each group weighs 1 + 2 members = 3; 30 fit in 100.
    let cache = GroupCache::new(100);
    for i in 0..30 {
        cache.put(&format!("g{i}"), Some(group("a", &["a", "b"])));
    }
    // g0 used again: it is the most recent now.
    assert!(cache.get("g0").is_some());
    for i in 30..40 {
        cache.put(&format!("g{i}"), Some(group("a", &["a", "b"])));
    }
    let held = (0..40)
        .filter(|i| cache.get(&format!("g{i}")).is_some())
        .count();
    assert!(held * 3 <= 100, "{held} groups held");
    assert!(cache.get("g0").is_some(), "the recently used one stays");
    assert!(cache.get("g39").is_some(), "the newest stays");
    assert!(cache.get("g1").is_none(), "the oldest went");
}

#[test]
fn a_read_older_than_a_change_is_not_cached() {
    let cache = GroupCache::new(1000);
    let version = cache.version();
    // The group's entity changes it while a read is on its way.
    cache.put("g", Some(group("a", &["a", "b"])));
    cache.put_read(version, "g", None);
    let known = cache.get("g").expect("cached");
    assert!(
        known.is_some(),
        "the entity's state wins over the late read"
    );

    let version = cache.version();
    cache.put_read(version, "h", Some(Arc::new(group("a", &["a"]))));
    assert!(
        cache.get("h").is_some(),
        "a read with nothing in between is cached"
    );

    cache.drop_where(|id| id == "h");
    assert!(cache.get("h").is_none(), "dropped when its shard leaves");
}

#[test]
fn lookups_are_bounded() {
    let cache = GroupCache::new(10);
    let taken = (0..super::MAX_LOOKUPS + 5)
        .filter(|_| cache.start_lookup())
        .count();
    assert_eq!(taken, super::MAX_LOOKUPS);
    cache.end_lookup();
    assert!(cache.start_lookup());
}
