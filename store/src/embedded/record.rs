//! Value encodings: a format byte, then fields in order — integers as 8 bytes
//! big-endian, strings as a 4-byte big-endian length and UTF-8 bytes.
//!
//! Hand-rolled rather than a serde format so the on-disk layout is explicit here and
//! independent of the wire codec. Decoding checks every length against the bytes
//! actually present and reports anything off as [`StoreError::Corrupt`]: stored
//! bytes are never trusted enough to panic on.

use crate::{DedupHit, GroupRecord, Message, RoomSettings, StoreError, StoreResult};

/// The first byte of every value; a later layout gets a new number so old values
/// stay readable.
const FORMAT_V1: u8 = 1;

/// Builds one value.
struct Encoder {
    buf: Vec<u8>,
    /// Set when a string is too long for its 4-byte length: the value is refused
    /// rather than written with a length that lies.
    oversized: bool,
}

impl Encoder {
    fn new(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 1);
        buf.push(FORMAT_V1);
        Self {
            buf,
            oversized: false,
        }
    }

    fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A presence byte (0 or 1), then the value when present.
    fn opt_u64(mut self, v: Option<u64>) -> Self {
        match v {
            Some(v) => {
                self.buf.push(1);
                self.u64(v)
            }
            None => {
                self.buf.push(0);
                self
            }
        }
    }

    fn str(mut self, s: &str) -> Self {
        match u32::try_from(s.len()) {
            Ok(len) => {
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(s.as_bytes());
            }
            Err(_) => self.oversized = true,
        }
        self
    }

    /// The value, unless a string did not fit its length field.
    fn finish(self, what: &str) -> StoreResult<Vec<u8>> {
        if self.oversized {
            return Err(StoreError::Backend(format!(
                "{what} has a field over 4 GiB"
            )));
        }
        Ok(self.buf)
    }

    /// The value of an encoder that was given no strings, so cannot be oversized.
    fn finish_fixed(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads one value back, failing on any inconsistency.
struct Decoder<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Decoder<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> StoreResult<Self> {
        match buf.split_first() {
            Some((&FORMAT_V1, rest)) => Ok(Self { rest, what }),
            Some((v, _)) => Err(StoreError::Corrupt(format!("{what}: unknown format {v}"))),
            None => Err(StoreError::Corrupt(format!("{what}: empty value"))),
        }
    }

    fn corrupt(&self, why: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {why}", self.what))
    }

    fn take(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u64(&mut self) -> StoreResult<u64> {
        let bytes = self.take(8)?;
        let arr = <[u8; 8]>::try_from(bytes).map_err(|_| self.corrupt("truncated"))?;
        Ok(u64::from_be_bytes(arr))
    }

    fn opt_u64(&mut self) -> StoreResult<Option<u64>> {
        match self.take(1)? {
            [0] => Ok(None),
            [1] => self.u64().map(Some),
            _ => Err(self.corrupt("bad presence byte")),
        }
    }

    fn u32(&mut self) -> StoreResult<u32> {
        let bytes = self.take(4)?;
        let arr = <[u8; 4]>::try_from(bytes).map_err(|_| self.corrupt("truncated"))?;
        Ok(u32::from_be_bytes(arr))
    }

    fn string(&mut self) -> StoreResult<String> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.corrupt("length overflow"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    fn finish(self) -> StoreResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

/// A message value; conv and seq live in the key, so they are not repeated here.
pub(super) fn encode_message(m: &Message) -> StoreResult<Vec<u8>> {
    Encoder::new(m.id.len() + m.from.len() + m.body.len() + 20)
        .str(&m.id)
        .str(&m.from)
        .str(&m.body)
        .u64(m.ts_ms)
        .finish("message")
}

/// A message back from its key parts and value.
pub(super) fn decode_message(conv: &str, seq: u64, value: &[u8]) -> StoreResult<Message> {
    let mut d = Decoder::new(value, "message")?;
    let id = d.string()?;
    let from = d.string()?;
    let body = d.string()?;
    let ts_ms = d.u64()?;
    d.finish()?;
    Ok(Message {
        conv: conv.to_string(),
        seq,
        id,
        from,
        body,
        ts_ms,
    })
}

/// A single counter: last seq, read position, next free seq.
pub(super) fn encode_u64(v: u64) -> Vec<u8> {
    Encoder::new(8).u64(v).finish_fixed()
}

/// A single counter back.
pub(super) fn decode_u64(value: &[u8], what: &'static str) -> StoreResult<u64> {
    let mut d = Decoder::new(value, what)?;
    let v = d.u64()?;
    d.finish()?;
    Ok(v)
}

/// A dedup entry: the seq and acceptance time of a client message id.
pub(super) fn encode_dedup(hit: DedupHit) -> Vec<u8> {
    Encoder::new(16).u64(hit.seq).u64(hit.ts_ms).finish_fixed()
}

/// A dedup entry back.
pub(super) fn decode_dedup(value: &[u8]) -> StoreResult<DedupHit> {
    let mut d = Decoder::new(value, "dedup entry")?;
    let seq = d.u64()?;
    let ts_ms = d.u64()?;
    d.finish()?;
    Ok(DedupHit { seq, ts_ms })
}

/// A group value; the id lives in the key.
pub(super) fn encode_group(g: &GroupRecord) -> StoreResult<Vec<u8>> {
    let size = g.name.len() + g.owner.len() + g.members.iter().map(|m| m.len() + 4).sum::<usize>();
    let count = u64::try_from(g.members.len()).unwrap_or(u64::MAX);
    let mut e = Encoder::new(size + 16)
        .str(&g.name)
        .str(&g.owner)
        .u64(count);
    for member in &g.members {
        e = e.str(member);
    }
    e.finish("group")
}

/// A group back from its id and value.
pub(super) fn decode_group(id: &str, value: &[u8]) -> StoreResult<GroupRecord> {
    let mut d = Decoder::new(value, "group")?;
    let name = d.string()?;
    let owner = d.string()?;
    let count = d.u64()?;
    // Each member takes at least its 4-byte length, so a count the remaining bytes
    // cannot hold is corrupt; checking first keeps a bad count from reserving memory.
    if count > (d.rest.len() / 4) as u64 {
        return Err(d.corrupt("member count exceeds value size"));
    }
    let mut members = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        members.push(d.string()?);
    }
    d.finish()?;
    Ok(GroupRecord {
        id: id.to_string(),
        name,
        owner,
        members,
    })
}

/// A live room's settings; the room id lives in the key.
pub(super) fn encode_room_settings(settings: &RoomSettings) -> Vec<u8> {
    Encoder::new(9)
        .opt_u64(settings.slow_mode_s.map(u64::from))
        .finish_fixed()
}

/// A live room's settings back.
pub(super) fn decode_room_settings(value: &[u8]) -> StoreResult<RoomSettings> {
    let mut d = Decoder::new(value, "room settings")?;
    let slow_mode_s = match d.opt_u64()? {
        Some(s) => Some(u32::try_from(s).map_err(|_| d.corrupt("slow mode beyond u32"))?),
        None => None,
    };
    d.finish()?;
    Ok(RoomSettings { slow_mode_s })
}
