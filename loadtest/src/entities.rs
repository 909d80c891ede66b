//! What requests cost the node in running entities and memory: one connection
//! pipelines `frames` requests, each for a different conversation, and the
//! node's entity counts (`/admin/status`) and resident memory (`/metrics`) are
//! read before and after.
//!
//! - `foreign`: `history` and `read` for conversations the user is not in
//!   (other users' dms, groups that do not exist). The node should refuse each
//!   without starting anything: running conversations and memory stay flat.
//! - `own`: `history` of the user's own dms with as many peers. Each starts a
//!   Conversation legitimately: the memory grown per entity is its size.
//! - `deliver`: one `send` to each of as many offline peers. Each starts a
//!   Conversation and the peer's User: with `own`'s size, the size of a User.
//!
//! Every request is answered (an `error`, a `history_page` or an `ack`), except
//! `read`, which has no answer; the scenario waits for the answers, so the
//! counts are read after the node handled everything.

use std::net::SocketAddr;
use std::time::Duration;

use chorus_wire::{ClientFrame, ServerFrame};
use serde::Serialize;
use tokio::time::Instant;

use crate::error::LoadError;
use crate::node_http;
use crate::raw::RawConn;
use crate::target::Target;

/// Which requests the connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `history` + `read` for conversations of others.
    Foreign,
    /// `history` of the user's own dms.
    Own,
    /// A `send` to each of many offline peers.
    Deliver,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EntitiesConfig {
    /// The node.
    pub target: Target,
    /// Requests to send, each for another conversation.
    pub frames: u32,
    /// Which requests.
    pub mode: Mode,
    /// The node's `[admin] token`, for `/admin/status`.
    pub admin_token: String,
    /// How long to wait for the answers.
    pub settle_timeout: Duration,
}

/// The node's running entities, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Running {
    /// User entities.
    pub users: u64,
    /// Conversation entities.
    pub conversations: u64,
    /// LiveRoom entities.
    pub live_rooms: u64,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize)]
pub struct EntitiesReport {
    /// The requests' kind.
    pub mode: Mode,
    /// Requests sent.
    pub frames: u32,
    /// Bytes of frames sent.
    pub bytes_sent: usize,
    /// Answers received (`read` has none).
    pub answers: u32,
    /// Answers that were `error`, by code.
    pub errors: std::collections::BTreeMap<String, u32>,
    /// Running entities before and after.
    pub running_before: Running,
    /// See `running_before`.
    pub running_after: Running,
    /// The node's resident memory before and after, bytes.
    pub rss_before: u64,
    /// See `rss_before`.
    pub rss_after: u64,
    /// `rss_after - rss_before` per request, bytes (negative: it shrank).
    pub rss_per_frame: f64,
    /// Seconds from the first frame sent to the last answer.
    pub seconds: f64,
    /// Whether every answer arrived in time.
    pub passed: bool,
}

/// `/admin/status`'s running entities.
async fn running(admin: SocketAddr, token: &str) -> Result<Running, LoadError> {
    let response = node_http::request(admin, "GET", "/admin/status", Some(token))
        .await
        .map_err(|e| LoadError::Setup(format!("/admin/status: {e}")))?;
    if response.status != 200 {
        return Err(LoadError::Setup(format!(
            "/admin/status answered {}: {}",
            response.status, response.body
        )));
    }
    let v: serde_json::Value = serde_json::from_str(&response.body)
        .map_err(|e| LoadError::Setup(format!("/admin/status is not JSON: {e}")))?;
    let count = |kind: &str| v["entities"][kind].as_u64().unwrap_or(0);
    Ok(Running {
        users: count("user"),
        conversations: count("conversation"),
        live_rooms: count("live_room"),
    })
}

/// The frames of a run, and how many of them are answered.
fn frames(mode: Mode, n: u32, user: &str) -> (Vec<ClientFrame>, u32) {
    let mut out = Vec::new();
    let mut answered = 0;
    for i in 0..n {
        match mode {
            Mode::Foreign => {
                let conv = if i % 2 == 0 {
                    format!("dm:x{i}:y{i}")
                } else {
                    format!("group:none{i}")
                };
                out.push(ClientFrame::Read {
                    conv: conv.clone(),
                    seq: 1,
                });
                out.push(ClientFrame::History {
                    reference: format!("h{i}"),
                    conv,
                    after: Some(0),
                    before: None,
                    limit: Some(10),
                });
                answered += 1;
            }
            Mode::Own => {
                let conv = chorus_wire::ConvId::dm(user, &format!("peer{i}")).to_string();
                out.push(ClientFrame::History {
                    reference: format!("h{i}"),
                    conv,
                    after: Some(0),
                    before: None,
                    limit: Some(10),
                });
                answered += 1;
            }
            Mode::Deliver => {
                out.push(ClientFrame::Send {
                    id: format!("m{i}"),
                    to: format!("user:offline{i}"),
                    body: "hello".into(),
                });
                answered += 1;
            }
        }
    }
    (out, answered)
}

/// Runs the scenario.
pub async fn run(cfg: EntitiesConfig) -> Result<EntitiesReport, LoadError> {
    let admin = cfg
        .target
        .admin
        .ok_or_else(|| LoadError::Config("the entities scenario needs --admin".into()))?;
    // A user of its own per run, so `own` and `deliver` meet no entity of an
    // earlier run.
    let user = format!("probe{:08x}", rand::random::<u32>());
    let (mut conn, _) = RawConn::open(
        cfg.target.endpoint(),
        cfg.target.transport,
        None,
        &user,
        cfg.target.tls.as_ref().map(|t| &t.connector),
    )
    .await
    .map_err(|e| LoadError::Setup(format!("connect: {e}")))?;
    let running_before = running(admin, &cfg.admin_token).await?;
    let rss_before = node_http::resident_memory(admin)
        .await
        .map_err(|e| LoadError::Setup(format!("memory: {e}")))?;
    let (frames, expected) = frames(cfg.mode, cfg.frames, &user);
    let started = Instant::now();
    let mut bytes_sent = 0;
    let mut answers = 0u32;
    let mut errors = std::collections::BTreeMap::new();
    // Writing and reading at once: the node stops reading a connection whose
    // answers are not read.
    let (writer_done, mut passed) = {
        let mut pending = frames.iter();
        let mut writing = true;
        let deadline = started + cfg.settle_timeout;
        let mut passed = true;
        while answers < expected {
            if writing {
                match pending.next() {
                    Some(frame) => {
                        bytes_sent += chorus_wire::codec::Frame::to_tcp(frame).len();
                        conn.send(frame)
                            .await
                            .map_err(|e| LoadError::Setup(format!("send: {e}")))?;
                        // Read whatever is already there, without waiting.
                        while let Ok(next) =
                            tokio::time::timeout(Duration::ZERO, conn.next_frame()).await
                        {
                            count(next, &mut answers, &mut errors)?;
                        }
                        continue;
                    }
                    None => writing = false,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, conn.next_frame()).await {
                Ok(next) => count(next, &mut answers, &mut errors)?,
                Err(_) => {
                    passed = false;
                    break;
                }
            }
        }
        (!writing, passed)
    };
    passed &= writer_done;
    let seconds = started.elapsed().as_secs_f64();
    let running_after = running(admin, &cfg.admin_token).await?;
    let rss_after = node_http::resident_memory(admin)
        .await
        .map_err(|e| LoadError::Setup(format!("memory: {e}")))?;
    Ok(EntitiesReport {
        mode: cfg.mode,
        frames: cfg.frames,
        bytes_sent,
        answers,
        errors,
        running_before,
        running_after,
        rss_before,
        rss_after,
        rss_per_frame: (rss_after as f64 - rss_before as f64) / f64::from(cfg.frames.max(1)),
        seconds,
        passed,
    })
}

/// Counts one frame read from the node.
fn count(
    next: Result<Option<ServerFrame>, crate::raw::RawError>,
    answers: &mut u32,
    errors: &mut std::collections::BTreeMap<String, u32>,
) -> Result<(), LoadError> {
    match next {
        Ok(Some(ServerFrame::Error { code, .. })) => {
            *answers += 1;
            *errors.entry(code.to_string()).or_default() += 1;
        }
        Ok(Some(ServerFrame::HistoryPage { .. } | ServerFrame::Ack { .. })) => *answers += 1,
        Ok(Some(ServerFrame::Reject { code, .. })) => {
            *answers += 1;
            *errors.entry(code.to_string()).or_default() += 1;
        }
        Ok(Some(_)) => {}
        Ok(None) => return Err(LoadError::Setup("the node closed the connection".into())),
        Err(e) => return Err(LoadError::Setup(format!("read: {e}"))),
    }
    Ok(())
}
