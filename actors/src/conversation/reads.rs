//! The reads of a Conversation: history pages (read from the store off the
//! entity, within the node's turns for page reads, and cut to fit one frame)
//! and read positions (stored, then announced to the other members as
//! `receipt`).

use chorus_store::HistoryQuery;
use chorus_wire::fit::{self, Keep};
use chorus_wire::{ErrorCode, ServerFrame};

use super::{ConversationState, Request, error};
use crate::budget::Held;
use crate::outbound::OutFrame;
use crate::user::UserMsg;

impl ConversationState {
    pub(super) async fn on_history(&mut self, req: Request, query: HistoryQuery) {
        if let Err((code, message)) = self.check_access(&req.user).await {
            return error(&req, code, message);
        }
        let store = self.store.clone();
        let conv = self.key.clone();
        let max_frame = self.region.settings().max_frame;
        let region = self.region.clone();
        // A page read forward keeps its oldest messages when it must be cut; one
        // read backward (or the newest) keeps its newest.
        let keep = if query.after.is_some() {
            Keep::First
        } else {
            Keep::Last
        };
        // Reading can take a while; the entity keeps sequencing meanwhile.
        tokio::spawn(async move {
            let turn = region.store_read_turn().await;
            let page = store.history(&conv, query).await;
            drop(turn);
            match page {
                Ok(page) => {
                    req.reply.send(fit::history_page(
                        req.reference,
                        conv,
                        page.messages,
                        page.more,
                        keep,
                        max_frame,
                    ));
                }
                Err(e) => error(&req, ErrorCode::Internal, format!("store: {e}")),
            }
        });
    }

    pub(super) async fn on_read(&mut self, user: String, seq: u64, held: Option<Held>) {
        if self.check_access(&user).await.is_err() {
            return; // `read` has no answer; a non-member's read is ignored.
        }
        let Ok(last) = self.last_seq().await else {
            return;
        };
        let seq = seq.min(last);
        if seq == 0 {
            return;
        }
        let store = self.store.clone();
        let region = self.region.clone();
        let conv = self.key.clone();
        let others: Vec<String> = self.members().into_iter().filter(|m| *m != user).collect();
        tokio::spawn(async move {
            let _held = held;
            match store.set_read(&user, &conv, seq).await {
                Ok(position) => {
                    let frame = OutFrame::new(ServerFrame::Receipt {
                        conv,
                        user,
                        seq: position,
                    });
                    for member in others {
                        region.tell_user(
                            &member,
                            UserMsg::Deliver {
                                frame: frame.clone(),
                                except: None,
                            },
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "storing a read position failed"),
            }
        });
    }
}
