//! Unit tests of the value rules; the schema is tested through the public API in
//! `tests/`.

use super::rules::{
    host_name_error, host_port_error, is_loopback, is_loopback_host, keyspace_error, node_id_error,
};

#[test]
fn node_ids() {
    assert!(node_id_error("node-1").is_none());
    assert!(node_id_error("a.B_9-z").is_none());
    assert!(node_id_error(&"n".repeat(64)).is_none());
    assert!(node_id_error("").is_some());
    assert!(node_id_error(&"n".repeat(65)).is_some());
    assert!(node_id_error("node 1").is_some());
    assert!(node_id_error("nœud").is_some());
}

#[test]
fn host_ports() {
    for ok in [
        "127.0.0.1:7403",
        "[::1]:9042",
        "db-1.example.com:9042",
        "localhost:1",
        "host.:65535",
    ] {
        assert_eq!(host_port_error(ok), None, "{ok}");
    }
    for bad in [
        "",
        "host",
        "host:",
        ":9042",
        "host:0",
        "1.2.3.4:0",
        "host:99999",
        "::1:9042",
        "a..b:1",
        "-a:1",
        "a b:1",
    ] {
        assert!(host_port_error(bad).is_some(), "{bad}");
    }
    assert!(host_name_error("::1").is_none());
}

#[test]
fn loopback() {
    let yes = [
        "127.0.0.1:1",
        "127.1.2.3:1",
        "[::1]:1",
        "[::ffff:127.0.0.1]:1",
    ];
    let no = ["0.0.0.0:1", "10.0.0.1:1", "[::]:1", "[2001:db8::1]:1"];
    for addr in yes {
        assert!(is_loopback(&addr.parse().expect("test address")), "{addr}");
    }
    for addr in no {
        assert!(!is_loopback(&addr.parse().expect("test address")), "{addr}");
    }
}

#[test]
fn loopback_hosts() {
    for yes in [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "localhost",
        "LocalHost",
    ] {
        assert!(is_loopback_host(yes), "{yes}");
    }
    for no in [
        "0.0.0.0",
        "10.0.0.1",
        "[::]",
        "chat-1.example.com",
        "localhost.example.com",
        "",
    ] {
        assert!(!is_loopback_host(no), "{no}");
    }
}

#[test]
fn keyspaces() {
    assert!(keyspace_error("chorus").is_none());
    assert!(keyspace_error("chorus_test_2").is_none());
    assert!(keyspace_error(&"k".repeat(48)).is_none());
    for bad in [
        "",
        "Chorus",
        "2chorus",
        "_chorus",
        "chorus-test",
        "chorus.x",
        "system",
        "system_auth",
    ] {
        assert!(keyspace_error(bad).is_some(), "{bad}");
    }
    assert!(keyspace_error(&"k".repeat(49)).is_some());
}
