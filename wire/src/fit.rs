//! Server frames that hold lists, made to fit the frame limit as encoded.
//!
//! Every frame a node sends must fit `limits.max_frame` in the encoding of the
//! connection (docs/protocol.md §2); a peer may refuse a longer one. A history page, a
//! conversation list, a live batch or `live_joined.recent` can be far longer than
//! that (200 messages of 4 KiB; a body of control characters, which JSON writes as
//! six bytes each), so they are built here, measured in **both** encodings — a
//! frame is built once and may go to JSON and binary sessions alike:
//!
//! - a history page keeps as many messages as fit, from the end the page starts
//!   at, and says `more` when it left any out (docs/protocol.md §7.6: `more` already
//!   means "further messages exist in the direction of the page");
//! - a conversation list keeps its first items, and says `more` where the
//!   request asked for pages;
//! - a live batch is split into several `live_batch` frames, the room's `dropped`
//!   on the first, so per viewer accepted = delivered + Σ `dropped` still holds;
//! - `live_joined.recent` keeps its newest items (it holds "up to" 20).
//!
//! One item always fits on its own when the limits obey
//! [`min_frame_for_body`]: bodies are bounded, and so is every other field.
//! The cost is low: the exact sizes are computed only when a cheap upper bound
//! says the list might not fit.

use bincode::enc::write::SizeWriter;
use serde::Serialize;

use crate::frame::{ConversationItem, LiveItem, Message, ServerFrame, Trailing};
use crate::limits::{MAX_GROUP_NAME, MAX_ID_LEN};

/// Bytes JSON may write for one byte of text: a control character is `\u00XX`.
pub const JSON_ESCAPE_FACTOR: u32 = 6;

/// Room for everything of a one-item frame but its body: ids, `ref`, numbers,
/// member names. Proven by the tests over the worst case of every frame kind.
pub const FRAME_OVERHEAD: u32 = 4_096;

/// Smallest frame limit that holds any one message or live item with a body of
/// `max_body` bytes, in either encoding.
pub const fn min_frame_for_body(max_body: u32) -> u32 {
    max_body
        .saturating_mul(JSON_ESCAPE_FACTOR)
        .saturating_add(FRAME_OVERHEAD)
}

/// Smallest frame limit that holds a `group` frame of `max_members` members:
/// ids are ASCII, so JSON writes each as itself, quoted, after a comma; the name
/// is free text of at most [`MAX_GROUP_NAME`] bytes.
pub const fn min_frame_for_group(max_members: u32) -> u32 {
    let per_member = MAX_ID_LEN as u32 + 3;
    max_members
        .saturating_mul(per_member)
        .saturating_add(MAX_GROUP_NAME as u32 * JSON_ESCAPE_FACTOR)
        .saturating_add(FRAME_OVERHEAD)
}

/// Largest `message` of an `error` or `reject`, in bytes: they are made by the
/// server, sometimes from a store's error text, which has no bound of its own.
pub const MAX_ERROR_MESSAGE: usize = 256;

/// Which end of a list a cut page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first items (a page read forward, with `after`).
    First,
    /// The last items (a page read backward: `before`, or the newest).
    Last,
}

/// The encoded size of a value in each encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodedLen {
    /// Bytes as JSON.
    pub json: usize,
    /// Bytes as binary.
    pub binary: usize,
}

impl EncodedLen {
    /// The larger of the two: what must fit the limit.
    pub fn max(self) -> usize {
        self.json.max(self.binary)
    }
}

/// The exact encoded size of a frame (binary without the TCP length prefix).
pub fn encoded_len(frame: &ServerFrame) -> EncodedLen {
    len_of(frame)
}

fn len_of<T: Serialize + bincode::Encode>(value: &T) -> EncodedLen {
    let mut json = JsonCounter(0);
    // Serialising plain structs of strings and integers cannot fail.
    let _ = serde_json::to_writer(&mut json, value);
    let mut binary = SizeWriter::default();
    let _ = bincode::encode_into_writer(value, &mut binary, bincode::config::standard());
    EncodedLen {
        json: json.0,
        binary: binary.bytes_written,
    }
}

struct JsonCounter(usize);

impl std::io::Write for JsonCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An item of a list frame, with a cheap upper bound of its encoded size.
trait Item: Serialize + bincode::Encode {
    /// At least the item's size in either encoding.
    fn bound(&self) -> usize;
}

/// A JSON string's worst size (every byte escaped, quotes, a member name) —
/// also more than its binary form (a length of at most 9 bytes, then the bytes).
fn text_bound(s: &str) -> usize {
    s.len() * JSON_ESCAPE_FACTOR as usize + 16
}

/// A number's worst size: 20 digits and a member name.
const NUMBER_BOUND: usize = 32;

impl Item for Message {
    fn bound(&self) -> usize {
        text_bound(&self.conv)
            + text_bound(&self.id)
            + text_bound(&self.from)
            + text_bound(&self.body)
            + 2 * NUMBER_BOUND
            + 4
    }
}

impl Item for ConversationItem {
    fn bound(&self) -> usize {
        text_bound(&self.conv) + 2 * NUMBER_BOUND + 4
    }
}

impl Item for LiveItem {
    fn bound(&self) -> usize {
        text_bound(&self.id)
            + text_bound(&self.from)
            + text_bound(&self.body)
            + 2 * NUMBER_BOUND
            + 32
    }
}

/// How many of `items` fit beside `overhead` (the frame with an empty list), from
/// the end `keep` names.
fn how_many<T: Item>(overhead: EncodedLen, items: &[T], keep: Keep, max_frame: u32) -> usize {
    let max = max_frame as usize;
    let bound: usize = items.iter().map(|i| i.bound() + 1).sum();
    // A list's binary length grows from one byte to at most nine.
    if overhead.max() + bound + 8 <= max {
        return items.len();
    }
    let (mut json, mut binary) = (overhead.json, overhead.binary + 8);
    let mut fits = 0;
    let mut take = |item: &T| {
        let len = len_of(item);
        // One comma between JSON items.
        let comma = usize::from(fits > 0);
        if json + len.json + comma > max || binary + len.binary > max {
            return false;
        }
        json += len.json + comma;
        binary += len.binary;
        fits += 1;
        true
    };
    match keep {
        Keep::First => {
            for item in items {
                if !take(item) {
                    break;
                }
            }
        }
        Keep::Last => {
            for item in items.iter().rev() {
                if !take(item) {
                    break;
                }
            }
        }
    }
    fits
}

/// A `history_page` of as many of `messages` (ascending seq) as fit `max_frame`,
/// kept from the end `keep` names; `more` turns true when any were left out.
pub fn history_page(
    reference: String,
    conv: String,
    mut messages: Vec<Message>,
    more: bool,
    keep: Keep,
    max_frame: u32,
) -> ServerFrame {
    let overhead = encoded_len(&ServerFrame::HistoryPage {
        reference: reference.clone(),
        conv: conv.clone(),
        messages: Vec::new(),
        more,
    });
    let fits = how_many(overhead, &messages, keep, max_frame);
    let cut = fits < messages.len();
    if cut {
        match keep {
            Keep::First => messages.truncate(fits),
            Keep::Last => {
                messages.drain(..messages.len() - fits);
            }
        }
    }
    ServerFrame::HistoryPage {
        reference,
        conv,
        messages,
        more: more || cut,
    }
}

/// A `conversation_list` of the first of `items` that fit `max_frame`. `more` is
/// the answer's trailing field: absent for a v1 request (which then gets the
/// first page that fits, with no way to ask for the rest), else true when items
/// were left out here or further ones exist.
pub fn conversation_list(
    reference: String,
    mut items: Vec<ConversationItem>,
    more: Trailing<bool>,
    max_frame: u32,
) -> ServerFrame {
    let overhead = encoded_len(&ServerFrame::ConversationList {
        reference: reference.clone(),
        items: Vec::new(),
        more,
    });
    let fits = how_many(overhead, &items, Keep::First, max_frame);
    let cut = fits < items.len();
    items.truncate(fits);
    let more = match more.0 {
        Some(more) => Trailing::some(more || cut),
        None => Trailing::ABSENT,
    };
    ServerFrame::ConversationList {
        reference,
        items,
        more,
    }
}

/// One room's batch as `live_batch` frames that each fit `max_frame`, in seq
/// order; `dropped` rides on the first. An item that cannot fit on its own
/// (impossible within [`min_frame_for_body`]) is left out and counted in the
/// second value.
pub fn live_batches(
    room: &str,
    mut items: Vec<LiveItem>,
    viewers: u64,
    dropped: u64,
    max_frame: u32,
) -> (Vec<ServerFrame>, usize) {
    let frame = |items: Vec<LiveItem>, dropped: u64| ServerFrame::LiveBatch {
        room: room.to_string(),
        items,
        viewers,
        dropped,
    };
    let overhead = encoded_len(&frame(Vec::new(), dropped));
    let mut frames = Vec::new();
    let mut lost = 0;
    let mut dropped = dropped;
    while !items.is_empty() || frames.is_empty() {
        let fits = how_many(overhead, &items, Keep::First, max_frame);
        if fits == 0 && !items.is_empty() {
            items.remove(0);
            lost += 1;
            continue;
        }
        let rest = items.split_off(fits);
        frames.push(frame(items, dropped));
        dropped = 0;
        items = rest;
    }
    (frames, lost)
}

/// A `live_joined` with the newest of `recent` that fit `max_frame`.
pub fn live_joined(
    reference: String,
    room: String,
    viewers: u64,
    mut recent: Vec<LiveItem>,
    max_frame: u32,
) -> ServerFrame {
    let overhead = encoded_len(&ServerFrame::LiveJoined {
        reference: reference.clone(),
        room: room.clone(),
        viewers,
        recent: Vec::new(),
    });
    let fits = how_many(overhead, &recent, Keep::Last, max_frame);
    recent.drain(..recent.len() - fits);
    ServerFrame::LiveJoined {
        reference,
        room,
        viewers,
        recent,
    }
}

/// `frame` with the free text the server wrote into it bounded: the `message` of
/// an `error` or `reject` cut to [`MAX_ERROR_MESSAGE`] bytes.
pub fn bounded(frame: ServerFrame) -> ServerFrame {
    match frame {
        ServerFrame::Error {
            reference,
            code,
            message,
        } if message.len() > MAX_ERROR_MESSAGE => ServerFrame::Error {
            reference,
            code,
            message: error_message(message),
        },
        ServerFrame::Reject {
            id,
            code,
            message,
            retry_after_ms,
        } if message.len() > MAX_ERROR_MESSAGE => ServerFrame::Reject {
            id,
            code,
            message: error_message(message),
            retry_after_ms,
        },
        other => other,
    }
}

/// `message` cut to [`MAX_ERROR_MESSAGE`] bytes at a character boundary.
fn error_message(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}
