//! `[connections]`, `[tls]` and the admin listener's timeouts.

use std::net::IpAddr;

use chorus_config::{Config, IpBlock};

use crate::{assert_one_problem, problems};

#[test]
fn connection_caps_have_documented_defaults() {
    let c = Config::default().connections;
    assert_eq!(
        (c.max_total, c.max_per_ip, c.max_sessions_per_user),
        (50_000, 256, 32)
    );
    assert!(c.per_ip_exempt.is_empty());
    let a = Config::default().admin;
    assert_eq!(
        (a.header_timeout_ms, a.idle_timeout_ms, a.max_connections),
        (5_000, 30_000, 64)
    );
}

#[test]
fn connection_caps_must_be_positive_and_consistent() {
    assert_one_problem(
        "[connections]\nmax_sessions_per_user = 0\n",
        "connections.max_sessions_per_user",
        &["at least 1"],
    );
    assert_one_problem(
        "[connections]\nmax_total = 10\nmax_per_ip = 20\n",
        "connections.max_per_ip",
        &["cannot exceed connections.max_total (10)"],
    );
    assert_one_problem(
        "[admin]\nheader_timeout_ms = 0\n",
        "admin.header_timeout_ms",
        &[],
    );
    assert_one_problem(
        "[admin]\nmax_connections = 0\n",
        "admin.max_connections",
        &[],
    );
}

#[test]
fn exempt_blocks_parse_and_name_the_bad_entry() {
    assert!(
        problems(
            "[connections]\nper_ip_exempt = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n"
        )
        .is_empty()
    );
    assert_one_problem(
        "[connections]\nper_ip_exempt = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
        "connections.per_ip_exempt[1]",
        &["prefix must be 0-32"],
    );
    assert_one_problem(
        "[connections]\nper_ip_exempt = [\"lb.example.com\"]\n",
        "connections.per_ip_exempt[0]",
        &["not an IP address or CIDR block"],
    );
}

#[test]
fn ip_blocks_contain_what_they_should() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("parses");
    let block = IpBlock::parse("10.1.2.3/16").expect("parses");
    assert_eq!(block.addr, ip("10.1.0.0"));
    assert!(block.contains(ip("10.1.255.255")));
    assert!(!block.contains(ip("10.2.0.0")));
    assert!(
        block.contains(ip("::ffff:10.1.9.9")),
        "IPv4-mapped counts as IPv4"
    );
    let v6 = IpBlock::parse("2001:db8::/32").expect("parses");
    assert!(v6.contains(ip("2001:db8:ffff::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert!(!v6.contains(ip("10.1.0.0")));
    let all = IpBlock::parse("0.0.0.0/0").expect("parses");
    assert!(all.contains(ip("203.0.113.9")));
    let one = IpBlock::parse("192.0.2.7").expect("parses");
    assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
}

#[test]
fn tls_needs_both_files_and_a_ca_for_the_cluster() {
    assert!(!Config::default().tls.enabled());
    assert_one_problem(
        "[tls]\ncert = \"node.pem\"\n",
        "tls.key",
        &["required with tls.cert"],
    );
    assert_one_problem(
        "[tls]\nkey = \"node.key\"\n",
        "tls.cert",
        &["required with tls.key"],
    );
    let clustered = "[cluster]\nenabled = true\n[storage]\nbackend = \"scylla\"\ncontact_points = [\"127.0.0.1:9042\"]\n";
    let tls = "[tls]\ncert = \"node.pem\"\nkey = \"node.key\"\n";
    assert_one_problem(
        &format!("{clustered}{tls}"),
        "tls.ca",
        &["tls.cluster = false"],
    );
    assert!(problems(&format!("{clustered}{tls}ca = \"ca.pem\"\n")).is_empty());
    assert!(problems(&format!("{clustered}{tls}cluster = false\n")).is_empty());
    let config = Config::from_toml_str(&format!("{tls}ws = false\n")).expect("parses");
    assert!(config.tls.on_tcp() && !config.tls.on_ws() && config.tls.on_admin());
}
