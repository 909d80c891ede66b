//! A starting LiveRoom's operator settings ([`RoomSettings`]), read from the
//! store. The room waits for them at most [`SETTINGS_LOAD_TIMEOUT`] (messages
//! queue meanwhile); past that, or on a store error, it starts on the configured
//! defaults and a background task keeps trying, backing off, until it can tell
//! the room [`LiveRoomMsg::SettingsLoaded`].

use std::time::Duration;

use chorus_store::RoomSettings;
use chorus_wire::ConvId;

use super::LiveRoomMsg;
use crate::region::ShardRegion;

/// How long a starting room waits for its settings from the store before it
/// starts on the configured defaults (and keeps trying in the background).
const SETTINGS_LOAD_TIMEOUT: Duration = Duration::from_secs(1);

/// The first wait between tries to load a room's settings after a failure; it
/// doubles after each failed try.
const SETTINGS_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between tries.
const SETTINGS_RETRY_MAX: Duration = Duration::from_secs(30);

/// The room's settings from the store, within [`SETTINGS_LOAD_TIMEOUT`].
pub(super) async fn load(region: &ShardRegion, room: &str) -> Result<RoomSettings, String> {
    match tokio::time::timeout(SETTINGS_LOAD_TIMEOUT, region.store().room_settings(room)).await {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the store did not answer within {} ms",
            SETTINGS_LOAD_TIMEOUT.as_millis()
        )),
    }
}

/// Tries to load the room's settings again, backing off, until it succeeds and
/// tells the room; stops when the returned guard is dropped.
pub(super) fn retry(region: ShardRegion, room: String) -> crate::Ticker {
    crate::Ticker(tokio::spawn(async move {
        let mut wait = SETTINGS_RETRY_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            match load(&region, &room).await {
                Ok(stored) => {
                    tracing::info!(room = %room, "loaded the live room's settings after a retry");
                    // Through the registry, which counts what it delivers (see
                    // `region::registry`).
                    region.tell_live_room(
                        &ConvId::Live(room.clone()),
                        LiveRoomMsg::SettingsLoaded(stored),
                    );
                    return;
                }
                Err(why) => {
                    tracing::debug!(room = %room, error = %why, "live room settings still unavailable");
                    wait = (wait * 2).min(SETTINGS_RETRY_MAX);
                }
            }
        }
    }))
}
