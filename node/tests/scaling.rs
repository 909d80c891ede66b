//! Predictive scaling on a real node: clients connect in a steady ramp, the node
//! samples its connections every second, and `chorusctl scaling status` (the
//! built binary, against the admin API) shows the recommendation rising ahead
//! of the load — above what the current load alone needs, before the ramp's
//! peak — while the actuator command runs with each new count.
//!
//! Real time: the node samples on its own clock, so the test waits for samples
//! (polling the admin API once a second), about 45 s in all.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Output;
use std::time::Duration;

use chorus_config::Secret;
use common::{RawTcp, start_node_with};

const TOKEN: &str = "scaling-test-token";

async fn chorusctl(admin: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorusctl"));
    command
        .env("CHORUS_ADMIN", admin)
        .env("CHORUS_ADMIN_TOKEN", TOKEN)
        .args(["--timeout", "5"])
        .args(args)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("chorusctl finishes")
        .expect("chorusctl runs")
}

async fn status(admin: &str) -> serde_json::Value {
    let out = chorusctl(admin, &["--json", "scaling", "status"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test]
async fn recommendation_rises_before_the_ramp_peaks() {
    let scratch = tempfile::tempdir().unwrap();
    let actuated = scratch.path().join("replicas.log");
    let script = format!("echo {{replicas}} >> {}", actuated.display());
    let node = start_node_with(|c| {
        c.admin.token = Some(Secret::new(TOKEN));
        c.scaling.sample_s = 1;
        c.scaling.forecast_every_s = 1;
        c.scaling.window = 24;
        c.scaling.history_samples = 600;
        c.scaling.per_node_capacity = 10;
        c.scaling.target_percent = 100;
        c.scaling.startup_s = 5;
        c.scaling.margin_s = 5;
        c.scaling.max_nodes = 50;
        c.scaling.actuator = vec!["sh".into(), "-c".into(), script.clone()];
    })
    .await;
    let admin = node.node.addrs().admin.to_string();

    // The ramp: two more connections a second for 45 s (peak: 90 connections).
    let ramp_s = 45u32;
    let mut clients = Vec::new();
    let mut ahead = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for second in 0..ramp_s {
        every.tick().await;
        for k in 0..2 {
            clients.push(RawTcp::login(&node, &format!("u{second}x{k}")).await);
        }
        if second < 26 || ahead.is_some() {
            continue;
        }
        let s = status(&admin).await;
        let recommended = s["recommended_nodes"].as_u64().unwrap_or(0);
        let reactive = s["reactive_nodes"].as_u64().unwrap_or(u64::MAX);
        if s["forecast"].is_object() && recommended > reactive {
            ahead = Some((second, recommended, reactive, s));
        }
    }
    let peak_connections = clients.len();
    let (second, recommended, reactive, seen) =
        ahead.expect("during the ramp the recommendation ran ahead of the current load");
    assert!(second < ramp_s - 1, "before the peak");
    assert!(
        seen["current_load"].as_f64().unwrap() < peak_connections as f64,
        "the load was still below its peak: {seen}"
    );
    eprintln!("at {second} s: {recommended} nodes recommended, {reactive} for the load now");

    // The table form says the same.
    let out = chorusctl(&admin, &["scaling", "status"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for label in [
        "recommended nodes",
        "for the load now",
        "forecast peak",
        "actuator",
    ] {
        assert!(text.contains(label), "{label:?} in\n{text}");
    }
    let out = chorusctl(&admin, &["scaling", "forecast"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("expected"));
    let out = chorusctl(&admin, &["--json", "scaling", "series"]).await;
    let series: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(series["points"].as_array().unwrap().len() >= 24);

    // The actuator ran for rising counts, none above what was recommended.
    let log = std::fs::read_to_string(&actuated).expect("the actuator ran");
    let counts: Vec<u64> = log.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert!(counts.len() >= 2, "{counts:?}");
    assert!(
        counts.windows(2).all(|w| w[1] >= w[0]),
        "a ramp only adds nodes: {counts:?}"
    );
    drop(clients);
    node.node.shutdown().await;
}

/// The config file of a `chorus` process whose history outlives it: ephemeral
/// loopback ports, data in `dir` (or a keyspace of its own on the scylla
/// backend under test), samples every second, stored every two.
fn restartable_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut defaults = chorus_config::Config::default();
    common::use_backend_under_test(&mut defaults);
    let storage = match defaults.storage.backend {
        chorus_config::StorageBackend::Scylla => format!(
            "backend = \"scylla\"\ncontact_points = [\"{}\"]\nkeyspace = \"{}\"\nconsistency = \"one\"\n",
            defaults.storage.contact_points[0], defaults.storage.keyspace
        ),
        chorus_config::StorageBackend::Embedded => {
            format!("path = {:?}\n", dir.join("data").display().to_string())
        }
    };
    let config = format!(
        "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [storage]\n{storage}\
         [admin]\ntoken = \"{TOKEN}\"\n\
         [scaling]\nsample_s = 1\nforecast_every_s = 1\nwindow = 24\nhistory_samples = 600\n\
         store_every_s = 2\nper_node_capacity = 10\ntarget_percent = 100\nstartup_s = 5\n\
         margin_s = 5\nmax_nodes = 50\n"
    );
    let file = dir.join("node.toml");
    std::fs::write(&file, config).unwrap();
    file
}

/// Polls `chorusctl scaling status` once a second until `done` holds, for at
/// most `within`; returns the status that satisfied it.
async fn status_until(
    admin: &str,
    within: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = status(admin).await;
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {s}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A node gathers a window of samples and writes them to the store; killed
/// with SIGKILL and restarted on the same data, it forecasts at its first
/// tick from the stored history, where a node without it would wait a whole
/// window (24 s here) of new samples.
#[tokio::test]
async fn a_restarted_node_forecasts_at_once_from_the_stored_history() {
    let scratch = tempfile::tempdir().unwrap();
    let file = restartable_config(scratch.path());

    let mut first = common::process::serve(&file)
        .spawn()
        .expect("chorus starts");
    let listening = common::process::listening(&mut first);
    let admin = listening.admin.to_string();
    let mut clients = Vec::new();
    for k in 0..12 {
        clients.push(RawTcp::login_at(listening.tcp, &format!("keep{k}")).await);
    }
    // A full window in the store, not only in memory.
    let before = status_until(&admin, Duration::from_secs(90), |s| {
        s["store"]["written"].as_u64().unwrap_or(0) >= 30 && s["forecast"].is_object()
    })
    .await;
    let written = before["store"]["written"].as_u64().unwrap();
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    drop(clients);

    let restarted_at = std::time::Instant::now();
    let mut second = common::process::serve(&file)
        .spawn()
        .expect("chorus restarts");
    let listening = common::process::listening(&mut second);
    let admin = listening.admin.to_string();
    let after = status_until(&admin, Duration::from_secs(20), |s| {
        s["forecast"].is_object()
    })
    .await;
    let took = restarted_at.elapsed();
    eprintln!(
        "wrote {written} samples before SIGKILL; forecast {:.1} s after the restart: {after}",
        took.as_secs_f64()
    );
    let restored = &after["restored"];
    assert!(
        restored["samples"].as_u64().unwrap() >= written,
        "every sample written before the kill was read back: {after}"
    );
    assert_eq!(restored["members"], 1, "{after}");
    assert!(
        after["samples"].as_u64().unwrap() >= 24,
        "the series holds a whole window at once: {after}"
    );
    assert!(
        took < Duration::from_secs(12),
        "forecast in {took:?}, well before a window of new samples (24 s)"
    );
    let members: Vec<&str> = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert_eq!(members, vec!["node-1"], "{after}");
    second.kill().unwrap();
    second.wait().unwrap();
}
