//! The [`Client`] handle and the requests of protocol v1, with their typed answers.
//!
//! Every call goes to the connection task (see `driver`) through a bounded queue and
//! waits for its answer under [`ClientConfig::request_timeout`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chorus_wire::{ClientFrame, ConversationItem, LiveItem, Message, ServerFrame, TypingState};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::config::ClientConfig;
use crate::connection::{Endpoints, Welcome, establish};
use crate::driver::{COMMAND_QUEUE, Driver, Shared};
use crate::error::ClientError;
use crate::events::{EVENT_QUEUE, Events};
use crate::heartbeat::{self, NetworkSwitch};
use crate::inflight::Command;

/// A durably stored `send` (or an accepted `danmaku`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The client message id.
    pub id: String,
    /// The conversation (or `live:<room>`) it went to.
    pub conv: String,
    /// The message's seq.
    pub seq: u64,
    /// Server time of acceptance, ms since the Unix epoch.
    pub ts_ms: u64,
}

/// One page of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Conversation id.
    pub conv: String,
    /// Messages in ascending seq.
    pub messages: Vec<Message>,
    /// Whether more exist in the page's direction.
    pub more: bool,
}

/// A group's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id (the conversation is `group:<id>`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The owner's user id.
    pub owner: String,
    /// Member user ids.
    pub members: Vec<String>,
}

/// The answer to [`Client::live_join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveJoined {
    /// Room id.
    pub room: String,
    /// Cluster-wide viewer count.
    pub viewers: u64,
    /// Up to the last 20 items.
    pub recent: Vec<LiveItem>,
}

/// A connection to a Chorus cluster that survives node restarts and failovers.
///
/// Cheap to clone; all clones share one connection. The connection closes on
/// [`close`](Self::close) or when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    /// Set to `true` by `close`; dropping it (the last handle) closes too.
    close: watch::Sender<bool>,
    /// Never written: it reports the connection task's end by being dropped.
    done: watch::Receiver<()>,
    shared: Arc<Shared>,
    request_timeout: Duration,
    /// The adaptive heartbeat's network name, when the heartbeat is adaptive.
    network: Option<NetworkSwitch>,
}

impl Client {
    /// Connects to the first endpoint that answers (one pass over
    /// [`ClientConfig::endpoints`]) and returns after its `welcome`, with the stream of
    /// events. An `error` answer to `hello` fails with [`ClientError::Server`].
    pub async fn connect(cfg: ClientConfig) -> Result<(Client, Events), ClientError> {
        cfg.validate()?;
        let mut endpoints = Endpoints::new(cfg.endpoints.clone(), cfg.transport);
        let mut last_error = None;
        let mut established = None;
        let mut remaining = endpoints.len();
        // One goaway's nodes are followed; a second draining node does not
        // extend the pass again.
        let mut followed_goaway = false;
        while remaining > 0 {
            remaining -= 1;
            let endpoint = endpoints.next();
            match establish(&endpoint, &cfg).await {
                Ok(ok) => {
                    established = Some(ok);
                    break;
                }
                Err(e @ ClientError::Server { .. }) => return Err(e),
                Err(ClientError::Goaway { nodes }) => {
                    tracing::debug!(%endpoint, ?nodes, "draining node; trying the nodes it names");
                    if !followed_goaway {
                        followed_goaway = true;
                        let before = endpoints.len();
                        endpoints.prefer(&nodes);
                        remaining += endpoints.len().saturating_sub(before);
                    }
                    last_error = Some(ClientError::Goaway { nodes });
                }
                Err(e) => {
                    tracing::debug!(%endpoint, error = %e, "connect failed");
                    last_error = Some(e);
                }
            }
        }
        let Some((conn, welcome)) = established else {
            return Err(last_error.unwrap_or(ClientError::ConnectionLost));
        };

        let shared = Arc::new(Shared::new(welcome.clone(), cfg.resume.clone()));
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, event_rx) = mpsc::channel(EVENT_QUEUE);
        let (close, close_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(());
        let request_timeout = cfg.request_timeout;
        let (heartbeat, network) = heartbeat::configured(
            cfg.adaptive_heartbeat.as_ref(),
            cfg.ping_interval,
            tokio::time::Instant::now(),
        );
        let driver = Driver::new(
            cfg,
            heartbeat,
            shared.clone(),
            command_rx,
            close_rx,
            events,
            endpoints,
        );
        // The SDK's log lines say whose client they come from.
        let span = tracing::debug_span!("client", user = %welcome.user);
        tokio::spawn(
            async move {
                driver.run((conn, welcome)).await;
                drop(done_tx);
            }
            .instrument(span),
        );
        let inner = Inner {
            commands,
            close,
            done,
            shared,
            request_timeout,
            network,
        };
        Ok((
            Client {
                inner: Arc::new(inner),
            },
            Events::new(event_rx),
        ))
    }

    /// The `welcome` of the current (or, while reconnecting, the last) connection.
    pub fn welcome(&self) -> Welcome {
        self.inner.shared.welcome()
    }

    /// The authenticated user id.
    pub fn user(&self) -> String {
        self.inner.shared.welcome().user
    }

    /// The last seq held per conversation: delivered as events (or acked in order),
    /// or the conversation's `last_seq` at the first connect when that is larger.
    /// Save it with the application's state (after handling the events it covers) and
    /// pass it back as [`ClientConfig::resume`] after a restart.
    pub fn positions(&self) -> HashMap<String, u64> {
        self.inner.shared.positions()
    }

    /// Sends `body` to `to` (`user:<uid>` or `group:<gid>`) with a fresh client
    /// message id; see [`send_with_id`](Self::send_with_id).
    pub async fn send(&self, to: &str, body: &str) -> Result<Ack, ClientError> {
        self.send_with_id(&new_message_id(), to, body).await
    }

    /// Sends `body` to `to` with the client message id `id` and waits for the `ack`
    /// (durably stored) or `reject` ([`ClientError::Rejected`]). If the connection drops
    /// first, the same `id` is sent again on the next connection, so the message is
    /// stored once. After [`ClientError::Timeout`] the message may still have been
    /// stored: retry with the same `id` to find out.
    pub async fn send_with_id(&self, id: &str, to: &str, body: &str) -> Result<Ack, ClientError> {
        let frame = ClientFrame::Send {
            id: id.into(),
            to: to.into(),
            body: body.into(),
        };
        ack_of(self.submit(id, frame, true).await?)
    }

    /// Sends a danmaku item to a live room (with a fresh id); `ack` means accepted into
    /// the room. Not retried after a lost connection ([`ClientError::ConnectionLost`]).
    pub async fn danmaku(&self, room: &str, body: &str) -> Result<Ack, ClientError> {
        let id = new_message_id();
        let frame = ClientFrame::Danmaku {
            id: id.clone(),
            room: room.into(),
            body: body.into(),
        };
        ack_of(self.submit(&id, frame, false).await?)
    }

    /// A page of `conv`'s history (docs/protocol.md §7.6 for `after`/`before`/`limit`).
    pub async fn history(
        &self,
        conv: &str,
        after: Option<u64>,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<HistoryPage, ClientError> {
        let answer = self
            .request(|reference| ClientFrame::History {
                reference,
                conv: conv.into(),
                after,
                before,
                limit,
            })
            .await?;
        match answer {
            ServerFrame::HistoryPage {
                conv,
                messages,
                more,
                ..
            } => Ok(HistoryPage {
                conv,
                messages,
                more,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Every conversation of the user with its last and read seqs, in conversation
    /// id order, read page by page.
    pub async fn conversations(&self) -> Result<Vec<ConversationItem>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (items, next) = self.conversation_page(after).await?;
            all.extend(items);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// One page of the user's conversations: those after `after` (a conversation
    /// id; `None` for the first page), and where the next page starts, if any.
    pub async fn conversation_page(
        &self,
        after: Option<String>,
    ) -> Result<(Vec<ConversationItem>, Option<String>), ClientError> {
        match self
            .request(|reference| crate::driver::list_request(reference, after))
            .await?
        {
            ServerFrame::ConversationList { items, more, .. } => {
                let next = crate::driver::next_list_page(&items, more);
                Ok((items, next))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Marks `conv` read up to `seq`. Has no answer: returns once queued for sending.
    pub async fn read(&self, conv: &str, seq: u64) -> Result<(), ClientError> {
        let command = Command::Fire {
            frame: ClientFrame::Read {
                conv: conv.into(),
                seq,
            },
        };
        self.enqueue(command).await
    }

    /// Creates a group (with a server-made id when `id` is `None`); the caller is
    /// owner and member.
    pub async fn group_create(
        &self,
        id: Option<&str>,
        name: &str,
        members: &[&str],
    ) -> Result<Group, ClientError> {
        group_of(
            self.request(|reference| ClientFrame::GroupCreate {
                reference,
                id: id.map(Into::into),
                name: name.into(),
                members: owned(members),
            })
            .await?,
        )
    }

    /// Adds members to a group (owner only).
    pub async fn group_add(&self, id: &str, members: &[&str]) -> Result<Group, ClientError> {
        group_of(
            self.request(|reference| ClientFrame::GroupAdd {
                reference,
                id: id.into(),
                members: owned(members),
            })
            .await?,
        )
    }

    /// Removes members from a group (owner only).
    pub async fn group_remove(&self, id: &str, members: &[&str]) -> Result<Group, ClientError> {
        group_of(
            self.request(|reference| ClientFrame::GroupRemove {
                reference,
                id: id.into(),
                members: owned(members),
            })
            .await?,
        )
    }

    /// Leaves a group.
    pub async fn group_leave(&self, id: &str) -> Result<(), ClientError> {
        ok_of(
            self.request(|reference| ClientFrame::GroupLeave {
                reference,
                id: id.into(),
            })
            .await?,
        )
    }

    /// A group's name, owner and members (members only).
    pub async fn group_info(&self, id: &str) -> Result<Group, ClientError> {
        group_of(
            self.request(|reference| ClientFrame::GroupInfo {
                reference,
                id: id.into(),
            })
            .await?,
        )
    }

    /// Starts watching a live room; its batches arrive as [`Event::LiveBatch`](crate::Event::LiveBatch).
    /// A reconnect does not re-join rooms.
    pub async fn live_join(&self, room: &str) -> Result<LiveJoined, ClientError> {
        match self
            .request(|reference| ClientFrame::LiveJoin {
                reference,
                room: room.into(),
            })
            .await?
        {
            ServerFrame::LiveJoined {
                room,
                viewers,
                recent,
                ..
            } => Ok(LiveJoined {
                room,
                viewers,
                recent,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops watching a live room.
    pub async fn live_leave(&self, room: &str) -> Result<(), ClientError> {
        ok_of(
            self.request(|reference| ClientFrame::LiveLeave {
                reference,
                room: room.into(),
            })
            .await?,
        )
    }

    /// Watches the presence of `users` (protocol 1.1): each one's
    /// [`Event::Presence`](crate::Event::Presence) arrives at once after this
    /// returns, then on every change. A session watches at most 500 users in
    /// all; past that the node refuses the whole call (`invalid`). The client
    /// watches them again after every reconnect.
    pub async fn subscribe_presence(&self, users: &[&str]) -> Result<(), ClientError> {
        ok_of(
            self.request(|reference| ClientFrame::PresenceSub {
                reference,
                users: owned(users),
            })
            .await?,
        )
    }

    /// Stops watching the presence of `users`.
    pub async fn unsubscribe_presence(&self, users: &[&str]) -> Result<(), ClientError> {
        ok_of(
            self.request(|reference| ClientFrame::PresenceUnsub {
                reference,
                users: owned(users),
            })
            .await?,
        )
    }

    /// Tells the other members of `conv` that this user started or stopped
    /// typing. The node sends `typing` only to sessions that used a protocol
    /// 1.1 frame: a client that wants [`Event::Typing`](crate::Event::Typing)
    /// without sending any calls `subscribe_presence(&[])` once. Has no answer (returns once queued); the node forwards at most
    /// one per second per conversation and drops the rest, and refuses it to a
    /// non-member with [`Event::Refused`](crate::Event::Refused).
    pub async fn typing(&self, conv: &str, state: TypingState) -> Result<(), ClientError> {
        let command = Command::Fire {
            frame: ClientFrame::Typing {
                conv: conv.into(),
                state,
            },
        };
        self.enqueue(command).await
    }

    /// Tells the adaptive heartbeat which network the device is on now (for example
    /// `"wifi:<ssid>"`, `"cell:<carrier>"`): it continues with what it learned about
    /// that network, or starts probing it. Takes effect at the next heartbeat; does
    /// nothing unless [`ClientConfig::adaptive_heartbeat`] is set.
    pub fn set_network(&self, network: &str) {
        if let Some(switch) = &self.inner.network {
            switch.set(network);
        }
    }

    /// Sends a `ping` and returns the round trip to its `pong`.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.call(Command::Ping { reply }, answer).await?
    }

    /// Closes the connection and waits for the connection task to finish. Pending
    /// calls fail with [`ClientError::Closed`]; the event stream ends.
    pub async fn close(&self) {
        self.inner.close.send_replace(true);
        let mut done = self.inner.done.clone();
        // Returns an error once the task has dropped its sender: that is the signal.
        while done.changed().await.is_ok() {}
    }

    async fn request(
        &self,
        build: impl FnOnce(String) -> ClientFrame,
    ) -> Result<ServerFrame, ClientError> {
        let reference = self.inner.shared.next_ref();
        let frame = build(reference.clone());
        let (reply, answer) = oneshot::channel();
        self.call(
            Command::Request {
                reference,
                frame,
                reply,
            },
            answer,
        )
        .await?
    }

    async fn submit(
        &self,
        id: &str,
        frame: ClientFrame,
        retry: bool,
    ) -> Result<ServerFrame, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.call(
            Command::Submit {
                id: id.into(),
                frame,
                retry,
                reply,
            },
            answer,
        )
        .await?
    }

    /// Queues `command` and waits for its answer, all within the request timeout.
    async fn call<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, ClientError> {
        let exchange = async {
            self.inner
                .commands
                .send(command)
                .await
                .map_err(|_| ClientError::Closed)?;
            answer.await.map_err(|_| ClientError::Closed)
        };
        tokio::time::timeout(self.inner.request_timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn enqueue(&self, command: Command) -> Result<(), ClientError> {
        let send = self.inner.commands.send(command);
        match tokio::time::timeout(self.inner.request_timeout, send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

/// A fresh client message id: 128 random bits in hex, within the id rules.
fn new_message_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

fn owned(members: &[&str]) -> Vec<String> {
    members.iter().map(|m| (*m).to_string()).collect()
}

fn unexpected(frame: &ServerFrame) -> ClientError {
    ClientError::Protocol(format!("unexpected answer: {}", frame.type_name()))
}

fn ack_of(frame: ServerFrame) -> Result<Ack, ClientError> {
    match frame {
        ServerFrame::Ack {
            id,
            conv,
            seq,
            ts_ms,
        } => Ok(Ack {
            id,
            conv,
            seq,
            ts_ms,
        }),
        ServerFrame::Reject {
            code,
            message,
            retry_after_ms,
            ..
        } => Err(ClientError::Rejected {
            code,
            message,
            retry_after_ms,
        }),
        other => Err(unexpected(&other)),
    }
}

fn group_of(frame: ServerFrame) -> Result<Group, ClientError> {
    match frame {
        ServerFrame::Group {
            id,
            name,
            owner,
            members,
            ..
        } => Ok(Group {
            id,
            name,
            owner,
            members,
        }),
        other => Err(unexpected(&other)),
    }
}

fn ok_of(frame: ServerFrame) -> Result<(), ClientError> {
    match frame {
        ServerFrame::Ok { .. } => Ok(()),
        other => Err(unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_valid_protocol_ids_and_distinct() {
        let a = new_message_id();
        let b = new_message_id();
        assert_ne!(a, b);
        assert!(chorus_wire::ids::validate_id("id", &a).is_ok());
    }

    #[test]
    fn rejects_become_errors_with_their_retry_hint() {
        let reject = ServerFrame::Reject {
            id: "x".into(),
            code: chorus_wire::ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(1200),
        };
        assert!(matches!(
            ack_of(reject),
            Err(ClientError::Rejected {
                retry_after_ms: Some(1200),
                code: chorus_wire::ErrorCode::RateLimited,
                ..
            })
        ));
        assert!(matches!(
            ack_of(ServerFrame::Pong),
            Err(ClientError::Protocol(_))
        ));
    }
}
