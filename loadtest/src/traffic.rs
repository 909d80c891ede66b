//! Who talks to whom ([`Plan`]), and the open-loop sender that drives a [`Fleet`]
//! through an [`OpenLoop`] schedule.
//!
//! Message `i` of a schedule is user `i mod N`'s message number `k0 + i div N`, so
//! every user sends at `rate / N` and the users' sends interleave evenly. Each send
//! is its own task: a slow ack never delays the next send.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::LoadError;
use crate::fleet::{Fleet, Shared, error_class};
use crate::ledger::{self, Acked, MsgKey};
use crate::schedule::{OpenLoop, to_group};

/// A conversation the load goes to.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    /// The `send.to`: `user:<peer>` (from the first member's side) or `group:<id>`.
    pub(crate) to: String,
    /// Group id, for groups.
    pub(crate) group: Option<String>,
    /// User indexes of the conversation's members.
    pub(crate) members: Vec<u32>,
}

/// The conversations of a run: users `2j` and `2j+1` share a dm; with a group size
/// `G`, users `[jG, (j+1)G)` share group `j` (a last, incomplete block has no group).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) dests: Vec<Dest>,
    /// Each user's dm destination.
    dm_of: Vec<u32>,
    /// Each user's group destination, if any.
    group_of: Vec<Option<u32>>,
    /// Share of a grouped user's sends that go to the group.
    group_fraction: f64,
    /// Body size in bytes.
    pub(crate) body_size: usize,
}

impl Plan {
    /// Pairs and groups for `users` users (even, at least 2).
    pub(crate) fn new(
        shared: &Shared,
        users: u32,
        group_size: u32,
        group_fraction: f64,
        body_size: usize,
    ) -> Self {
        let mut dests = Vec::new();
        let mut dm_of = vec![0; users as usize];
        for pair in 0..users / 2 {
            let (a, b) = (2 * pair, 2 * pair + 1);
            dm_of[a as usize] = dests.len() as u32;
            dm_of[b as usize] = dests.len() as u32;
            dests.push(Dest {
                to: format!("user:{}", shared.user_id(b)),
                group: None,
                members: vec![a, b],
            });
        }
        let mut group_of = vec![None; users as usize];
        if group_size >= 2 {
            for g in 0..users / group_size {
                let members: Vec<u32> = (g * group_size..(g + 1) * group_size).collect();
                for &m in &members {
                    group_of[m as usize] = Some(dests.len() as u32);
                }
                let id = format!("lt{}-g{g}", shared.tag);
                dests.push(Dest {
                    to: format!("group:{id}"),
                    group: Some(id),
                    members,
                });
            }
        }
        Self {
            dests,
            dm_of,
            group_of,
            group_fraction,
            body_size,
        }
    }

    /// The members of destination `dest`.
    pub(crate) fn members(&self, dest: u32) -> &[u32] {
        self.dests.get(dest as usize).map_or(&[], |d| &d.members)
    }

    /// Where `user`'s `k`-th message goes.
    fn dest_for(&self, user: u32, k: u32) -> u32 {
        let dm = self.dm_of.get(user as usize).copied().unwrap_or(0);
        match self.group_of.get(user as usize).copied().flatten() {
            Some(group) if to_group(u64::from(k), self.group_fraction) => group,
            _ => dm,
        }
    }

    /// The `to` of destination `dest` as `user` sends it: a dm names the other user.
    fn to_for(&self, shared: &Shared, user: u32, dest: u32) -> String {
        match self.dests.get(dest as usize) {
            Some(d) if d.group.is_some() => d.to.clone(),
            Some(d) => {
                let peer = d
                    .members
                    .iter()
                    .copied()
                    .find(|&m| m != user)
                    .unwrap_or(user);
                format!("user:{}", shared.user_id(peer))
            }
            None => String::new(),
        }
    }

    /// Creates every group (by its first member), so that sends to it are accepted.
    pub(crate) async fn create_groups(
        &self,
        shared: &Shared,
        fleet: &Fleet,
    ) -> Result<(), LoadError> {
        for dest in &self.dests {
            let Some(id) = &dest.group else { continue };
            let Some(&owner) = dest.members.first() else {
                continue;
            };
            let Some(client) = fleet.clients.get(owner as usize) else {
                continue;
            };
            let members: Vec<String> = dest.members.iter().map(|&m| shared.user_id(m)).collect();
            let members: Vec<&str> = members.iter().map(String::as_str).collect();
            client
                .group_create(Some(id), "load", &members)
                .await
                .map_err(|e| LoadError::Setup(format!("group {id}: {e}")))?;
        }
        Ok(())
    }
}

/// Sends `schedule` through the fleet, starting `offset_us` after the run's start;
/// user messages are numbered from `first_k`. Returns once every send has started
/// (not answered: see [`wait_for_answers`]).
pub(crate) async fn open_loop(
    shared: &Arc<Shared>,
    plan: &Arc<Plan>,
    fleet: &Fleet,
    schedule: OpenLoop,
    offset_us: u64,
    first_k: u32,
    max_in_flight: usize,
) {
    let users = fleet.clients.len() as u64;
    if users == 0 {
        return;
    }
    shared.set_traffic_start(offset_us);
    let gate = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut next = 0;
    while next < schedule.total() {
        let elapsed = shared.now_us().saturating_sub(offset_us);
        let due = schedule.due(elapsed);
        while next < due {
            let Ok(permit) = gate.clone().acquire_owned().await else {
                return;
            };
            let user = (next % users) as u32;
            let k = first_k.saturating_add(u32::try_from(next / users).unwrap_or(u32::MAX));
            let intended = offset_us + schedule.intended_us(next);
            let key = MsgKey { sender: user, k };
            let dest = plan.dest_for(user, k);
            let to = plan.to_for(shared, user, dest);
            let body = ledger::body(Some(intended), plan.body_size);
            let client = fleet.clients[user as usize].clone();
            let shared = shared.clone();
            shared.stats.sent.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let id = ledger::message_id(&shared.tag, key);
                let result = client.send_with_id(&id, &to, &body).await;
                let now = shared.now_us();
                match result {
                    Ok(ack) => {
                        let latency = now.saturating_sub(intended);
                        shared.record(|r| {
                            r.ack.record(latency);
                            r.ack_timeline
                                .record(shared.traffic_second(intended), latency);
                            r.acks.push(Acked {
                                key,
                                dest,
                                conv: ack.conv,
                                seq: ack.seq,
                                at_us: now,
                            });
                        });
                        shared.stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let class = error_class(&e);
                        shared.record(|r| *r.errors.entry(class).or_default() += 1);
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(permit);
            });
            next += 1;
        }
        if next < schedule.total() {
            let wake = shared.at(offset_us + schedule.intended_us(next));
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// Each user sends `count` messages to its dm peer one after the other (all users at
/// once), as history before the measured traffic; their latency is not recorded.
pub(crate) async fn closed_loop_history(
    shared: &Arc<Shared>,
    plan: &Arc<Plan>,
    fleet: &Fleet,
    count: u32,
) {
    let mut senders = tokio::task::JoinSet::new();
    for (user, client) in fleet.clients.iter().enumerate() {
        let (client, shared, plan) = (client.clone(), shared.clone(), plan.clone());
        let user = user as u32;
        senders.spawn(async move {
            let dest = plan.dm_of.get(user as usize).copied().unwrap_or(0);
            let to = plan.to_for(&shared, user, dest);
            let body = ledger::body(None, plan.body_size);
            for k in 0..count {
                let key = MsgKey { sender: user, k };
                let id = ledger::message_id(&shared.tag, key);
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                match client.send_with_id(&id, &to, &body).await {
                    Ok(ack) => {
                        let now = shared.now_us();
                        shared.record(|r| {
                            r.acks.push(Acked {
                                key,
                                dest,
                                conv: ack.conv,
                                seq: ack.seq,
                                at_us: now,
                            })
                        });
                        shared.stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let class = error_class(&e);
                        shared.record(|r| *r.errors.entry(class).or_default() += 1);
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while senders.join_next().await.is_some() {}
}

/// Waits until every send started has an answer, for at most `limit`.
pub(crate) async fn wait_for_answers(shared: &Shared, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while shared.stats.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deliveries owed for the acks so far: each acked message to each other member.
pub(crate) fn owed_deliveries(shared: &Shared, plan: &Plan) -> u64 {
    shared.record(|r| {
        r.acks
            .iter()
            .map(|a| {
                plan.members(a.dest)
                    .iter()
                    .filter(|&&m| m != a.key.sender)
                    .count() as u64
            })
            .sum()
    })
}

/// Waits until the users received at least every owed delivery, then makes sure
/// whatever the node queued has reached the event tasks: a ping round trip per
/// client (frames to a session are queued in order). At most `limit` in all.
pub(crate) async fn settle(shared: &Shared, plan: &Plan, fleet: &Fleet, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let owed = owed_deliveries(shared, plan);
    while shared.stats.delivered.load(Ordering::Relaxed) < owed
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pings = fleet.clients.iter().map(|c| c.ping());
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let _ = tokio::time::timeout(
        remaining.max(Duration::from_secs(1)),
        futures_util::future::join_all(pings),
    )
    .await;
}
