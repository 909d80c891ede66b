//! The send pipeline of a Conversation: access, the idempotency window, a seq,
//! then group commit — messages accumulate while one write is in flight; when
//! it is durable every message of that write is acked in seq order and fanned
//! out to the members' User entities, and the next accumulated batch is written.
//!
//! Each message carries its [`Answer`] through the pipeline: into the pending
//! batch, into the write's task, and back to the entity with the write's
//! outcome. If the entity failed meanwhile, the task answers with the real
//! outcome itself, so a client never retries a message that was in fact stored
//! without finding its seq.

use std::time::Instant;

use chorus_store::{AppendBatch, AppendOutcome, Appended, DEDUP_WINDOW_MS, DedupKey};
use chorus_wire::{ConvId, ErrorCode, Message, ServerFrame};
use ractor::ActorRef;

use super::{Answer, ConversationMsg, ConversationState, SendRequest};
use crate::outbound::{OutFrame, SharedFrame};
use crate::user::UserMsg;

/// What a sender is told when the write of its message failed.
const NOT_STORED: &str = "message could not be stored; retry";

/// What a sender is told when an earlier attempt of its message (on an owner
/// that failed, or one racing this) is neither stored nor known to be lost yet.
const UNSETTLED: &str = "an earlier attempt of this message is still being settled; retry";

/// A message with its seq, waiting for its write.
#[derive(Debug)]
pub(super) struct Pending {
    message: Message,
    answer: Answer,
    started: Instant,
}

/// A finished store write and the batch it carried, from the write's task back
/// to its entity.
#[derive(Debug)]
pub struct Written {
    result: Result<AppendOutcome, String>,
    batch: Vec<Pending>,
}

/// The `ack` of message `id` of `conv` stored at `seq`.
fn ack(id: &str, conv: &str, seq: u64, ts_ms: u64) -> SharedFrame {
    OutFrame::new(ServerFrame::Ack {
        id: id.to_string(),
        conv: conv.to_string(),
        seq,
        ts_ms,
    })
}

/// The answer to message `m`, as the store took it: an `ack` at its own seq or
/// at the first seq of its key, or a reject to send it again.
fn answer_of(m: &Message, appended: Appended, answer: Answer) {
    match appended {
        Appended::Stored => answer.ack(&ack(&m.id, &m.conv, m.seq, m.ts_ms)),
        Appended::Duplicate(first) => answer.ack(&ack(&m.id, &m.conv, first.seq, first.ts_ms)),
        Appended::Unsettled(_) => answer.reject(ErrorCode::Internal, UNSETTLED),
    }
}

impl ConversationState {
    pub(super) async fn on_send(&mut self, myself: &ActorRef<ConversationMsg>, req: SendRequest) {
        let SendRequest {
            sender,
            answer,
            body,
        } = req;
        if let Err((code, message)) = self.check_access(&sender).await {
            return answer.reject(code, &message);
        }
        let key = (sender, answer.id().to_string());
        let now = crate::now_ms();
        // Idempotent retry: the same sender and id in this conversation within 24 h.
        if let Some((seq, ts_ms)) = self.recent.get(&key)
            && now.saturating_sub(ts_ms) < DEDUP_WINDOW_MS
        {
            let frame = ack(&key.1, &self.key, seq, ts_ms);
            return answer.ack(&frame);
        }
        // A retry of a message pending or in flight gets that message's answer.
        if let Some(waiters) = self.waiting.get_mut(&key) {
            waiters.push(answer);
            return;
        }
        let dedup_key = DedupKey {
            conv: self.key.clone(),
            sender: key.0.clone(),
            client_id: key.1.clone(),
        };
        match self.store.find_dedup(&dedup_key, now).await {
            Ok(Some(hit)) => {
                let frame = ack(&key.1, &self.key, hit.seq, hit.ts_ms);
                self.recent.remember(key, hit.seq, hit.ts_ms);
                return answer.ack(&frame);
            }
            Ok(None) => {}
            Err(e) => return answer.reject(ErrorCode::Internal, &format!("store: {e}")),
        }
        let seq = match self.next_seq().await {
            Ok(seq) => seq,
            Err(e) => return answer.reject(ErrorCode::Internal, &format!("store: {e}")),
        };
        let (from, id) = key;
        let message = Message {
            conv: self.key.clone(),
            seq,
            id: id.clone(),
            from: from.clone(),
            body,
            ts_ms: now,
        };
        self.waiting.insert((from, id), Vec::new());
        self.pending.push(Pending {
            message,
            answer,
            started: Instant::now(),
        });
        if !self.writing {
            self.flush(myself);
        }
    }

    async fn next_seq(&mut self) -> Result<u64, String> {
        if let Some(b) = &mut self.block
            && b.start < b.end
        {
            let seq = b.start;
            b.start += 1;
            return Ok(seq);
        }
        let size = self.region.settings().seq_block.max(1);
        let mut block = self
            .store
            .allocate_seq_block(&self.key, size)
            .await
            .map_err(|e| e.to_string())?;
        let seq = block.start;
        block.start += 1;
        self.block = Some(block);
        Ok(seq)
    }

    /// Starts writing everything pending as one batch.
    pub(super) fn flush(&mut self, myself: &ActorRef<ConversationMsg>) {
        if self.pending.is_empty() {
            return;
        }
        let batch: Vec<Pending> = std::mem::take(&mut self.pending);
        let mut append = AppendBatch {
            messages: batch.iter().map(|p| p.message.clone()).collect(),
            links: Vec::new(),
        };
        if !self.linked && matches!(self.conv, ConvId::Dm(..)) {
            append.links = self
                .members()
                .into_iter()
                .map(|u| (u, self.key.clone()))
                .collect();
        }
        self.writing = true;
        let store = self.store.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = store.append(append).await.map_err(|e| e.to_string());
            let written = Written { result, batch };
            let Err(ractor::MessagingErr::SendErr(ConversationMsg::Persisted(written))) =
                me.send_message(ConversationMsg::Persisted(written))
            else {
                return;
            };
            // The entity failed meanwhile: the outcome is still ours to tell.
            for (i, p) in written.batch.into_iter().enumerate() {
                match &written.result {
                    Ok(outcome) => answer_of(&p.message, outcome.of(i), p.answer),
                    Err(_) => p.answer.reject(ErrorCode::Internal, NOT_STORED),
                }
            }
        });
    }

    pub(super) fn on_persisted(&mut self, myself: &ActorRef<ConversationMsg>, written: Written) {
        self.writing = false;
        let Written { result, batch } = written;
        match result {
            Ok(outcome) => {
                self.linked = true;
                let members = self.members();
                for (i, p) in batch.into_iter().enumerate() {
                    let Pending {
                        message: m,
                        answer,
                        started,
                    } = p;
                    let key = (m.from.clone(), m.id.clone());
                    let appended = outcome.of(i);
                    let except = Some(answer.session().id());
                    let waiters = self.waiting.remove(&key).unwrap_or_default();
                    let (seq, ts_ms) = match appended {
                        Appended::Stored => (m.seq, m.ts_ms),
                        Appended::Duplicate(first) => (first.seq, first.ts_ms),
                        Appended::Unsettled(_) => {
                            for w in waiters {
                                answer_of(&m, appended, w);
                            }
                            answer_of(&m, appended, answer);
                            continue;
                        }
                    };
                    let ack = ack(&m.id, &m.conv, seq, ts_ms);
                    answer.ack(&ack);
                    for w in waiters {
                        w.ack(&ack);
                    }
                    if let Appended::Duplicate(first) = appended {
                        // Stored before (by an earlier owner, or before a
                        // restart): acked with its first seq, and not
                        // delivered again.
                        metrics::counter!("chorus_messages_deduplicated_total").increment(1);
                        self.recent.remember(key, first.seq, first.ts_ms);
                        continue;
                    }
                    self.last_seq = Some(self.last_seq.unwrap_or(0).max(seq));
                    metrics::counter!("chorus_messages_acked_total").increment(1);
                    metrics::histogram!("chorus_ack_latency_seconds")
                        .record(started.elapsed().as_secs_f64());
                    self.recent.remember(key, seq, ts_ms);
                    let frame = OutFrame::new(ServerFrame::Msg(m));
                    for member in &members {
                        self.region.tell_user(
                            member,
                            UserMsg::Deliver {
                                frame: frame.clone(),
                                except,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(conv = %self.key, error = %e, "append failed: rejecting the batch");
                for p in batch {
                    let key = (p.message.from.clone(), p.message.id.clone());
                    p.answer.reject(ErrorCode::Internal, NOT_STORED);
                    for w in self.waiting.remove(&key).unwrap_or_default() {
                        w.reject(ErrorCode::Internal, NOT_STORED);
                    }
                }
            }
        }
        self.flush(myself);
    }
}
