//! Live rooms' slow mode: `GET /admin/live/slow/{room}`, `POST /admin/live/slow`.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// The body of `POST /admin/live/slow`: `{"room": "r1", "seconds": 30}`.
///
/// `seconds` is required: 0 turns slow mode off in the room, `null` removes the
/// room's own setting so that the node's `[live] slow_mode_s` applies again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowModeRequest {
    /// The live room id, without `live:`.
    pub room: String,
    /// Seconds between one user's accepted danmaku (at most 86400), 0 for off,
    /// `null` for the node's default. Absent (`None` here) is refused; wider than
    /// the stored type so that a too-large number is refused with the bound, not
    /// a type error.
    #[serde(default, deserialize_with = "present")]
    #[schema(required, value_type = Option<u64>)]
    pub seconds: Option<Option<u64>>,
}

impl SlowModeRequest {
    /// The request that sets `room` to `seconds` (`None`: back to the default).
    pub fn new(room: impl Into<String>, seconds: Option<u32>) -> Self {
        Self {
            room: room.into(),
            seconds: Some(seconds.map(u64::from)),
        }
    }
}

/// Deserializes a field that is present (`null` included) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The answer of both slow-mode endpoints: what the room applies, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlowModeResponse {
    /// The room, without `live:`.
    pub room: String,
    /// What the room applies: seconds between one user's accepted danmaku (0: off).
    pub slow_mode_s: u64,
    /// The operator's setting for this room; `null`: none, the room follows
    /// `default_s`.
    pub override_s: Option<u32>,
    /// The node's `[live] slow_mode_s`.
    pub default_s: u64,
}
