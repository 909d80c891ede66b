//! What the client handles ask of the connection task ([`Command`]), and everything
//! that waits for an answer from the node ([`InFlight`]):
//!
//! - requests by `ref` ([`Pending`]): callers of the API, and the connection's own
//!   history fetches and conversation lists;
//! - `send`s and `danmaku`s by id, re-sent in call order after a reconnect when they
//!   are retried (`send`), failed with `ConnectionLost` when not (`danmaku`);
//! - pings in the order sent: a `pong` carries nothing to match.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chorus_wire::{ClientFrame, ServerFrame};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ClientError;

/// Where the answer to a request goes: the frame (`error` already turned into
/// [`ClientError::Server`]).
pub(crate) type Reply = oneshot::Sender<Result<ServerFrame, ClientError>>;

/// Where the round trip of a `ping` goes.
pub(crate) type PingReply = oneshot::Sender<Result<Duration, ClientError>>;

/// Unanswered pings remembered; older ones are forgotten.
const MAX_PINGS: usize = 64;

/// What a client handle asks of the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request answered by the frame carrying its `ref`.
    Request {
        reference: String,
        frame: ClientFrame,
        reply: Reply,
    },
    /// A `send` or `danmaku`, answered by `ack`/`reject` with its id. With `retry`, a
    /// lost connection re-sends it on the next one instead of failing it.
    Submit {
        id: String,
        frame: ClientFrame,
        retry: bool,
        reply: Reply,
    },
    /// A frame without answer (`read`).
    Fire { frame: ClientFrame },
    /// A `ping`, answered with the round trip.
    Ping { reply: PingReply },
}

/// Who waits for the answer to a `ref`.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A caller of the client API.
    User(Reply),
    /// The tracker, for a page of this conversation.
    Fetch { conv: String },
    /// The resync, for the conversation list.
    ConversationList,
    /// The first connect's floor, for the conversation list.
    Baseline,
    /// The presence watches renewed after a reconnect.
    Presence,
}

/// A `send` or `danmaku` awaiting `ack`/`reject`.
#[derive(Debug)]
struct PendingSubmit {
    frame: ClientFrame,
    retry: bool,
    /// Call order, so re-sends after a reconnect keep the order of the calls.
    order: u64,
    /// Callers waiting (a repeated id joins the first one).
    waiters: Vec<Reply>,
}

/// A `ping` awaiting its `pong`.
#[derive(Debug)]
struct PendingPing {
    sent: Instant,
    /// `None` for the heartbeat's own pings.
    reply: Option<PingReply>,
}

/// What a `pong` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PongFor {
    /// A caller of [`Client::ping`](crate::Client::ping), already answered.
    User,
    /// The heartbeat, with this round trip.
    Heartbeat(Duration),
}

/// Everything the node owes an answer to.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    requests: HashMap<String, Pending>,
    submits: HashMap<String, PendingSubmit>,
    next_order: u64,
    pings: VecDeque<PendingPing>,
}

impl InFlight {
    /// Waits for the answer to `reference`.
    pub(crate) fn expect(&mut self, reference: String, pending: Pending) {
        self.requests.insert(reference, pending);
    }

    /// Who waits for the answer to `reference`, if anyone.
    pub(crate) fn take(&mut self, reference: &str) -> Option<Pending> {
        self.requests.remove(reference)
    }

    /// Waits for the `ack`/`reject` of submit `id`.
    pub(crate) fn submit(&mut self, id: String, frame: &ClientFrame, retry: bool, reply: Reply) {
        let order = self.next_order;
        self.next_order += 1;
        let pending = self.submits.entry(id).or_insert_with(|| PendingSubmit {
            frame: frame.clone(),
            retry,
            order,
            waiters: Vec::new(),
        });
        pending.waiters.push(reply);
    }

    /// Hands `answer` (`ack` or `reject`) to everyone waiting for submit `id`; returns
    /// the submitted frame.
    pub(crate) fn settle(&mut self, id: &str, answer: &ServerFrame) -> Option<ClientFrame> {
        let pending = self.submits.remove(id)?;
        for waiter in pending.waiters {
            let _ = waiter.send(Ok(answer.clone()));
        }
        Some(pending.frame)
    }

    /// A ping was sent at `sent`.
    pub(crate) fn ping(&mut self, sent: Instant, reply: Option<PingReply>) {
        if self.pings.len() >= MAX_PINGS {
            self.pings.pop_front();
        }
        self.pings.push_back(PendingPing { sent, reply });
    }

    /// A `pong` arrived at `now`: it answers the oldest ping.
    pub(crate) fn pong(&mut self, now: Instant) -> Option<PongFor> {
        let ping = self.pings.pop_front()?;
        let rtt = now.saturating_duration_since(ping.sent);
        match ping.reply {
            Some(reply) => {
                let _ = reply.send(Ok(rtt));
                Some(PongFor::User)
            }
            None => Some(PongFor::Heartbeat(rtt)),
        }
    }

    /// Forgets what callers gave up on (timed out or dropped the call).
    pub(crate) fn sweep(&mut self) {
        self.requests
            .retain(|_, p| !matches!(p, Pending::User(reply) if reply.is_closed()));
        self.submits.retain(|_, p| {
            p.waiters.retain(|w| !w.is_closed());
            !p.waiters.is_empty()
        });
    }

    /// The submits to send again on a new connection, in call order.
    pub(crate) fn resends(&mut self) -> Vec<ClientFrame> {
        self.sweep();
        let mut pending: Vec<&PendingSubmit> = self.submits.values().collect();
        pending.sort_by_key(|p| p.order);
        pending.into_iter().map(|p| p.frame.clone()).collect()
    }

    /// The connection is gone: every answer in flight is lost, except for submits
    /// that are retried when `keep_retried` (a reconnect follows).
    pub(crate) fn connection_lost(&mut self, keep_retried: bool) {
        for (_, pending) in self.requests.drain() {
            if let Pending::User(reply) = pending {
                let _ = reply.send(Err(ClientError::ConnectionLost));
            }
        }
        for ping in self.pings.drain(..) {
            if let Some(reply) = ping.reply {
                let _ = reply.send(Err(ClientError::ConnectionLost));
            }
        }
        self.submits.retain(|_, p| {
            if keep_retried && p.retry {
                return true;
            }
            for waiter in p.waiters.drain(..) {
                let _ = waiter.send(Err(ClientError::ConnectionLost));
            }
            false
        });
    }

    /// The client is closed: everything fails with [`ClientError::Closed`].
    pub(crate) fn close(&mut self) {
        for (_, pending) in self.requests.drain() {
            if let Pending::User(reply) = pending {
                let _ = reply.send(Err(ClientError::Closed));
            }
        }
        for (_, pending) in self.submits.drain() {
            for waiter in pending.waiters {
                let _ = waiter.send(Err(ClientError::Closed));
            }
        }
        for ping in self.pings.drain(..) {
            if let Some(reply) = ping.reply {
                let _ = reply.send(Err(ClientError::Closed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(id: &str) -> ClientFrame {
        ClientFrame::Send {
            id: id.into(),
            to: "user:bob".into(),
            body: "hi".into(),
        }
    }

    fn ack(id: &str) -> ServerFrame {
        ServerFrame::Ack {
            id: id.into(),
            conv: "dm:alice:bob".into(),
            seq: 1,
            ts_ms: 1,
        }
    }

    #[test]
    fn a_repeated_id_joins_the_first_call_and_both_get_the_ack() {
        let mut f = InFlight::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        f.submit("a".into(), &send("a"), true, tx1);
        f.submit("a".into(), &send("a"), true, tx2);
        assert_eq!(f.settle("a", &ack("a")), Some(send("a")));
        assert!(matches!(rx1.try_recv(), Ok(Ok(ServerFrame::Ack { .. }))));
        assert!(matches!(rx2.try_recv(), Ok(Ok(ServerFrame::Ack { .. }))));
        assert_eq!(f.settle("a", &ack("a")), None);
    }

    #[test]
    fn resends_keep_call_order_and_skip_abandoned_calls() {
        let mut f = InFlight::default();
        let mut keep = Vec::new();
        for id in ["c", "a", "b"] {
            let (tx, rx) = oneshot::channel();
            f.submit(id.into(), &send(id), true, tx);
            keep.push(rx);
        }
        drop(keep.remove(1)); // the caller of "a" gave up
        assert_eq!(f.resends(), [send("c"), send("b")]);
    }

    #[test]
    fn a_lost_connection_keeps_retried_sends_and_fails_the_rest() {
        let mut f = InFlight::default();
        let (send_tx, mut send_rx) = oneshot::channel();
        let (dm_tx, mut dm_rx) = oneshot::channel();
        let (req_tx, mut req_rx) = oneshot::channel();
        let (ping_tx, mut ping_rx) = oneshot::channel();
        f.submit("s".into(), &send("s"), true, send_tx);
        f.submit("d".into(), &send("d"), false, dm_tx);
        f.expect("r1".into(), Pending::User(req_tx));
        f.expect("r2".into(), Pending::Baseline);
        f.ping(Instant::now(), Some(ping_tx));
        f.connection_lost(true);
        assert!(send_rx.try_recv().is_err(), "still waiting");
        assert!(matches!(
            dm_rx.try_recv(),
            Ok(Err(ClientError::ConnectionLost))
        ));
        assert!(matches!(
            req_rx.try_recv(),
            Ok(Err(ClientError::ConnectionLost))
        ));
        assert!(matches!(
            ping_rx.try_recv(),
            Ok(Err(ClientError::ConnectionLost))
        ));
        assert!(f.take("r2").is_none());
        assert_eq!(f.resends(), [send("s")]);
        f.close();
        assert!(matches!(send_rx.try_recv(), Ok(Err(ClientError::Closed))));
    }

    #[test]
    fn pongs_answer_pings_in_order() {
        let mut f = InFlight::default();
        let t0 = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        f.ping(t0, None);
        f.ping(t0 + Duration::from_millis(5), Some(tx));
        let t1 = t0 + Duration::from_millis(8);
        assert_eq!(
            f.pong(t1),
            Some(PongFor::Heartbeat(Duration::from_millis(8)))
        );
        assert_eq!(f.pong(t1), Some(PongFor::User));
        assert!(matches!(rx.try_recv(), Ok(Ok(rtt)) if rtt == Duration::from_millis(3)));
        assert_eq!(f.pong(t1), None, "an unexpected pong is ignored");
    }
}
