//! `chorusctl drain NODE [--wait]`: drain a node (goaway to its clients, shards
//! handed off, exit), and with `--wait`, watch the membership until it has left.

use std::time::{Duration, Instant};

use chorus_admin_api::Endpoint;
use chorus_admin_api::cluster::{DrainResponse, MemberInfo, MembersResponse};
use clap::Args;
use clap::builder::RangedU64ValueParser;
use serde_json::json;

use super::Outcome;
use super::http::CtlError;
use super::render::or_none;
use super::view::{Ctl, sorted};

/// How often `drain --wait` looks at the membership.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// `chorusctl drain`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DrainArgs {
    /// The node id (cluster.node_id) of the node to drain.
    pub node: String,
    /// Wait until the node has left the cluster.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits before giving up (the drain goes on).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = RangedU64ValueParser::<u64>::new().range(1..),
    )]
    pub wait_timeout: u64,
}

/// Where a drained node is, as one membership answer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DrainProgress {
    /// Not listed, listed as dead, or replaced by a new incarnation: it left.
    Gone,
    /// Still a live member, with this status.
    Present(String),
}

impl Ctl {
    pub(super) async fn drain(&self, args: &DrainArgs) -> Result<Outcome, CtlError> {
        let view = self.view().await?;
        let Some(target) = view.members.iter().find(|m| m.node_id == args.node) else {
            let names: Vec<&str> = view.members.iter().map(|m| m.node_id.as_str()).collect();
            return Err(CtlError::Failed(format!(
                "{} is not a member of the cluster {} sees (members: {})",
                args.node,
                view.node,
                names.join(", ")
            )));
        };
        if !target.alive {
            return Err(CtlError::Failed(format!(
                "{} is not alive: there is nothing to drain",
                target.node_id
            )));
        }
        let addr = self.admin_of(target).ok_or_else(|| {
            CtlError::Failed(format!(
                "{} advertises no admin address to send the drain to",
                target.node_id
            ))
        })?;
        let answer: DrainResponse = self
            .client
            .post(addr, Endpoint::Drain.route().path, None)
            .await?;
        if !args.wait {
            return Ok(if self.json {
                super::render::json(&answer)
            } else {
                Outcome::text(format!(
                    "{}: {} (it sends goaway to its clients, hands its shards off, then exits)\n",
                    target.node_id,
                    or_none(&answer.status)
                ))
            });
        }

        eprintln!(
            "{}: {}; waiting up to {} s for it to leave",
            target.node_id,
            or_none(&answer.status),
            args.wait_timeout
        );
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.wait_timeout);
        // Observers: the other alive members, the node asked first.
        let observers: Vec<&MemberInfo> = {
            let mut others: Vec<&MemberInfo> = view
                .members
                .iter()
                .filter(|m| m.alive && m.node_id != target.node_id)
                .collect();
            others.sort_by_key(|m| !m.this);
            others
        };
        loop {
            let last = match self.drain_progress(&observers, target, addr).await {
                DrainProgress::Gone => break,
                DrainProgress::Present(status) => status,
            };
            if Instant::now() >= deadline {
                return Err(CtlError::Failed(format!(
                    "{} is still a live member ({last}) after {} s; the drain goes on, see its log",
                    target.node_id, args.wait_timeout
                )));
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(if self.json {
            super::render::json(&json!({
                "node": target.node_id,
                "status": "left",
                "waited_s": (secs * 10.0).round() / 10.0,
            }))
        } else {
            Outcome::text(format!(
                "{}: drained, left the cluster after {secs:.1} s\n",
                target.node_id
            ))
        })
    }

    /// Whether `target` has left: asks the observers' membership in turn, and
    /// the target's own admin listener if none of them answers.
    async fn drain_progress(
        &self,
        observers: &[&MemberInfo],
        target: &MemberInfo,
        target_addr: &str,
    ) -> DrainProgress {
        for observer in observers {
            let Some(addr) = self.admin_of(observer) else {
                continue;
            };
            if let Ok(answer) = self
                .client
                .get::<MembersResponse>(addr, Endpoint::Members.route().path)
                .await
            {
                return drain_progress(&sorted(answer.members), &target.node_id, target.generation);
            }
        }
        if self.client.answers(target_addr).await {
            DrainProgress::Present("still answering on its admin address".into())
        } else {
            DrainProgress::Gone
        }
    }
}

/// Reads `members` for the node `node` of incarnation `generation`.
pub(crate) fn drain_progress(members: &[MemberInfo], node: &str, generation: u64) -> DrainProgress {
    let Some(member) = members.iter().find(|m| m.node_id == node) else {
        return DrainProgress::Gone;
    };
    if !member.alive || member.generation != generation {
        DrainProgress::Gone
    } else {
        DrainProgress::Present(or_none(&member.status))
    }
}
