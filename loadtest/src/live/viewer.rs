//! One viewer: a lean connection (see `raw`) that joins a room and reads its
//! `live_batch` frames until the run ends, keeping its own [`Tally`] and reporting
//! counts (and, when sampled, latencies) to the [`Board`].
//!
//! 1. Connect and say `hello` (from a chosen loopback source address).
//! 2. `live_join`; wait for `live_joined`.
//! 3. Read batches, pinging often enough that the node never finds it idle, until
//!    the run says stop (2A) or the node closes the connection (2B: a disconnect,
//!    e.g. as a slow viewer).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chorus_client::Transport;
use chorus_wire::{ClientFrame, Prio, ServerFrame};
use tokio::sync::watch;
use tokio::time::Instant;

use super::batch::{self, Incoming};
use super::board::{Board, must_keep};
use crate::raw::{RawConn, RawError};

/// How a viewer's connection ended, if it ended before the run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// It could not connect or join (the failure's class).
    NotJoined(String),
    /// The node closed it, or it failed, after the join.
    Disconnected,
}

/// What one viewer saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// The viewer's room.
    pub(crate) room: u32,
    /// Items received.
    pub(crate) delivered: u64,
    /// Σ `dropped` of its batches.
    pub(crate) dropped: u64,
    /// `live_batch` frames received.
    pub(crate) batches: u64,
    /// Items whose seq was not above the previous one (a duplicate or reorder).
    pub(crate) out_of_order: u64,
    /// Batches of a room it did not join.
    pub(crate) misrouted: u64,
    /// `paid`/`system` items received.
    pub(crate) must_keep: u64,
    /// Sum of their seqs.
    pub(crate) must_keep_seq_sum: u64,
    /// Why it ended early, if it did.
    pub(crate) end: Option<End>,
}

/// A viewer to run.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The node's client endpoint.
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    /// The loopback source address to connect from (`None`: the kernel's choice).
    pub(crate) source: Option<IpAddr>,
    /// The `hello` token.
    pub(crate) token: String,
    /// Room index, and its id.
    pub(crate) room: u32,
    pub(crate) room_id: String,
    /// Whether its items' latencies are recorded.
    pub(crate) sampled: bool,
    /// Connecting and joining must each finish within this.
    pub(crate) timeout: Duration,
}

impl Viewer {
    /// Runs the viewer until `stop` turns true or its connection ends.
    pub(crate) async fn run(self, board: Arc<Board>, mut stop: watch::Receiver<bool>) -> Tally {
        let mut tally = Tally {
            room: self.room,
            ..Tally::default()
        };
        let (mut conn, idle_timeout_s) = match self.join().await {
            Ok(joined) => joined,
            Err(class) => {
                board.join_failed.fetch_add(1, Ordering::Relaxed);
                board.record(|r| *r.join_errors.entry(class.clone()).or_default() += 1);
                tally.end = Some(End::NotJoined(class));
                return tally;
            }
        };
        let progress = &board.rooms[self.room as usize];
        progress.live.fetch_add(1, Ordering::Relaxed);
        board.joined.fetch_add(1, Ordering::Relaxed);

        // A third of the idle timeout keeps the node's deadline far away.
        let ping_every = Duration::from_secs(u64::from(idle_timeout_s.max(3) / 3));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_seq = 0u64;
        let mut latencies: Vec<(u64, Prio)> = Vec::new();
        let ended = loop {
            tokio::select! {
                () = stopped(&mut stop) => break false,
                _ = ping.tick() => {
                    if conn.ping().await.is_err() {
                        break true;
                    }
                }
                payload = conn.next_payload() => {
                    let Ok(Some((bytes, encoding))) = payload else {
                        break true;
                    };
                    match batch::read(&bytes, encoding) {
                        Some(Incoming::Batch(b)) => {
                            let now = board.now_us();
                            if b.room != self.room_id.as_str() {
                                tally.misrouted += 1;
                                continue;
                            }
                            for item in &b.items {
                                if item.seq <= last_seq {
                                    tally.out_of_order += 1;
                                } else {
                                    last_seq = item.seq;
                                }
                                if must_keep(item.prio) {
                                    tally.must_keep += 1;
                                    tally.must_keep_seq_sum += item.seq;
                                }
                                if self.sampled
                                    && let Some(intended) = batch::intended_us(&item.body)
                                {
                                    latencies.push((intended, item.prio));
                                }
                            }
                            let n = b.items.len() as u64;
                            tally.delivered += n;
                            tally.dropped += b.dropped;
                            tally.batches += 1;
                            board.on_batch(self.room, n, b.dropped, now);
                            if !latencies.is_empty() {
                                board.record_visible(now, &latencies);
                                latencies.clear();
                            }
                        }
                        Some(Incoming::Other(frame)) => {
                            if matches!(*frame, ServerFrame::Goaway { .. }) {
                                break true;
                            }
                        }
                        None => break true,
                    }
                }
            }
        };
        if ended {
            board.disconnected.fetch_add(1, Ordering::Relaxed);
            progress.live.fetch_sub(1, Ordering::Relaxed);
            progress
                .accounted
                .fetch_sub(tally.delivered + tally.dropped, Ordering::Relaxed);
            tally.end = Some(End::Disconnected);
        }
        tally
    }

    /// Connects and joins; the connection and the welcome's idle timeout, or the
    /// failure's class.
    async fn join(&self) -> Result<(RawConn, u32), String> {
        let opened = tokio::time::timeout(
            self.timeout,
            RawConn::open(self.addr, self.transport, self.source, &self.token, None),
        )
        .await;
        let (mut conn, idle_timeout_s) = match opened {
            Ok(Ok(open)) => open,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect_timeout".into()),
        };
        let join = ClientFrame::LiveJoin {
            reference: "join".into(),
            room: self.room_id.clone(),
        };
        let joined = tokio::time::timeout(self.timeout, async {
            conn.send(&join).await?;
            loop {
                match conn.next_frame().await? {
                    Some(ServerFrame::LiveJoined { .. }) => return Ok(()),
                    Some(ServerFrame::Error { code, .. }) => {
                        return Err(RawError::Refused(code.to_string()));
                    }
                    Some(_) => {}
                    None => return Err(RawError::Closed),
                }
            }
        })
        .await;
        match joined {
            Ok(Ok(())) => Ok((conn, idle_timeout_s)),
            Ok(Err(e)) => Err(format!("join_{e}")),
            Err(_) => Err("join_timeout".into()),
        }
    }
}

/// Resolves once the run says stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
