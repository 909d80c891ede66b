//! Fields added after v1 at the end of a frame, which v1 peers neither send nor expect.
//!
//! `docs/protocol.md` fixes every v1 frame's binary layout, and a strict v1 decoder
//! rejects bytes left over after a frame. A field appended to a frame must
//! therefore be *absent* in the bytes of a peer that does not know it:
//!
//! - **binary**: a [`Trailing`] field is the last one of its frame. Absent, it takes
//!   no bytes at all (the v1 layout); present, it is a bincode option (`01`, then the
//!   value). A decoder that meets the end of the frame where the field would start
//!   reads it as absent; `00` also means absent.
//! - **JSON**: absent, the member is left out; present, it is written. Unknown
//!   members are ignored by every v1 reader (docs/protocol.md §3), so JSON needs no care
//!   beyond that.
//!
//! The server answers with a trailing field only when the request showed that the
//! client knows it (the request carried its own trailing field), so a v1 client
//! never sees one.

use bincode::de::read::Reader;
use bincode::{BorrowDecode, Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An optional field at the end of a frame that v1 peers leave out entirely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Trailing<T>(pub Option<T>);

impl<T> Trailing<T> {
    /// The absent field: the frame has its v1 layout.
    pub const ABSENT: Self = Self(None);

    /// A present field.
    pub fn some(value: T) -> Self {
        Self(Some(value))
    }

    /// Whether the field is absent (serde's `skip_serializing_if`).
    pub fn is_absent(&self) -> bool {
        self.0.is_none()
    }

    /// The value, if present.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<T> From<Option<T>> for Trailing<T> {
    fn from(value: Option<T>) -> Self {
        Self(value)
    }
}

impl<T: Encode + MeansAbsent> Encode for Trailing<T> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        match &self.0 {
            // A value that stands for absence is written as absent, as in JSON.
            None => Ok(()),
            Some(value) if value.means_absent() => Ok(()),
            Some(value) => {
                1u8.encode(encoder)?;
                value.encode(encoder)
            }
        }
    }
}

impl<Context, T: Decode<Context> + MeansAbsent> Decode<Context> for Trailing<T> {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        if decoder.reader().peek_read(1).is_none() {
            return Ok(Self(None));
        }
        let value = Option::<T>::decode(decoder)?;
        // Read as JSON reads it: both encodings agree on what a frame means.
        Ok(Self(value.filter(|v| !v.means_absent())))
    }
}

impl<'de, Context, T: BorrowDecode<'de, Context> + MeansAbsent> BorrowDecode<'de, Context>
    for Trailing<T>
{
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        if decoder.reader().peek_read(1).is_none() {
            return Ok(Self(None));
        }
        let value = Option::<T>::borrow_decode(decoder)?;
        Ok(Self(value.filter(|v| !v.means_absent())))
    }
}

/// JSON: absent is a missing member (or `null`), present is the value. A frame
/// field of this type carries `#[serde(default, skip_serializing_if = "Trailing::is_absent")]`,
/// or `#[serde(flatten)]` for a struct of members.
impl<T: Serialize> Serialize for Trailing<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de> + MeansAbsent> Deserialize<'de> for Trailing<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Option::<T>::deserialize(deserializer)?;
        Ok(Self(value.filter(|v| !v.means_absent())))
    }
}

/// Whether a value of a trailing field stands for its absence. A struct of
/// optional members flattened into its frame (`#[serde(flatten)]`) is always
/// "present" to serde, even when none of its members is; such a struct says here
/// that it is absent when all of its members are. Binary reads and writes such a
/// value as absent too, so a frame means the same in both encodings (and
/// re-encodes to bytes that decode to itself).
pub trait MeansAbsent {
    /// True when this value must read as an absent field.
    fn means_absent(&self) -> bool {
        false
    }
}

impl MeansAbsent for bool {}
