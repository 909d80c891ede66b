//! Which node runs an entity: a fixed number of shards, each owned by one of the
//! serving members through rendezvous hashing.
//!
//! `shard(key) = fnv1a64(key) mod N`; `owner(shard)` is the member with the
//! highest `mix(fnv1a64(member) ^ shard · φ)`. Every node computes the same table
//! from the same member list, with no coordination. A member joining or leaving
//! moves only the shards it wins or held (about 1/n of them), and the other
//! shards stay where they were.
//!
//! The hash functions are spelled out here rather than taken from `std`, whose
//! hasher may change between Rust releases: nodes built by different compilers
//! must agree.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The splitmix64 finaliser: spreads the bits of a combined hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One placement table: the serving members and the owner of every shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    members: Vec<Arc<str>>,
    /// Index into `members` per shard; empty when there are no members.
    owners: Vec<u16>,
}

impl Table {
    fn build(mut members: Vec<String>, shards: u32) -> Self {
        members.sort();
        members.dedup();
        let members: Vec<Arc<str>> = members.into_iter().map(Arc::from).collect();
        let hashes: Vec<u64> = members.iter().map(|m| fnv1a64(m.as_bytes())).collect();
        let owners = if members.is_empty() {
            Vec::new()
        } else {
            (0..u64::from(shards))
                .map(|shard| {
                    let salt = shard.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let mut best = 0usize;
                    let mut best_score = 0u64;
                    for (i, h) in hashes.iter().enumerate() {
                        let score = mix(h ^ salt);
                        // Ties (practically impossible) go to the smaller id, which
                        // is the earlier one in the sorted list.
                        if i == 0 || score > best_score {
                            best = i;
                            best_score = score;
                        }
                    }
                    u16::try_from(best).unwrap_or(0)
                })
                .collect()
        };
        Self { members, owners }
    }

    /// The serving members, sorted.
    pub fn members(&self) -> &[Arc<str>] {
        &self.members
    }

    /// The owner of `shard`, or `None` with no serving member.
    pub fn owner_of_shard(&self, shard: u32) -> Option<&Arc<str>> {
        let i = *self.owners.get(shard as usize)?;
        self.members.get(usize::from(i))
    }
}

/// The node's current placement. Cheap to read from any thread; replaced whole
/// when membership changes.
#[derive(Debug)]
pub struct Placement {
    node_id: Arc<str>,
    shards: u32,
    table: ArcSwap<Table>,
}

impl Placement {
    /// A placement of `shards` shards in which this node alone serves.
    pub fn single(node_id: &str, shards: u32) -> Self {
        let shards = shards.max(1);
        Self {
            node_id: Arc::from(node_id),
            shards,
            table: ArcSwap::from_pointee(Table::build(vec![node_id.to_string()], shards)),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &Arc<str> {
        &self.node_id
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of an entity key (`user:alice`, `dm:a:b`, `group:g`, `live:r`).
    pub fn shard_of(&self, key: &str) -> u32 {
        (fnv1a64(key.as_bytes()) % u64::from(self.shards)) as u32
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// The owner of `key`, or `None` when no member serves (this node is then
    /// the only place left to run it).
    pub fn owner(&self, key: &str) -> Option<Arc<str>> {
        let shard = self.shard_of(key);
        self.table.load().owner_of_shard(shard).cloned()
    }

    /// Whether `key`'s entity runs here: this node owns its shard, or nobody does.
    pub fn is_local(&self, key: &str) -> bool {
        self.owner(key).is_none_or(|owner| *owner == *self.node_id)
    }

    /// Replaces the serving members; returns the previous table if it changed.
    pub fn set_members(&self, members: Vec<String>) -> Option<Arc<Table>> {
        let next = Table::build(members, self.shards);
        if **self.table.load() == next {
            return None;
        }
        Some(self.table.swap(Arc::new(next)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn owners(p: &Placement) -> Vec<String> {
        let t = p.table();
        (0..p.shards())
            .map(|s| t.owner_of_shard(s).unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_single_node_owns_everything() {
        let p = Placement::single("n1", 64);
        assert!(p.is_local("user:alice"));
        assert!(owners(&p).iter().all(|o| o == "n1"));
    }

    #[test]
    fn the_table_is_the_same_whatever_the_order_of_members() {
        let a = Placement::single("n1", 1024);
        let b = Placement::single("n2", 1024);
        a.set_members(vec!["n1".into(), "n2".into(), "n3".into()]);
        b.set_members(vec!["n3".into(), "n1".into(), "n2".into(), "n2".into()]);
        assert_eq!(owners(&a), owners(&b));
    }

    #[test]
    fn shards_spread_evenly_and_move_minimally() {
        let p = Placement::single("n1", 1024);
        p.set_members(vec!["n1".into(), "n2".into(), "n3".into()]);
        let three = owners(&p);
        for n in ["n1", "n2", "n3"] {
            let count = three.iter().filter(|o| *o == n).count();
            assert!((250..430).contains(&count), "{n} owns {count} of 1024");
        }
        // n3 leaves: only its shards move; the others stay where they were.
        p.set_members(vec!["n1".into(), "n2".into()]);
        let two = owners(&p);
        for (before, after) in three.iter().zip(&two) {
            if before != "n3" {
                assert_eq!(before, after);
            }
        }
        // It comes back: it takes back exactly what it had.
        p.set_members(vec!["n1".into(), "n2".into(), "n3".into()]);
        assert_eq!(owners(&p), three);
    }

    #[test]
    fn no_member_means_run_it_here() {
        let p = Placement::single("n1", 16);
        assert!(p.set_members(Vec::new()).is_some());
        assert_eq!(p.owner("user:a"), None);
        assert!(p.is_local("user:a"));
        assert!(p.set_members(Vec::new()).is_none(), "unchanged");
    }

    #[test]
    fn the_hash_is_pinned() {
        // Nodes of different builds must agree: pin the functions' values.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let p = Placement::single("n1", 1024);
        assert_eq!(p.shard_of("user:alice"), p.shard_of("user:alice"));
    }
}
