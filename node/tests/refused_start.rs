//! The `chorus` binary refuses to start with secrets an attacker could guess, and
//! says which key to fix: a short `auth.secret`, and a short or default
//! `cluster.cookie` while gossip or the cluster transport is reachable from other
//! machines. Validation runs before any socket is opened, so the non-loopback
//! addresses below are never bound or contacted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

/// Runs `chorus serve` with `config` as its file (its `[storage]` gets a data
/// directory of its own); it must exit by itself.
fn serve(config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    let path = format!("[storage]\npath = {:?}\n", dir.path().join("data"));
    let config = if config.contains("[storage]\n") {
        config.replace("[storage]\n", &path)
    } else {
        format!("{config}{path}")
    };
    std::fs::write(&file, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("chorus runs")
}

/// Asserts that `chorus` refused `config` as invalid (exit code 2) with a message
/// containing every fragment.
#[track_caller]
fn refused(config: &str, fragments: &[&str]) {
    let out = serve(config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is served");
    for fragment in fragments {
        assert!(stderr.contains(fragment), "{fragment:?} not in {stderr}");
    }
}

#[test]
fn a_jwt_secret_shorter_than_32_bytes_refuses_to_start() {
    refused(
        "[auth]\nmode = \"jwt\"\nsecret = \"only-thirty-one-bytes-of-secret\"\n",
        &[
            "invalid configuration",
            "auth.secret",
            "31 bytes",
            "at least 32",
        ],
    );
}

#[test]
fn a_short_or_default_cookie_beyond_loopback_refuses_to_start() {
    let store = "[storage]\nbackend = \"scylla\"\ncontact_points = [\"127.0.0.1:9042\"]\n";
    // Gossip and the transport on a routable address (a documentation prefix, never
    // bound), with a 20-byte cookie.
    refused(
        &format!(
            "[cluster]\nenabled = true\ncookie = \"twenty-byte-cookie!!\"\n\
             [listen]\ngossip = \"192.0.2.10:7403\"\ncluster = \"192.0.2.10:7404\"\n{store}"
        ),
        &[
            "cluster.cookie",
            "20 bytes",
            "at least 32 bytes",
            "listen.gossip = \"192.0.2.10:7403\"",
            "listen.cluster = \"192.0.2.10:7404\"",
        ],
    );
    // The development default, with a seed that is not loopback.
    refused(
        &format!("[cluster]\nseeds = [\"node-b.example.com:7403\"]\n{store}"),
        &[
            "cluster.cookie",
            "development default",
            "cluster.seeds[0] = \"node-b.example.com:7403\"",
        ],
    );
}
