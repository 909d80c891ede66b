//! Reading `live_batch` frames cheaply: what a viewer needs of each item (`seq`,
//! `prio`, the `body` with its intended send time) borrowed from the frame's bytes,
//! without building a [`ServerFrame`] and its three `String`s per item.
//!
//! Thousands of viewers in one process read millions of items a second; decoding
//! each into owned strings would make the tool, not the node, the bottleneck.
//!
//! - Binary (bincode 2, standard config, docs/protocol.md §4): the variant index, then
//!   the fields in order; integers are varints (below 251: one byte; 251, 252, 253:
//!   a little-endian u16, u32, u64 follows); strings and lists are a varint length
//!   and their contents. `live_batch` is variant 11: `room`, `items` (each `seq`,
//!   `id`, `from`, `body`, `ts_ms`, `prio`), `viewers`, `dropped`.
//! - JSON: a borrowed serde view of the object (`body` borrowed when it has no
//!   escapes, as the tool's bodies never do).
//!
//! Any other frame is decoded in full with [`ServerFrame::decode`].

use std::borrow::Cow;

use chorus_wire::codec::Frame;
use chorus_wire::{Encoding, Prio, ServerFrame};
use serde::Deserialize;

/// The binary variant index of `live_batch` (stable: variants are only appended).
const LIVE_BATCH_VARIANT: u64 = 11;
/// Largest frame decoded in full (the non-batch frames a viewer gets are small).
const MAX_OTHER_FRAME: u32 = 1024 * 1024;

/// What a viewer reads of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemView<'a> {
    /// Room-local seq.
    pub(crate) seq: u64,
    /// Priority, from the sender's roles.
    pub(crate) prio: Prio,
    /// The body, whose start carries the intended send time.
    pub(crate) body: Cow<'a, [u8]>,
}

/// What a viewer reads of one `live_batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchView<'a> {
    /// Room id.
    pub(crate) room: Cow<'a, str>,
    /// The items, in the frame's order.
    pub(crate) items: Vec<ItemView<'a>>,
    /// Accepted items sampled away since the viewer's previous batch of the room.
    pub(crate) dropped: u64,
}

/// One frame as a viewer sees it.
#[derive(Debug)]
pub(crate) enum Incoming<'a> {
    /// A `live_batch`, borrowed.
    Batch(BatchView<'a>),
    /// Anything else, decoded.
    Other(Box<ServerFrame>),
}

/// Reads one frame; `None` when it does not decode.
pub(crate) fn read(bytes: &[u8], encoding: Encoding) -> Option<Incoming<'_>> {
    let batch = match encoding {
        Encoding::Binary => binary_batch(bytes),
        Encoding::Json => json_batch(bytes),
    };
    match batch {
        Some(batch) => Some(Incoming::Batch(batch)),
        None => ServerFrame::decode(bytes, encoding, MAX_OTHER_FRAME)
            .ok()
            .map(|f| Incoming::Other(Box::new(f))),
    }
}

/// The intended send time (µs since the run's start) that a body made by
/// [`crate::ledger::body`] starts with: `t<digits>;`.
pub(crate) fn intended_us(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"t")?;
    let end = rest.iter().position(|&b| b == b';')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// A cursor over bincode's standard encoding.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let first = *self.take(1)?.first()?;
        let wide = |b: &[u8]| {
            let mut le = [0u8; 8];
            le[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(le)
        };
        match first {
            0..=250 => Some(u64::from(first)),
            251 => self.take(2).map(wide),
            252 => self.take(4).map(wide),
            253 => self.take(8).map(wide),
            _ => None,
        }
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }
}

fn prio(index: u64) -> Option<Prio> {
    Some(match index {
        0 => Prio::Normal,
        1 => Prio::Vip,
        2 => Prio::Paid,
        3 => Prio::System,
        _ => return None,
    })
}

fn binary_batch(bytes: &[u8]) -> Option<BatchView<'_>> {
    let mut r = Reader { bytes };
    if r.varint()? != LIVE_BATCH_VARIANT {
        return None;
    }
    let room = std::str::from_utf8(r.bytes()?).ok()?;
    let count = usize::try_from(r.varint()?).ok()?;
    // Every item takes at least six bytes: a count the frame cannot hold is refused
    // before anything is reserved for it.
    if count > r.bytes.len() / 6 {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let seq = r.varint()?;
        let _id = r.bytes()?;
        let _from = r.bytes()?;
        let body = r.bytes()?;
        let _ts_ms = r.varint()?;
        let prio = prio(r.varint()?)?;
        items.push(ItemView {
            seq,
            prio,
            body: Cow::Borrowed(body),
        });
    }
    let _viewers = r.varint()?;
    let dropped = r.varint()?;
    r.bytes.is_empty().then_some(BatchView {
        room: Cow::Borrowed(room),
        items,
        dropped,
    })
}

#[derive(Deserialize)]
struct JsonBatch<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    room: Cow<'a, str>,
    #[serde(borrow, default)]
    items: Vec<JsonItem<'a>>,
    #[serde(default)]
    dropped: u64,
}

#[derive(Deserialize)]
struct JsonItem<'a> {
    seq: u64,
    #[serde(borrow)]
    body: Cow<'a, str>,
    prio: Prio,
}

fn json_batch(bytes: &[u8]) -> Option<BatchView<'_>> {
    // Every other frame the viewer gets is small; only a `live_batch` goes this way.
    let batch: JsonBatch<'_> = serde_json::from_slice(bytes).ok()?;
    if batch.kind != "live_batch" {
        return None;
    }
    Some(BatchView {
        room: batch.room,
        items: batch
            .items
            .into_iter()
            .map(|i| ItemView {
                seq: i.seq,
                prio: i.prio,
                body: match i.body {
                    Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                    Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                },
            })
            .collect(),
        dropped: batch.dropped,
    })
}
