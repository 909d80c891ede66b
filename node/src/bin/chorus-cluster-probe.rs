//! `chorus-cluster-probe`: one node's cluster layer (membership and transport) and
//! nothing else, driven over stdin and reporting on stdout, one line per event.
//! The multi-process tests in `node/tests/cluster_transport.rs` run several.
//!
//! Events (stdout):
//! - `ready <node> <generation>`: membership and transport are up.
//! - `member <node> <status>`: a node became live, or changed status or generation.
//! - `dead <node>`: a node left the live members.
//! - `connected <node>` / `disconnected <node>`: a transport session came or went.
//! - `recv <from> <hex>`: a frame arrived.
//! - `sent <node>`, `send-error <node> <reason>`: the outcome of a `send`.
//! - `timeout <node> <ms|none>`: the failure detector's current timeout for it.
//! - `error <what>`: a command was not understood.
//!
//! Commands (stdin): `send <node> <hex>`, `sendraw <node> <hex>` (no frame header),
//! `status joining|serving|draining`, `load <n>`, `timeout <node>`, `quit`.
//! End of input is `quit`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chorus_node::cluster::{
    Advertised, Member, MemberStatus, Membership, MembershipConfig, Transport, TransportConfig,
    membership,
};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Flags of the probe.
#[derive(Debug, Parser)]
#[command(about = "Runs one node's cluster layer, driven by stdin, reporting on stdout")]
struct Args {
    /// This node's id.
    #[arg(long)]
    node_id: String,
    /// Gossip UDP address to bind and advertise.
    #[arg(long)]
    gossip: SocketAddr,
    /// Cluster transport TCP address to bind and advertise.
    #[arg(long)]
    cluster: SocketAddr,
    /// Gossip address of a node to join through (repeatable).
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// The shared cluster cookie.
    #[arg(long, default_value = chorus_config::DEV_COOKIE)]
    cookie: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();

    let membership = Membership::start(MembershipConfig {
        node_id: args.node_id.clone(),
        generation: membership::new_generation(),
        gossip_listen: args.gossip,
        gossip_advertise: args.gossip,
        seeds: args.seeds,
        advertised: Advertised {
            cluster: args.cluster.to_string(),
            ..Advertised::default()
        },
        status: MemberStatus::Joining,
        timing: Default::default(),
        gossip_key: membership::GossipKey::from_cookie(&args.cookie),
    })
    .await?;
    let (transport, mut inbox) = Transport::start(
        TransportConfig {
            node_id: args.node_id.clone(),
            generation: membership.generation(),
            listen: args.cluster,
            advertise_host: args.cluster.ip().to_string(),
            cookie: args.cookie,
            inbox_capacity: 1024,
            tls: None,
        },
        membership.live(),
    )
    .await?;
    membership.set_status(MemberStatus::Serving).await;
    println!("ready {} {}", args.node_id, membership.generation());

    tokio::spawn(report_members(membership.live(), args.node_id.clone()));
    tokio::spawn(report_sessions(transport.watch_connected()));
    tokio::spawn(async move {
        while let Some(frame) = inbox.recv().await {
            println!("recv {} {}", frame.from, to_hex(&frame.payload));
        }
    });

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        if !command(&line, &membership, &transport).await {
            break;
        }
    }
    transport.shutdown().await;
    membership.shutdown();
    Ok(())
}

/// Runs one command; `false` means quit.
async fn command(line: &str, membership: &Membership, transport: &Transport) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [verb @ ("send" | "sendraw"), node, rest @ ..] if rest.len() <= 1 => {
            let Some(bytes) = from_hex(rest.first().copied().unwrap_or_default()) else {
                println!("error bad hex");
                return true;
            };
            let result = if *verb == "send" {
                transport.send(node, bytes)
            } else {
                transport.send_unframed(node, bytes)
            };
            match result {
                Ok(()) => println!("sent {node}"),
                Err(error) => println!("send-error {node} {error}"),
            }
        }
        ["status", status] => match MemberStatus::parse(status) {
            Some(status) => membership.set_status(status).await,
            None => println!("error unknown status {status}"),
        },
        ["load", load] => match load.parse() {
            Ok(load) => membership.set_load(load).await,
            Err(_) => println!("error bad load {load}"),
        },
        ["timeout", node] => match membership.failure_detection_timeout(node).await {
            Some(timeout) => println!("timeout {node} {}", timeout.as_millis()),
            None => println!("timeout {node} none"),
        },
        ["quit"] => return false,
        [] => {}
        _ => println!("error unknown command {line}"),
    }
    true
}

/// Prints `member` and `dead` lines as the live members change.
async fn report_members(mut live: tokio::sync::watch::Receiver<Vec<Member>>, me: String) {
    let mut known: BTreeMap<String, (MemberStatus, u64)> = BTreeMap::new();
    loop {
        let now: BTreeMap<String, (MemberStatus, u64)> = live
            .borrow_and_update()
            .iter()
            .filter(|member| member.node_id != me)
            .map(|member| (member.node_id.clone(), (member.status, member.generation)))
            .collect();
        for (node, state) in &now {
            if known.get(node) != Some(state) {
                println!("member {node} {}", state.0);
            }
        }
        for node in known.keys().filter(|node| !now.contains_key(*node)) {
            println!("dead {node}");
        }
        known = now;
        if live.changed().await.is_err() {
            return;
        }
    }
}

/// Prints `connected` and `disconnected` lines as sessions come and go.
async fn report_sessions(mut connected: tokio::sync::watch::Receiver<Vec<String>>) {
    let mut known: Vec<String> = Vec::new();
    loop {
        let now = connected.borrow_and_update().clone();
        for node in now.iter().filter(|node| !known.contains(node)) {
            println!("connected {node}");
        }
        for node in known.iter().filter(|node| !now.contains(node)) {
            println!("disconnected {node}");
        }
        known = now;
        if connected.changed().await.is_err() {
            return;
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
