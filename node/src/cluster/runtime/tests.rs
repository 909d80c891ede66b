use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::{Member, MemberStatus, serving, unconfirmed};

fn incarnation(node_id: &str, generation: u64, status: MemberStatus) -> Member {
    Member {
        node_id: node_id.to_string(),
        generation,
        gossip_addr: SocketAddr::from(([127, 0, 0, 1], 7403)),
        cluster_addr: "127.0.0.1:7404".into(),
        tcp: String::new(),
        ws: String::new(),
        admin: String::new(),
        status,
        load: 0,
        alive: true,
    }
}

fn confirmed(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, g)| (n.to_string(), *g)).collect()
}

#[test]
fn a_newer_incarnation_in_gossip_changes_nothing_until_a_session_proves_it() {
    use MemberStatus::*;
    // n2 is proven at generation 20; gossip also shows a generation 99 of it
    // (replayed or forged) that says it is joining.
    let live = vec![
        incarnation("n1", 10, Serving),
        incarnation("n2", 20, Serving),
        incarnation("n2", 99, Joining),
        incarnation("n3", 30, Serving),
    ];
    let proven = confirmed(&[("n2", 20), ("n3", 30)]);
    let none = HashMap::new();
    assert_eq!(
        serving(&live, &proven, &none, ("n1", 10), true),
        ["n1", "n2", "n3"]
    );
    assert_eq!(unconfirmed(&live, &proven, ("n1", 10)), 1);

    // Once a session of generation 99 replaced the old one, 99 is n2, and it is
    // joining.
    let proven = confirmed(&[("n2", 99), ("n3", 30)]);
    assert_eq!(
        serving(&live, &proven, &none, ("n1", 10), true),
        ["n1", "n3"]
    );
    assert_eq!(unconfirmed(&live, &proven, ("n1", 10)), 1);
}

#[test]
fn gossip_about_this_node_under_another_generation_is_ignored() {
    use MemberStatus::*;
    let live = vec![
        incarnation("n1", 10, Serving),
        incarnation("n1", 11, Draining),
        incarnation("n2", 20, Serving),
    ];
    let proven = confirmed(&[("n2", 20)]);
    let none = HashMap::new();
    assert_eq!(
        serving(&live, &proven, &none, ("n1", 10), true),
        ["n1", "n2"]
    );
    assert_eq!(
        serving(&live, &proven, &none, ("n1", 10), false),
        ["n2"],
        "not yet active"
    );
    assert_eq!(unconfirmed(&live, &proven, ("n1", 10)), 1);
}

#[test]
fn unproven_unreachable_and_quarantined_members_do_not_serve() {
    use MemberStatus::*;
    let live = vec![
        incarnation("n1", 10, Serving),
        incarnation("n2", 20, Serving),
        incarnation("n3", 30, Serving),
        incarnation("n4", 40, Serving),
    ];
    let proven = confirmed(&[("n2", 20), ("n3", 30)]);
    let quarantine = HashMap::from([("n3".to_string(), 30)]);
    assert_eq!(
        serving(&live, &proven, &quarantine, ("n1", 10), true),
        ["n1", "n2"]
    );
    assert_eq!(unconfirmed(&live, &proven, ("n1", 10)), 1, "n4");
}
