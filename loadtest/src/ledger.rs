//! What was sent and what arrived, and the delivery check between them.
//!
//! A load message names itself: its client message id is `lt<tag>.<sender>.<k>`
//! (the run's tag, the sender's index, the sender's k-th message), so the receiver
//! knows which send it is without a shared map, and a rerun against the same data
//! never collides with the node's idempotency window. Its body starts with the
//! *intended* send time, µs since the run's start, so delivery latency is measured
//! from the schedule rather than from when the sender got round to it.
//!
//! The check: every acked message reaches every other member of its conversation
//! exactly once, and each receiver sees each conversation's seqs strictly rising.

use std::collections::HashMap;

use chorus_client::Message;
use serde::Serialize;

/// A message's identity within a run: sender index and the sender's message number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgKey {
    /// Index of the sending user.
    pub sender: u32,
    /// The sender's message number, from 0.
    pub k: u32,
}

/// The client message id of `key` in the run tagged `tag` (within the protocol's id
/// rules: at most 64 bytes of `[A-Za-z0-9_.-]`).
pub fn message_id(tag: &str, key: MsgKey) -> String {
    format!("lt{tag}.{}.{}", key.sender, key.k)
}

/// The key of a message id of the run tagged `tag`; `None` for anything else.
pub fn parse_message_id(tag: &str, id: &str) -> Option<MsgKey> {
    let rest = id
        .strip_prefix("lt")?
        .strip_prefix(tag)?
        .strip_prefix('.')?;
    let (sender, k) = rest.split_once('.')?;
    Some(MsgKey {
        sender: sender.parse().ok()?,
        k: k.parse().ok()?,
    })
}

/// A body of `size` bytes (at least the timestamp) carrying the intended send time;
/// `None` marks a message whose latency is not measured (e.g. history set-up).
pub fn body(intended_us: Option<u64>, size: usize) -> String {
    let mut body = match intended_us {
        Some(us) => format!("t{us};"),
        None => "h;".to_string(),
    };
    if body.len() < size {
        body.extend(std::iter::repeat_n('x', size - body.len()));
    }
    body
}

/// The intended send time a [`body`] carries.
pub fn parse_body(body: &str) -> Option<u64> {
    body.strip_prefix('t')?.split_once(';')?.0.parse().ok()
}

/// One receipt of a message by a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// How many times it arrived (more than 1 is a duplicate).
    pub count: u32,
    /// When it first arrived, µs since the run's start.
    pub first_us: u64,
}

/// What one user received, kept by its event task alone.
#[derive(Debug, Default)]
pub struct Inbox {
    /// The user's own index: its own messages are not deliveries.
    me: u32,
    /// Every load message of this run that arrived, by key.
    pub seen: HashMap<MsgKey, Seen>,
    /// The last seq received per conversation, for the order check.
    last_seq: HashMap<String, u64>,
    /// First receipts whose seq was not above the last one of their conversation.
    pub out_of_order: u64,
    /// Messages that are not this run's (another run's traffic to the same users).
    pub foreign: u64,
    /// The user's own messages coming back (history pages of a gap repair or resync
    /// hold every message of the conversation, the user's own included).
    pub own: u64,
}

/// What [`Inbox::on_message`] learnt about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first receipt of this key; with its intended send time when measured.
    First(Option<u64>),
    /// It had arrived before.
    Duplicate,
    /// Not a message of this run.
    Foreign,
    /// The user's own message.
    Own,
}

impl Inbox {
    /// The inbox of user `me`.
    pub fn new(me: u32) -> Self {
        Self {
            me,
            ..Self::default()
        }
    }

    /// Records `msg`, received at `now_us`.
    pub fn on_message(&mut self, tag: &str, msg: &Message, now_us: u64) -> Arrival {
        let Some(key) = parse_message_id(tag, &msg.id) else {
            self.foreign += 1;
            return Arrival::Foreign;
        };
        if key.sender == self.me {
            self.own += 1;
            return Arrival::Own;
        }
        if let Some(seen) = self.seen.get_mut(&key) {
            // Counted as a duplicate only, not also as out of order.
            seen.count += 1;
            return Arrival::Duplicate;
        }
        self.seen.insert(
            key,
            Seen {
                count: 1,
                first_us: now_us,
            },
        );
        let last = self.last_seq.entry(msg.conv.clone()).or_insert(0);
        if msg.seq <= *last {
            self.out_of_order += 1;
        } else {
            *last = msg.seq;
        }
        Arrival::First(parse_body(&msg.body))
    }
}

/// A send the node acked.
#[derive(Debug, Clone)]
pub struct Acked {
    /// Which message.
    pub key: MsgKey,
    /// Index of its destination in the plan (see `traffic::Plan`).
    pub dest: u32,
    /// The conversation the ack named.
    pub conv: String,
    /// The seq the ack gave.
    pub seq: u64,
    /// When the ack arrived, µs since the run's start.
    pub at_us: u64,
}

/// The delivery check's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCheck {
    /// Sends started.
    pub sent: u64,
    /// Sends acked.
    pub acked: u64,
    /// Sends that failed (timeout, reject, closed); see the report's `errors`.
    pub failed: u64,
    /// Deliveries owed: each acked message once to each other member.
    pub expected: u64,
    /// Owed deliveries that happened (at least once).
    pub delivered: u64,
    /// Owed deliveries that never happened.
    pub missing: u64,
    /// Extra receipts of a message already received.
    pub duplicates: u64,
    /// Receipts whose seq was not above the previous one of the same conversation.
    pub out_of_order: u64,
    /// Receipts of an acked message by a user who is not a member of its conversation.
    pub misdelivered: u64,
    /// Users' own messages coming back to them from history (not a failure).
    pub own_echoes: u64,
    /// Receipts of a message whose send did not get an ack (a timed-out send that
    /// was stored all the same). Not a failure.
    pub delivered_unacked: u64,
    /// Acks that named a seq already acked for another message of the conversation.
    pub seq_collisions: u64,
    /// Messages of other runs received (not a failure).
    pub foreign: u64,
    /// Up to [`SAMPLE`] missing deliveries, as `"<conv> seq <seq> (<sender>.<k>) to user <index>"`,
    /// for finding them in the node's logs and history.
    pub missing_sample: Vec<String>,
}

/// How many missing deliveries [`DeliveryCheck::missing_sample`] lists.
pub const SAMPLE: usize = 10;

impl DeliveryCheck {
    /// Whether every acked message arrived exactly once, in order, where it belongs.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.misdelivered == 0
            && self.seq_collisions == 0
    }

    /// Compares the acks with what each user received. `members(dest)` lists the user
    /// indexes of a destination's conversation; `inboxes[u]` is user `u`'s.
    pub fn compute<'a>(
        sent: u64,
        failed: u64,
        acks: &[Acked],
        inboxes: &[Inbox],
        members: impl Fn(u32) -> &'a [u32],
    ) -> Self {
        let mut check = Self {
            sent,
            acked: acks.len() as u64,
            failed,
            ..Self::default()
        };
        let mut owed: HashMap<MsgKey, u32> = HashMap::with_capacity(acks.len());
        let mut seqs: HashMap<(&str, u64), MsgKey> = HashMap::with_capacity(acks.len());
        for ack in acks {
            if let Some(other) = seqs.insert((ack.conv.as_str(), ack.seq), ack.key)
                && other != ack.key
            {
                check.seq_collisions += 1;
            }
            owed.insert(ack.key, ack.dest);
            for &member in members(ack.dest) {
                if member == ack.key.sender {
                    continue;
                }
                check.expected += 1;
                match inboxes
                    .get(member as usize)
                    .and_then(|i| i.seen.get(&ack.key))
                {
                    Some(_) => check.delivered += 1,
                    None => {
                        check.missing += 1;
                        if check.missing_sample.len() < SAMPLE {
                            check.missing_sample.push(format!(
                                "{} seq {} ({}.{}) to user {member}",
                                ack.conv, ack.seq, ack.key.sender, ack.key.k
                            ));
                        }
                    }
                }
            }
        }
        for (user, inbox) in inboxes.iter().enumerate() {
            check.out_of_order += inbox.out_of_order;
            check.foreign += inbox.foreign;
            check.own_echoes += inbox.own;
            for (key, seen) in &inbox.seen {
                check.duplicates += u64::from(seen.count.saturating_sub(1));
                match owed.get(key) {
                    None => check.delivered_unacked += 1,
                    Some(&dest) => {
                        if !members(dest).contains(&(user as u32)) {
                            check.misdelivered += 1;
                        }
                    }
                }
            }
        }
        check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: &str, key: MsgKey, conv: &str, seq: u64, body: &str) -> Message {
        Message {
            conv: conv.into(),
            seq,
            id: message_id(tag, key),
            from: format!("u{}", key.sender),
            body: body.into(),
            ts_ms: 0,
        }
    }

    #[test]
    fn ids_and_bodies_round_trip() {
        let key = MsgKey {
            sender: 12,
            k: 3456,
        };
        let id = message_id("a1b2c3", key);
        assert!(id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert_eq!(parse_message_id("a1b2c3", &id), Some(key));
        assert_eq!(parse_message_id("ffffff", &id), None);
        assert_eq!(parse_message_id("a1b2c3", "lta1b2c3.x.1"), None);
        let b = body(Some(1_234_567), 64);
        assert_eq!(b.len(), 64);
        assert_eq!(parse_body(&b), Some(1_234_567));
        assert_eq!(parse_body(&body(None, 8)), None);
        assert_eq!(parse_body(&body(Some(7), 0)), Some(7));
    }

    #[test]
    fn inboxes_flag_duplicates_order_and_foreign_messages() {
        let mut inbox = Inbox::new(7);
        let k = |k| MsgKey { sender: 0, k };
        let first = inbox.on_message("t", &msg("t", k(0), "dm:a:b", 1, "t5;"), 10);
        assert_eq!(first, Arrival::First(Some(5)));
        assert_eq!(
            inbox.on_message("t", &msg("t", k(0), "dm:a:b", 1, "t5;"), 11),
            Arrival::Duplicate
        );
        inbox.on_message("t", &msg("t", k(2), "dm:a:b", 3, "h;"), 12);
        inbox.on_message("t", &msg("t", k(1), "dm:a:b", 2, "h;"), 13);
        assert_eq!(
            inbox.on_message("t", &msg("u", k(9), "dm:a:b", 9, "h;"), 14),
            Arrival::Foreign
        );
        let own = MsgKey { sender: 7, k: 0 };
        assert_eq!(
            inbox.on_message("t", &msg("t", own, "dm:a:b", 4, "h;"), 15),
            Arrival::Own
        );
        assert_eq!(inbox.out_of_order, 1, "seq 2 after seq 3");
        assert_eq!(inbox.own, 1);
        assert_eq!(inbox.foreign, 1);
        assert_eq!(inbox.seen[&k(0)].first_us, 10);
    }

    #[test]
    fn the_check_counts_missing_duplicate_and_misdelivered() {
        let tag = "t";
        // Users 0 and 1 share dest 0 (a dm); users 0, 1, 2 share dest 1 (a group).
        let members: Vec<Vec<u32>> = vec![vec![0, 1], vec![0, 1, 2]];
        let ack = |sender, k, dest, conv: &str, seq| Acked {
            key: MsgKey { sender, k },
            dest,
            conv: conv.into(),
            seq,
            at_us: 0,
        };
        let acks = vec![
            ack(0, 0, 0, "dm", 1),
            ack(1, 0, 0, "dm", 2),
            ack(0, 1, 1, "g", 1),
        ];
        let mut inboxes: Vec<Inbox> = (0..3).map(Inbox::new).collect();
        let m = |s, k, conv, seq| msg(tag, MsgKey { sender: s, k }, conv, seq, "h;");
        inboxes[1].on_message(tag, &m(0, 0, "dm", 1), 0);
        inboxes[0].on_message(tag, &m(1, 0, "dm", 2), 0);
        inboxes[1].on_message(tag, &m(0, 1, "g", 1), 0);
        // All owed deliveries done: passes.
        let ok = DeliveryCheck::compute(3, 0, &acks, &inboxes, |d| &members[d as usize]);
        assert_eq!((ok.expected, ok.delivered, ok.missing), (4, 3, 1));
        assert!(!ok.passed(), "user 2 never got the group message");

        inboxes[2].on_message(tag, &m(0, 1, "g", 1), 0);
        inboxes[2].on_message(tag, &m(0, 1, "g", 1), 0);
        inboxes[2].on_message(tag, &m(0, 0, "dm", 1), 0);
        inboxes[2].on_message(tag, &m(1, 7, "dm", 3), 0);
        inboxes[0].on_message(tag, &m(0, 0, "dm", 1), 0);
        let c = DeliveryCheck::compute(4, 1, &acks, &inboxes, |d| &members[d as usize]);
        assert_eq!(c.missing, 0);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.misdelivered, 1, "user 2 is not in the dm");
        assert_eq!(c.delivered_unacked, 1);
        assert_eq!(c.own_echoes, 1);
        assert_eq!(c.out_of_order, 0, "a duplicate is not also out of order");
        assert!(!c.passed());
    }
}
