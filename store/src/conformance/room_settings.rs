//! Live rooms' settings: read back as last written, per room, with "nothing set"
//! distinct from an explicit value (`Some(0)` turns slow mode off in a room whose
//! configured default is on).

use super::{CheckResult, Namespace, SharedStore};
use crate::RoomSettings;

fn slow(seconds: Option<u32>) -> RoomSettings {
    RoomSettings {
        slow_mode_s: seconds,
    }
}

/// A room nobody configured reads as all default; each write replaces what the
/// next read returns, `Some(0)` included; writing the default clears the room.
pub async fn last_write_reads_back(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let room = ns.room();
    ensure_eq!(
        store.room_settings(&room).await?,
        RoomSettings::default(),
        "settings of a new room"
    );
    for seconds in [
        Some(30),
        Some(0),
        Some(86_400),
        Some(u32::MAX),
        None,
        Some(5),
    ] {
        store.set_room_settings(&room, &slow(seconds)).await?;
        ensure_eq!(
            store.room_settings(&room).await?,
            slow(seconds),
            "settings after writing slow_mode_s = {seconds:?}"
        );
    }
    store
        .set_room_settings(&room, &RoomSettings::default())
        .await?;
    ensure_eq!(
        store.room_settings(&room).await?,
        RoomSettings::default(),
        "settings after writing the default"
    );
    Ok(())
}

/// Rooms keep their own settings, including rooms whose ids share a prefix.
pub async fn rooms_stay_apart(store: &SharedStore, ns: &Namespace) -> CheckResult {
    let first = ns.room();
    let longer = format!("{first}x");
    let other = ns.room();
    store.set_room_settings(&first, &slow(Some(10))).await?;
    store.set_room_settings(&longer, &slow(Some(0))).await?;
    ensure_eq!(
        store.room_settings(&first).await?,
        slow(Some(10)),
        "the first room"
    );
    ensure_eq!(
        store.room_settings(&longer).await?,
        slow(Some(0)),
        "a room whose id extends the first's"
    );
    ensure_eq!(
        store.room_settings(&other).await?,
        RoomSettings::default(),
        "an untouched room"
    );
    Ok(())
}
