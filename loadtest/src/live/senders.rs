//! The senders of a `live` run: SDK clients (a few, so the SDK's weight does not
//! matter) that send the schedule open-loop, each danmaku its own task, and file
//! every ack with its room on the [`Board`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chorus_client::{Client, ClientConfig, Transport};
use chorus_wire::Prio;
use tokio::task::{JoinHandle, JoinSet};

use super::board::{Board, must_keep, prio_index};
use super::plan::Send;
use crate::error::LoadError;
use crate::fleet::error_class;
use crate::ledger;
use chorus_wire::identity::{Role, Roles};

use crate::token::Tokens;

/// Connected senders.
#[derive(Debug)]
pub(crate) struct Senders {
    clients: Vec<Client>,
    /// The `prio` each sender's items get, from its role.
    prios: Vec<Prio>,
    /// Tasks that drain each client's events (nothing in them is needed).
    drains: Vec<JoinHandle<()>>,
}

/// How the senders connect.
#[derive(Debug, Clone)]
pub(crate) struct SenderOptions {
    pub(crate) endpoint: String,
    pub(crate) transport: Transport,
    pub(crate) request_timeout: Duration,
}

/// The `prio` the node gives items of a sender with `role`.
fn prio_of(role: Option<Role>) -> Prio {
    role.map_or(Prio::Normal, |role| Roles::NONE.with(role).prio())
}

impl Senders {
    /// Connects one client per entry of `roles`; sender `j` is user `users[j]`.
    pub(crate) async fn connect(
        options: &SenderOptions,
        tokens: &Tokens,
        users: &[String],
        roles: &[Option<Role>],
    ) -> Result<Self, LoadError> {
        let mut connecting = JoinSet::new();
        for (j, (user, role)) in users.iter().zip(roles).enumerate() {
            let mut cfg = ClientConfig::new(
                options.endpoint.clone(),
                options.transport,
                tokens.token(user, *role)?,
            );
            cfg.request_timeout = options.request_timeout;
            cfg.device = Some("loadtest".into());
            connecting.spawn(async move { (j, Client::connect(cfg).await) });
        }
        let mut slots: Vec<Option<Client>> = vec![None; users.len()];
        let mut drains = Vec::new();
        let mut first_error = None;
        while let Some(joined) = connecting.join_next().await {
            match joined {
                Ok((j, Ok((client, mut events)))) => {
                    slots[j] = Some(client);
                    drains.push(tokio::spawn(async move {
                        while events.next().await.is_some() {}
                    }));
                }
                Ok((j, Err(e))) => {
                    first_error.get_or_insert_with(|| format!("sender {j} could not connect: {e}"));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("connect task failed: {e}"));
                }
            }
        }
        let senders = Self {
            clients: slots.into_iter().flatten().collect(),
            prios: roles.iter().map(|r| prio_of(*r)).collect(),
            drains,
        };
        if let Some(e) = first_error {
            senders.close().await;
            return Err(LoadError::Setup(e));
        }
        Ok(senders)
    }

    /// Sends `schedule` (times µs after the traffic start the board holds) to the
    /// rooms named by `rooms`. Returns once every danmaku has started (not been
    /// answered: see [`Senders::wait_for_answers`]).
    pub(crate) async fn send(
        &self,
        board: &Arc<Board>,
        schedule: &[Send],
        rooms: &Arc<Vec<String>>,
        body_size: usize,
    ) {
        let start = board.traffic_start_us();
        for send in schedule {
            let intended = start + send.at_us;
            let due = board.at(intended);
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let Some(client) = self.clients.get(send.sender as usize).cloned() else {
                continue;
            };
            let prio = self
                .prios
                .get(send.sender as usize)
                .copied()
                .unwrap_or(Prio::Normal);
            let (board, rooms, room) = (board.clone(), rooms.clone(), send.room);
            board.sent.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let body = ledger::body(Some(intended), body_size);
                let room_id = rooms.get(room as usize).map_or("", String::as_str);
                let result = client.danmaku(room_id, &body).await;
                let latency = board.now_us().saturating_sub(intended);
                match result {
                    Ok(ack) => {
                        board.record(|r| {
                            r.ack.record(latency);
                            if let Some(a) = r.accepted.get_mut(room as usize) {
                                a.total += 1;
                                a.by_prio[prio_index(prio)] += 1;
                                if must_keep(prio) {
                                    a.must_keep_seq_sum += ack.seq;
                                }
                            }
                        });
                        board.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let class = error_class(&e);
                        board.record(|r| *r.errors.entry(class).or_default() += 1);
                        board.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }

    /// Waits until every danmaku started has an answer, for at most `limit`.
    pub(crate) async fn wait_for_answers(board: &Board, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let done = board.acked.load(Ordering::Relaxed) + board.failed.load(Ordering::Relaxed);
            if done >= board.sent.load(Ordering::Relaxed) || tokio::time::Instant::now() >= deadline
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes every client.
    pub(crate) async fn close(self) {
        let mut closing = JoinSet::new();
        for client in self.clients {
            closing.spawn(async move { client.close().await });
        }
        while closing.join_next().await.is_some() {}
        for drain in self.drains {
            let _ = drain.await;
        }
    }
}
