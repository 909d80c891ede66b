//! A client frame, validated once: the [`Request`] the session carries out, or
//! the [`Refusal`] that answers it.
//!
//! Everything a frame can be refused for by looking at the frame alone is
//! checked here: ids, `ref`s, sizes, page limits, conversation ids. What depends
//! on the session or the node at the time (the rooms it watches, the word
//! filter, the danmaku rate, access to a conversation) is checked when the
//! request is carried out.
//!
//! A refusal is answered in one of two ways, as the request would have been:
//! one whose `ref` or id cannot be echoed back (too long, not an id), and a
//! second `hello`, is answered at once; any other waits for its share of the
//! session's budget first, like the request it stands for, so that a client
//! pipelining bad requests is paced exactly like one pipelining good ones.

use chorus_store::{HistoryQuery, ListQuery};
use chorus_wire::cluster::GroupOp;
use chorus_wire::ids::validate_id;
use chorus_wire::limits::{MAX_GROUP_NAME, MAX_PRESENCE_SUBS, MAX_REF};
use chorus_wire::{
    ClientFrame, ConvId, ConversationsPage, ErrorCode, ServerFrame, Target, TypingState,
};

use crate::budget::AnswerKey;
use crate::outbound::reject_frame;
use crate::settings::Settings;

/// The limits a frame is checked against (from the node's [`Settings`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest `body` of a `send` or `danmaku`, in bytes.
    pub(crate) max_body: usize,
    /// Page size of a `history` without `limit`.
    pub(crate) history_default: u32,
    /// Largest page of `history`; a larger `limit` is lowered to it.
    pub(crate) history_max: u32,
    /// Largest page of `conversations`.
    pub(crate) list_max: u32,
    /// Most members one group request may name.
    pub(crate) max_group_members: usize,
}

impl Limits {
    pub(crate) fn of(settings: &Settings) -> Self {
        Self {
            max_body: settings.max_body,
            history_default: settings.history_default,
            history_max: settings.history_max,
            list_max: settings.list_max,
            max_group_members: settings.max_group_members,
        }
    }
}

/// A valid request, ready to carry out.
#[derive(Debug)]
pub(crate) enum Request {
    /// `ping`: answered with `pong`.
    Ping,
    /// `send`, to a valid target, with a body within the limit (not yet filtered).
    Send {
        id: String,
        to: Target,
        body: String,
    },
    /// `read` of a dm or group.
    Read { conv: ConvId, seq: u64 },
    /// `history` of a dm or group, with its page.
    History {
        reference: String,
        conv: ConvId,
        query: HistoryQuery,
    },
    /// `conversations`; `paged` when the client asked for a page (protocol 1.1).
    Conversations {
        reference: String,
        query: ListQuery,
        paged: bool,
    },
    /// A group request, with valid group and member ids.
    Group {
        reference: String,
        conv: ConvId,
        op: GroupOp,
    },
    /// `live_join` of a valid room id.
    LiveJoin { reference: String, room: String },
    /// `live_leave` (of any room: leaving one not watched is already done).
    LiveLeave { reference: String, room: String },
    /// `danmaku` to a valid room id, with a body within the limit (not yet filtered).
    Danmaku {
        id: String,
        room: String,
        body: String,
    },
    /// `presence_sub` of valid, distinct user ids (not more than a session may
    /// watch; whether they fit beside those it watches is checked by the session).
    PresenceSub {
        reference: String,
        users: Vec<String>,
    },
    /// `presence_unsub` (of any users: one not watched is already done).
    PresenceUnsub {
        reference: String,
        users: Vec<String>,
    },
    /// `typing` in a dm or group.
    Typing { conv: ConvId, state: TypingState },
}

/// How much of the session's budget a request holds until it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    /// One unit.
    One,
    /// The budget's large share: requests whose answer can be a whole frame.
    Large,
}

/// A request's share of the budget and what its answer is matched by (`None`:
/// it has no answer, and holds its share until it is done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cost {
    pub(crate) weight: Weight,
    pub(crate) key: Option<AnswerKey>,
}

/// Why a frame is not carried out, and what the client is told.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The answer (`None` for a `read`, which has none).
    pub(crate) answer: Option<Box<ServerFrame>>,
    /// `None`: answered at once; else the share the answer waits for.
    pub(crate) cost: Option<Cost>,
}

impl Refusal {
    /// Answered at once with `error` (its `ref` cut to the limit).
    fn at_once(reference: Option<&str>, message: &str) -> Self {
        Self {
            answer: Some(Box::new(error(
                reference,
                ErrorCode::Invalid,
                message.to_string(),
            ))),
            cost: None,
        }
    }
}

fn error(reference: Option<&str>, code: ErrorCode, message: String) -> ServerFrame {
    ServerFrame::Error {
        reference: reference.map(|r| r.chars().take(MAX_REF).collect()),
        code,
        message,
    }
}

/// The share a frame takes, and the key of its answer; a refusal at once when
/// its `ref` or id cannot be echoed.
fn cost_of(frame: &ClientFrame) -> Result<Cost, Refusal> {
    let by_ref = |reference: &String, weight| {
        if reference.len() > MAX_REF {
            return Err(Refusal::at_once(Some(reference), "ref is too long"));
        }
        Ok(Cost {
            weight,
            key: Some(AnswerKey::Ref(reference.clone())),
        })
    };
    match frame {
        ClientFrame::Hello { .. } => Err(Refusal::at_once(None, "already authenticated")),
        ClientFrame::Ping { .. } => Ok(Cost {
            weight: Weight::One,
            key: Some(AnswerKey::Pong),
        }),
        ClientFrame::Send { id, .. } | ClientFrame::Danmaku { id, .. } => {
            if let Err(e) = validate_id("id", id) {
                return Err(Refusal {
                    answer: Some(Box::new(reject_frame(
                        id,
                        ErrorCode::Invalid,
                        e.to_string(),
                        None,
                    ))),
                    cost: None,
                });
            }
            Ok(Cost {
                weight: Weight::One,
                key: Some(AnswerKey::Id(id.clone())),
            })
        }
        ClientFrame::Read { .. } | ClientFrame::Typing { .. } => Ok(Cost {
            weight: Weight::One,
            key: None,
        }),
        ClientFrame::History { reference, .. }
        | ClientFrame::Conversations { reference, .. }
        | ClientFrame::GroupCreate { reference, .. }
        | ClientFrame::GroupAdd { reference, .. }
        | ClientFrame::GroupRemove { reference, .. }
        | ClientFrame::GroupInfo { reference, .. }
        | ClientFrame::LiveJoin { reference, .. } => by_ref(reference, Weight::Large),
        ClientFrame::GroupLeave { reference, .. }
        | ClientFrame::LiveLeave { reference, .. }
        | ClientFrame::PresenceSub { reference, .. }
        | ClientFrame::PresenceUnsub { reference, .. } => by_ref(reference, Weight::One),
    }
}

impl Request {
    /// Validates `frame` against `limits`: the request with its cost, or the
    /// refusal to answer.
    pub(crate) fn parse(frame: ClientFrame, limits: &Limits) -> Result<(Request, Cost), Refusal> {
        let cost = cost_of(&frame)?;
        match content(frame, limits) {
            Ok(request) => Ok((request, cost)),
            Err(answer) => Err(Refusal {
                answer: answer.map(Box::new),
                cost: Some(cost),
            }),
        }
    }
}

/// The checks of a frame's content, after its `ref` or id passed.
fn content(frame: ClientFrame, limits: &Limits) -> Result<Request, Option<ServerFrame>> {
    let invalid = |reference: &str, message: String| {
        Some(error(Some(reference), ErrorCode::Invalid, message))
    };
    let body_fits = |id: &str, body: &str| {
        if body.len() > limits.max_body {
            let message = format!("body of {} bytes exceeds {}", body.len(), limits.max_body);
            return Err(Some(reject_frame(id, ErrorCode::TooLarge, message, None)));
        }
        Ok(())
    };
    let group = |reference: &str, id: &str, members: &[String]| {
        if let Err(e) = validate_id("group id", id) {
            return Err(invalid(reference, e.to_string()));
        }
        if members.len() > limits.max_group_members {
            return Err(invalid(reference, "too many members".into()));
        }
        if let Some(e) = members.iter().find_map(|m| validate_id("member", m).err()) {
            return Err(invalid(reference, e.to_string()));
        }
        Ok(ConvId::Group(id.to_string()))
    };
    Ok(match frame {
        // Refused by `cost_of`.
        ClientFrame::Hello { .. } => return Err(None),
        ClientFrame::Ping { .. } => Request::Ping,
        ClientFrame::Send { id, to, body } => {
            let to = match Target::parse(&to) {
                Ok(to) => to,
                Err(e) => {
                    let answer = reject_frame(&id, ErrorCode::Invalid, e.to_string(), None);
                    return Err(Some(answer));
                }
            };
            body_fits(&id, &body)?;
            Request::Send { id, to, body }
        }
        // A read has no answer: one of a conversation that cannot exist is dropped.
        ClientFrame::Read { conv, seq } => match ConvId::parse(&conv) {
            Ok(conv @ (ConvId::Dm(..) | ConvId::Group(_))) => Request::Read { conv, seq },
            _ => return Err(None),
        },
        ClientFrame::History {
            reference,
            conv,
            after,
            before,
            limit,
        } => {
            let conv = match ConvId::parse(&conv) {
                Ok(c @ (ConvId::Dm(..) | ConvId::Group(_))) => c,
                Ok(ConvId::Live(_)) => {
                    return Err(invalid(&reference, "live rooms have no history".into()));
                }
                Err(e) => return Err(invalid(&reference, e.to_string())),
            };
            let limit = match limit {
                None => limits.history_default,
                Some(0) => return Err(invalid(&reference, "limit must be at least 1".into())),
                Some(n) => n.min(limits.history_max),
            };
            Request::History {
                reference,
                conv,
                query: HistoryQuery {
                    after,
                    before,
                    limit,
                },
            }
        }
        ClientFrame::Conversations { reference, page } => {
            let paged = page.get().is_some();
            let (after, limit) = match page.get() {
                None => (None, limits.list_max),
                Some(ConversationsPage { limit: Some(0), .. }) => {
                    return Err(invalid(&reference, "limit must be at least 1".into()));
                }
                Some(ConversationsPage { after, limit }) => {
                    if let Some(after) = after
                        && let Err(e) = ConvId::parse(after)
                    {
                        return Err(invalid(&reference, e.to_string()));
                    }
                    let limit = limit.unwrap_or(limits.list_max).min(limits.list_max);
                    (after.clone(), limit)
                }
            };
            Request::Conversations {
                reference,
                query: ListQuery {
                    after,
                    limit: limit as usize,
                },
                paged,
            }
        }
        ClientFrame::GroupCreate {
            reference,
            id,
            name,
            members,
        } => {
            let id = id.unwrap_or_else(|| format!("g{:016x}", rand::random::<u64>()));
            if name.len() > MAX_GROUP_NAME {
                return Err(invalid(&reference, "group name is too long".into()));
            }
            let conv = group(&reference, &id, &members)?;
            let op = GroupOp::Create { name, members };
            Request::Group {
                reference,
                conv,
                op,
            }
        }
        ClientFrame::GroupAdd {
            reference,
            id,
            members,
        } => {
            let conv = group(&reference, &id, &members)?;
            let op = GroupOp::Add(members);
            Request::Group {
                reference,
                conv,
                op,
            }
        }
        ClientFrame::GroupRemove {
            reference,
            id,
            members,
        } => {
            let conv = group(&reference, &id, &members)?;
            let op = GroupOp::Remove(members);
            Request::Group {
                reference,
                conv,
                op,
            }
        }
        ClientFrame::GroupLeave { reference, id } => {
            let conv = group(&reference, &id, &[])?;
            let op = GroupOp::Leave;
            Request::Group {
                reference,
                conv,
                op,
            }
        }
        ClientFrame::GroupInfo { reference, id } => {
            let conv = group(&reference, &id, &[])?;
            let op = GroupOp::Info;
            Request::Group {
                reference,
                conv,
                op,
            }
        }
        ClientFrame::LiveJoin { reference, room } => {
            if let Err(e) = validate_id("room id", &room) {
                return Err(invalid(&reference, e.to_string()));
            }
            Request::LiveJoin { reference, room }
        }
        ClientFrame::LiveLeave { reference, room } => Request::LiveLeave { reference, room },
        ClientFrame::Danmaku { id, room, body } => {
            if let Err(e) = validate_id("room id", &room) {
                let answer = reject_frame(&id, ErrorCode::Invalid, e.to_string(), None);
                return Err(Some(answer));
            }
            body_fits(&id, &body)?;
            Request::Danmaku { id, room, body }
        }
        ClientFrame::PresenceSub { reference, users } => {
            let users = presence_users(&reference, users, MAX_PRESENCE_SUBS)?;
            Request::PresenceSub { reference, users }
        }
        ClientFrame::PresenceUnsub { reference, users } => {
            let users = presence_users(&reference, users, MAX_PRESENCE_SUBS)?;
            Request::PresenceUnsub { reference, users }
        }
        // `typing` has no answer and no `ref`: a bad conversation id is told
        // with an `error` without one.
        ClientFrame::Typing { conv, state } => match ConvId::parse(&conv) {
            Ok(conv @ (ConvId::Dm(..) | ConvId::Group(_))) => Request::Typing { conv, state },
            Ok(ConvId::Live(_)) => {
                let message = "live rooms have no typing".to_string();
                return Err(Some(error(None, ErrorCode::Invalid, message)));
            }
            Err(e) => return Err(Some(error(None, ErrorCode::Invalid, e.to_string()))),
        },
    })
}

/// The users of a presence request: valid ids, each once, at most `max`.
fn presence_users(
    reference: &str,
    mut users: Vec<String>,
    max: usize,
) -> Result<Vec<String>, Option<ServerFrame>> {
    let invalid = |message: String| Some(error(Some(reference), ErrorCode::Invalid, message));
    if users.len() > max {
        return Err(invalid(format!(
            "{} users exceed the {max} a session may watch",
            users.len()
        )));
    }
    if let Some(e) = users.iter().find_map(|u| validate_id("user", u).err()) {
        return Err(invalid(e.to_string()));
    }
    users.sort_unstable();
    users.dedup();
    Ok(users)
}

#[cfg(test)]
mod tests;
