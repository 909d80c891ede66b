//! Access before spawn: a request for a conversation the asker may not use is
//! answered without starting its entity.
//!
//! A running Conversation checks access itself. For one that is not running,
//! the region decides first, from what it knows without the entity:
//!
//! | conversation | known from | decision |
//! |---|---|---|
//! | `dm:a:b` | the id alone | a party, or `forbidden` |
//! | `group:g` in [`GroupCache`] | the cache | member / owner / absent, as the entity would answer |
//! | `group:g` not cached | a store read of the group, one per key at a time | the same, and the answer is cached |
//!
//! Only a request that would pass spawns the entity, which checks again from its
//! own state: the cache can only make a refusal cheap, never let someone in.
//! While the group is read, later requests for the same key wait behind the
//! first (held in the registry, in order, at most
//! [`MAX_HELD_PER_KEY`](crate::region::registry::MAX_HELD_PER_KEY)); at most
//! [`MAX_LOOKUPS`] reads run at once, and past that a request is answered
//! `overloaded`.
//!
//! **Why the cache is never stale.** Only a group's entity changes the group, and
//! it runs on the group's owner node, which is where the cache entry lives: the
//! entity writes its new state into the cache with every change. When the
//! group's shard leaves this node, its entries are dropped (the next owner may
//! change it); a read that started before such a drop, or before a change, is
//! not cached ([`GroupCache::version`]). A read waits for the conversation's
//! hand-off gate, so it sees what a previous owner wrote.
//!
//! Metrics: `chorus_access_refusals_total{reason}` (answered without an entity:
//! `forbidden`, `not_found`, `taken`, `overloaded`, `store`),
//! `chorus_access_lookups_total`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use chorus_store::GroupRecord;
use chorus_wire::{ConvId, ErrorCode};

use super::{Conversation, ConversationMsg};
use crate::region::ShardRegion;
use crate::region::registry::{Admission, Delivery, Released};

/// Group reads for access checks running at once.
pub(crate) const MAX_LOOKUPS: usize = 256;

/// What an access check needs to know of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupAccess {
    owner: String,
    /// Sorted.
    members: Vec<String>,
}

impl GroupAccess {
    pub(crate) fn of(group: &GroupRecord) -> Self {
        let mut members = group.members.clone();
        members.sort();
        Self {
            owner: group.owner.clone(),
            members,
        }
    }

    fn is_member(&self, user: &str) -> bool {
        self.members
            .binary_search_by(|m| m.as_str().cmp(user))
            .is_ok()
    }

    /// What the entry costs against the cache's bound.
    fn weight(&self) -> usize {
        1 + self.members.len()
    }
}

/// What a request must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule<'a> {
    /// Nothing checked here (internal messages).
    Free,
    /// `user` is a dm party or a group member.
    Member(&'a str),
    /// `user` owns the group.
    Owner(&'a str),
    /// The group does not exist yet (`group_create`).
    Absent,
}

/// The rule of a Conversation message.
pub(crate) fn rule_of(msg: &ConversationMsg) -> Rule<'_> {
    match msg {
        ConversationMsg::Send(req) => Rule::Member(&req.sender),
        ConversationMsg::History(req, _)
        | ConversationMsg::GroupLeave(req)
        | ConversationMsg::GroupInfo(req) => Rule::Member(&req.user),
        ConversationMsg::Read { user, .. } | ConversationMsg::Typing { user, .. } => {
            Rule::Member(user)
        }
        ConversationMsg::GroupAdd(req, _) | ConversationMsg::GroupRemove(req, _) => {
            Rule::Owner(&req.user)
        }
        ConversationMsg::GroupCreate(..) => Rule::Absent,
        _ => Rule::Free,
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let the entity have it.
    Allow,
    /// Answer it now, with the entity's own words.
    Deny(Refusal),
    /// The group must be read first.
    Unknown,
}

/// Why a request was answered without its entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// The `reason` label of `chorus_access_refusals_total`.
    pub(crate) reason: &'static str,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>, reason: &'static str) -> Self {
        Self {
            code,
            message: message.into(),
            reason,
        }
    }

    pub(crate) fn overloaded() -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "too many access checks at once; retry",
            "overloaded",
        )
    }

    pub(crate) fn store(e: &str) -> Self {
        Self::new(ErrorCode::Internal, format!("store: {e}"), "store")
    }
}

/// Decides `rule` for `conv`; `group` is what is known of a group conversation
/// (`None`: nothing; `Some(None)`: it does not exist).
pub(crate) fn verdict(
    conv: &ConvId,
    rule: Rule<'_>,
    group: Option<Option<&GroupAccess>>,
) -> Verdict {
    match (conv, rule) {
        (_, Rule::Free) => Verdict::Allow,
        (ConvId::Dm(..), Rule::Member(user)) => {
            if conv.is_dm_party(user) {
                Verdict::Allow
            } else {
                Verdict::Deny(Refusal::new(
                    ErrorCode::Forbidden,
                    "not a party of this conversation",
                    "forbidden",
                ))
            }
        }
        (ConvId::Group(id), rule) => match (group, rule) {
            (None, _) => Verdict::Unknown,
            (Some(None), Rule::Absent) => Verdict::Allow,
            (Some(None), _) => Verdict::Deny(Refusal::new(
                ErrorCode::NotFound,
                "no such group",
                "not_found",
            )),
            (Some(Some(_)), Rule::Absent) => Verdict::Deny(Refusal::new(
                ErrorCode::Invalid,
                format!("group id {id:?} is taken"),
                "taken",
            )),
            (Some(Some(g)), Rule::Member(user)) => {
                if g.is_member(user) {
                    Verdict::Allow
                } else {
                    Verdict::Deny(Refusal::new(
                        ErrorCode::Forbidden,
                        "not a member of this group",
                        "forbidden",
                    ))
                }
            }
            (Some(Some(g)), Rule::Owner(user)) => {
                if g.owner == user {
                    Verdict::Allow
                } else {
                    Verdict::Deny(Refusal::new(
                        ErrorCode::Forbidden,
                        "only the owner may change members",
                        "forbidden",
                    ))
                }
            }
            (Some(Some(_)), Rule::Free) => Verdict::Allow,
        },
        // A dm has no owner and is never created; a live room has no messages
        // of this kind. The entity answers those.
        _ => Verdict::Allow,
    }
}

struct Cached {
    /// `None`: the group does not exist.
    group: Option<Arc<GroupAccess>>,
    last_used: u64,
}

impl Cached {
    fn weight(&self) -> usize {
        self.group.as_ref().map_or(1, |g| g.weight())
    }
}

struct CacheInner {
    groups: HashMap<String, Cached>,
    /// Σ weight of the entries.
    held: usize,
    tick: u64,
    /// Bumped by every change and every drop: a read that started at an older
    /// version is not cached.
    version: u64,
}

/// What this node knows of the groups it owns, bounded by the number of member
/// ids it holds (see the module docs).
pub(crate) struct GroupCache {
    inner: Mutex<CacheInner>,
    /// The bound on Σ (1 + members) over the entries.
    max_weight: usize,
    /// Group reads running (at most [`MAX_LOOKUPS`]).
    lookups: AtomicUsize,
}

impl GroupCache {
    pub(crate) fn new(max_weight: usize) -> Self {
        Self {
            inner: Mutex::new(CacheInner {
                groups: HashMap::new(),
                held: 0,
                tick: 0,
                version: 0,
            }),
            max_weight: max_weight.max(1),
            lookups: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, CacheInner> {
        // Each critical section leaves the map and its weight consistent.
        self.inner.lock()
    }

    /// What is known of group `id`: `None` when not cached.
    pub(crate) fn get(&self, id: &str) -> Option<Option<Arc<GroupAccess>>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.groups.get_mut(id)?;
        entry.last_used = tick;
        Some(entry.group.clone())
    }

    /// The version a read must start at to be cached.
    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    /// A group's entity changed it (or read it): its state now.
    pub(crate) fn put(&self, id: &str, group: Option<GroupAccess>) {
        let mut inner = self.lock();
        inner.version += 1;
        Self::insert(&mut inner, self.max_weight, id, group.map(Arc::new));
    }

    /// A read that started at `version` found `group`: cached unless something
    /// changed since.
    pub(crate) fn put_read(&self, version: u64, id: &str, group: Option<Arc<GroupAccess>>) {
        let mut inner = self.lock();
        if inner.version == version {
            Self::insert(&mut inner, self.max_weight, id, group);
        }
    }

    fn insert(inner: &mut CacheInner, max: usize, id: &str, group: Option<Arc<GroupAccess>>) {
        inner.tick += 1;
        let entry = Cached {
            group,
            last_used: inner.tick,
        };
        inner.held += entry.weight();
        if let Some(old) = inner.groups.insert(id.to_string(), entry) {
            inner.held -= old.weight();
        }
        if inner.held > max {
            Self::evict(inner, max);
        }
    }

    /// Drops the least recently used entries until a tenth of the bound is free,
    /// so that the scan is paid once per many inserts.
    fn evict(inner: &mut CacheInner, max: usize) {
        let target = max - max / 10;
        let mut by_age: Vec<(u64, String)> = inner
            .groups
            .iter()
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, key) in by_age {
            if inner.held <= target {
                break;
            }
            if let Some(old) = inner.groups.remove(&key) {
                inner.held -= old.weight();
            }
        }
        metrics::gauge!("chorus_access_cache_groups").set(inner.groups.len() as f64);
    }

    /// Drops every group whose key `leaves` (its shard moved away).
    pub(crate) fn drop_where(&self, leaves: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        inner.version += 1;
        let gone: Vec<String> = inner
            .groups
            .keys()
            .filter(|id| leaves(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(old) = inner.groups.remove(&id) {
                inner.held -= old.weight();
            }
        }
    }

    /// Takes a lookup slot; false when [`MAX_LOOKUPS`] run already.
    pub(crate) fn start_lookup(&self) -> bool {
        let taken = self
            .lookups
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_LOOKUPS).then_some(n + 1)
            })
            .is_ok();
        if taken {
            metrics::counter!("chorus_access_lookups_total").increment(1);
        }
        taken
    }

    /// Gives a lookup slot back.
    pub(crate) fn end_lookup(&self) {
        self.lookups.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ShardRegion {
    /// Spawns the Conversation entity of `conv`.
    /// Delivers to the Conversation of `conv` on this node: to its entity if it
    /// runs, else after the access check (see `access`).
    pub(crate) fn local_conversation(&self, conv: &ConvId, key: &str, msg: ConversationMsg) {
        let groups = self.group_cache();
        let admit = |msg: ConversationMsg| {
            let cached = match conv {
                ConvId::Group(id) => groups.get(id),
                _ => Some(None),
            };
            match verdict(conv, rule_of(&msg), cached.as_ref().map(Option::as_deref)) {
                Verdict::Allow => Admission::Spawn(msg),
                Verdict::Deny(why) => Admission::Refuse(msg, why),
                Verdict::Unknown if groups.start_lookup() => Admission::Hold(msg),
                Verdict::Unknown => Admission::Refuse(msg, Refusal::overloaded()),
            }
        };
        let spawn = || self.spawn::<Conversation>(conv);
        match self
            .registry::<Conversation>()
            .deliver(key, spawn, admit, msg)
        {
            Delivery::Sent | Delivery::Queued => {}
            Delivery::Refused(msg, why) => refuse(msg, &why),
            Delivery::Full(msg) => refuse(msg, &Refusal::overloaded()),
            Delivery::LookupNeeded => {
                if let ConvId::Group(id) = conv {
                    self.look_up_group(conv.clone(), id.clone());
                }
            }
        }
    }

    /// Reads group `id` for the messages held for its conversation, caches what
    /// it found, and lets them through or answers them, in order.
    fn look_up_group(&self, conv: ConvId, id: String) {
        let region = self.clone();
        let version = self.group_cache().version();
        tokio::spawn(async move {
            let key = conv.to_string();
            // What a previous owner wrote must be visible to the read.
            region.gate(&key, None).wait().await;
            let found = region.store().group(&id).await;
            region.group_cache().end_lookup();
            let found = match found {
                Ok(group) => {
                    let group = group.map(|g| Arc::new(GroupAccess::of(&g)));
                    region.group_cache().put_read(version, &id, group.clone());
                    Ok(group)
                }
                Err(e) => Err(Refusal::store(&e.to_string())),
            };
            let local = region.placement().is_local(&key);
            let spawn = || region.spawn::<Conversation>(&conv);
            let back = region
                .registry::<Conversation>()
                .release(&key, spawn, |msg| {
                    if !local {
                        return Released::Reroute(msg);
                    }
                    match &found {
                        Err(why) => Released::Refuse(msg, why.clone()),
                        Ok(group) => {
                            let known = Some(group.as_deref());
                            match verdict(&conv, rule_of(&msg), known) {
                                Verdict::Deny(why) => Released::Refuse(msg, why),
                                Verdict::Allow | Verdict::Unknown => Released::Deliver(msg),
                            }
                        }
                    }
                });
            for released in back {
                match released {
                    Released::Refuse(msg, why) => refuse(msg, &why),
                    Released::Reroute(msg) | Released::Deliver(msg) => {
                        region.route::<Conversation>(&conv, msg, 0, true);
                    }
                }
            }
        });
    }
}

/// Answers a Conversation message that was refused without its entity.
fn refuse(msg: ConversationMsg, why: &Refusal) {
    metrics::counter!("chorus_access_refusals_total", "reason" => why.reason).increment(1);
    msg.refuse(why.code, &why.message);
}

#[cfg(test)]
mod tests;
