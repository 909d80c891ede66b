use std::net::SocketAddr;

use super::{Member, MemberStatus, newest_per_node};

fn member(node_id: &str, generation: u64) -> Member {
    Member {
        node_id: node_id.to_string(),
        generation,
        gossip_addr: SocketAddr::from(([127, 0, 0, 1], 7403)),
        cluster_addr: "127.0.0.1:7404".into(),
        tcp: String::new(),
        ws: String::new(),
        admin: String::new(),
        status: MemberStatus::Serving,
        load: 0,
        alive: true,
    }
}

#[test]
fn statuses_parse_their_own_spelling_only() {
    for status in [
        MemberStatus::Joining,
        MemberStatus::Serving,
        MemberStatus::Draining,
    ] {
        assert_eq!(MemberStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(MemberStatus::parse("Serving"), None);
    assert_eq!(MemberStatus::parse(""), None);
}

#[test]
fn the_newest_generation_of_each_node_is_its_member() {
    let members = newest_per_node(
        [
            member("node-b", 5),
            member("node-a", 9),
            member("node-b", 7),
            member("node-b", 6),
        ]
        .into_iter(),
    );
    let seen: Vec<(&str, u64)> = members
        .iter()
        .map(|m| (m.node_id.as_str(), m.generation))
        .collect();
    assert_eq!(seen, [("node-a", 9), ("node-b", 7)]);
}
