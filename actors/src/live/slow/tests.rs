//! Slow mode on a paused clock: the gate alone, then a real LiveRoom entity (on
//! the real embedded store) answering sessions' danmaku.

use std::sync::Arc;
use std::time::Duration;

use chorus_store::embedded::EmbeddedStore;
use chorus_store::{MessageStore, RoomSettings};
use chorus_wire::{ClientFrame, ConvId, ErrorCode, Prio, ServerFrame};
use tokio::time::advance;

use super::{SlowMode, retry_after_ms};
use crate::live::LiveRoomMsg;
use crate::outbound::OutboundQueue;
use crate::session::Role;
use crate::{Identity, Roles, Session, SessionHandle, Settings, ShardRegion};

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn off_lets_everything_through() {
    let mut gate = SlowMode::new(Duration::ZERO);
    for _ in 0..100 {
        assert_eq!(gate.check("u", Prio::Normal), Ok(()));
    }
    assert_eq!(gate.tracked(), 0, "nothing is remembered while off");
}

#[tokio::test(start_paused = true)]
async fn one_danmaku_per_interval_per_user() {
    let mut gate = SlowMode::new(30 * SECOND);
    assert_eq!(gate.check("u", Prio::Normal), Ok(()));
    assert_eq!(gate.check("u", Prio::Normal), Err(30 * SECOND));
    advance(10 * SECOND).await;
    assert_eq!(
        gate.check("u", Prio::Vip),
        Err(20 * SECOND),
        "vip is not exempt"
    );
    // Another user has their own time.
    assert_eq!(gate.check("v", Prio::Normal), Ok(()));
    advance(20 * SECOND - MS).await;
    assert_eq!(gate.check("u", Prio::Normal), Err(MS));
    advance(MS).await;
    assert_eq!(
        gate.check("u", Prio::Normal),
        Ok(()),
        "a whole interval later"
    );
    assert_eq!(gate.check("u", Prio::Normal), Err(30 * SECOND));
    assert_eq!(gate.check("v", Prio::Normal), Err(10 * SECOND));
}

#[tokio::test(start_paused = true)]
async fn paid_and_system_are_exempt_and_not_remembered() {
    let mut gate = SlowMode::new(30 * SECOND);
    for _ in 0..10 {
        assert_eq!(gate.check("payer", Prio::Paid), Ok(()));
        assert_eq!(gate.check("ops", Prio::System), Ok(()));
    }
    assert_eq!(gate.tracked(), 0);
    // A paid item does not spend the user's ordinary turn either.
    assert_eq!(gate.check("payer", Prio::Normal), Ok(()));
    assert_eq!(gate.check("payer", Prio::Paid), Ok(()));
    assert_eq!(gate.check("payer", Prio::Normal), Err(30 * SECOND));
}

#[tokio::test(start_paused = true)]
async fn users_are_forgotten_an_interval_later() {
    let mut gate = SlowMode::new(10 * SECOND);
    for i in 0..1_000 {
        assert_eq!(gate.check(&format!("u{i}"), Prio::Normal), Ok(()));
    }
    assert_eq!(gate.tracked(), 1_000);
    advance(5 * SECOND).await;
    assert_eq!(gate.check("late", Prio::Normal), Ok(()));
    assert_eq!(gate.tracked(), 1_001, "nobody is a whole interval old yet");
    advance(5 * SECOND).await;
    assert_eq!(gate.check("u0", Prio::Normal), Ok(()));
    assert_eq!(gate.tracked(), 2, "only `late` and the new `u0` remain");
}

#[tokio::test(start_paused = true)]
async fn interval_changes_apply_to_the_next_check() {
    let mut gate = SlowMode::new(30 * SECOND);
    assert_eq!(gate.check("u", Prio::Normal), Ok(()));
    advance(5 * SECOND).await;
    gate.set_interval(60 * SECOND);
    assert_eq!(gate.check("u", Prio::Normal), Err(55 * SECOND), "longer");
    gate.set_interval(5 * SECOND);
    assert_eq!(
        gate.check("u", Prio::Normal),
        Ok(()),
        "shorter: already waited"
    );
    assert_eq!(gate.check("u", Prio::Normal), Err(5 * SECOND));
    gate.set_interval(Duration::ZERO);
    assert_eq!(gate.tracked(), 0, "off forgets everyone");
    assert_eq!(gate.check("u", Prio::Normal), Ok(()));
    gate.set_interval(5 * SECOND);
    assert_eq!(
        gate.check("u", Prio::Normal),
        Ok(()),
        "on again: a fresh start"
    );
    assert_eq!(gate.check("u", Prio::Normal), Err(5 * SECOND));
    advance(5 * SECOND).await;
    assert_eq!(gate.check("v", Prio::Normal), Ok(()));
    assert_eq!(
        gate.tracked(),
        1,
        "u's entries are purged however often it changed"
    );
}

#[test]
fn retry_after_rounds_up_to_whole_milliseconds() {
    assert_eq!(retry_after_ms(Duration::ZERO), 1);
    assert_eq!(retry_after_ms(Duration::from_micros(1)), 1);
    assert_eq!(retry_after_ms(Duration::from_micros(1_500)), 2);
    assert_eq!(retry_after_ms(30 * SECOND), 30_000);
}

/// A session of the test, read as a gateway would read its queue.
struct Client {
    session: Session,
    queue: OutboundQueue,
    sent: u64,
}

impl Client {
    async fn open(region: &ShardRegion, id: u64, user: &str, roles: Roles) -> Self {
        let (handle, queue) = SessionHandle::new(id, user.into(), 1024);
        let identity = Identity {
            user: user.into(),
            roles,
        };
        let session = Session::open(region.clone(), identity, handle).await;
        Self {
            session,
            queue,
            sent: 0,
        }
    }

    /// Sends a danmaku to `room`: `Ok(seq)` on `ack`, `Err((code, retry_after_ms))`
    /// on `reject`.
    async fn danmaku(&mut self, room: &str) -> Result<u64, (ErrorCode, Option<u64>)> {
        self.sent += 1;
        let id = format!("d{}", self.sent);
        self.session
            .handle_frame(ClientFrame::Danmaku {
                id: id.clone(),
                room: room.into(),
                body: "666".into(),
            })
            .await;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.queue.recv())
                .await
                .expect("an answer within the wait")
                .expect("the session queue stays open");
            match frame.frame() {
                ServerFrame::Ack { id: got, seq, .. } if *got == id => return Ok(*seq),
                ServerFrame::Reject {
                    id: got,
                    code,
                    retry_after_ms,
                    ..
                } if *got == id => return Err((*code, *retry_after_ms)),
                _ => {}
            }
        }
    }
}

/// A region on a fresh embedded store whose rooms default to `slow_mode`, with a
/// per-user rate limit too generous to interfere.
async fn region(dir: &tempfile::TempDir, slow_mode: Duration) -> (ShardRegion, Arc<EmbeddedStore>) {
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store opens"));
    let mut settings = Settings::default();
    settings.live.slow_mode = slow_mode;
    settings.live.rate_per_user = 10_000;
    let region = ShardRegion::start(store.clone(), settings)
        .await
        .expect("region starts");
    (region, store)
}

#[tokio::test(start_paused = true)]
async fn the_room_rejects_early_danmaku_with_retry_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (region, _store) = region(&dir, 10 * SECOND).await;
    let mut fan = Client::open(&region, 1, "fan", Roles::default()).await;
    let mut other = Client::open(&region, 2, "other", Roles::default()).await;
    let payer = Roles::NONE.with(Role::Paid);
    let mut paid = Client::open(&region, 3, "payer", payer).await;
    // A second session of the fan shares the budget.
    let mut fan_again = Client::open(&region, 4, "fan", Roles::default()).await;

    assert_eq!(fan.danmaku("r").await, Ok(1));
    let limited = Err((ErrorCode::RateLimited, Some(10_000)));
    assert_eq!(fan.danmaku("r").await, limited);
    assert_eq!(fan_again.danmaku("r").await, limited);
    assert_eq!(
        other.danmaku("r").await,
        Ok(2),
        "another user is unaffected"
    );
    assert_eq!(fan.danmaku("elsewhere").await, Ok(1), "rooms are apart");
    for seq in 3..6 {
        assert_eq!(paid.danmaku("r").await, Ok(seq), "paid is exempt");
    }

    advance(4 * SECOND).await;
    assert_eq!(
        fan.danmaku("r").await,
        Err((ErrorCode::RateLimited, Some(6_000)))
    );
    advance(6 * SECOND - MS).await;
    assert_eq!(
        fan.danmaku("r").await,
        Err((ErrorCode::RateLimited, Some(1)))
    );
    advance(MS).await;
    assert_eq!(fan_again.danmaku("r").await, Ok(6));
}

#[tokio::test(start_paused = true)]
async fn operator_settings_override_the_default_and_load_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (region, store) = region(&dir, Duration::ZERO).await;
    // Stored before the room ever ran: the room reads it when it starts.
    let stored = RoomSettings {
        slow_mode_s: Some(20),
    };
    store
        .set_room_settings("stored", &stored)
        .await
        .expect("stored");
    let mut fan = Client::open(&region, 1, "fan", Roles::default()).await;
    assert_eq!(fan.danmaku("stored").await, Ok(1));
    assert_eq!(
        fan.danmaku("stored").await,
        Err((ErrorCode::RateLimited, Some(20_000)))
    );

    // Off by default elsewhere, until an operator turns it on.
    let room = ConvId::Live("r".into());
    assert_eq!(fan.danmaku("r").await, Ok(1));
    assert_eq!(fan.danmaku("r").await, Ok(2));
    region.tell_live_room(&room, LiveRoomMsg::SlowMode { seconds: Some(5) });
    assert_eq!(fan.danmaku("r").await, Ok(3));
    assert_eq!(
        fan.danmaku("r").await,
        Err((ErrorCode::RateLimited, Some(5_000)))
    );
    // A late load result does not undo the operator's setting.
    region.tell_live_room(&room, LiveRoomMsg::SettingsLoaded(RoomSettings::default()));
    assert_eq!(
        fan.danmaku("r").await,
        Err((ErrorCode::RateLimited, Some(5_000)))
    );
    // Explicitly off, then back to the configured default (off).
    region.tell_live_room(&room, LiveRoomMsg::SlowMode { seconds: Some(0) });
    assert_eq!(fan.danmaku("r").await, Ok(4));
    region.tell_live_room(&room, LiveRoomMsg::SlowMode { seconds: Some(5) });
    assert_eq!(
        fan.danmaku("r").await,
        Ok(5),
        "turned on again: a fresh start"
    );
    region.tell_live_room(&room, LiveRoomMsg::SlowMode { seconds: None });
    assert_eq!(fan.danmaku("r").await, Ok(6));

    // The operators' path: stored first, then told to the running room.
    let settings = super::set_slow_mode(&region, "r", Some(7))
        .await
        .expect("stored");
    assert_eq!(settings.slow_mode_s, Some(7));
    assert_eq!(store.room_settings("r").await.expect("read"), settings);
    assert_eq!(fan.danmaku("r").await, Ok(7));
    assert_eq!(
        fan.danmaku("r").await,
        Err((ErrorCode::RateLimited, Some(7_000)))
    );
}

/// How [`Flaky`] answers `room_settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SettingsReads {
    Answer,
    Fail,
    Hang,
}

/// The real store, except that reads of room settings fail or hang on demand.
struct Flaky {
    inner: Arc<EmbeddedStore>,
    reads: parking_lot::Mutex<SettingsReads>,
}

impl Flaky {
    fn set(&self, reads: SettingsReads) {
        *self.reads.lock() = reads;
    }
}

#[async_trait::async_trait]
impl MessageStore for Flaky {
    async fn append(
        &self,
        batch: chorus_store::AppendBatch,
    ) -> chorus_store::StoreResult<chorus_store::AppendOutcome> {
        self.inner.append(batch).await
    }
    async fn history(
        &self,
        conv: &str,
        query: chorus_store::HistoryQuery,
    ) -> chorus_store::StoreResult<chorus_store::HistorySlice> {
        self.inner.history(conv, query).await
    }
    async fn last_seq(&self, conv: &str) -> chorus_store::StoreResult<u64> {
        self.inner.last_seq(conv).await
    }
    async fn conversation_page(
        &self,
        user: &str,
        query: chorus_store::ListQuery,
    ) -> chorus_store::StoreResult<chorus_store::ListSlice> {
        self.inner.conversation_page(user, query).await
    }
    async fn unlink(&self, user: &str, conv: &str) -> chorus_store::StoreResult<()> {
        self.inner.unlink(user, conv).await
    }
    async fn set_read(&self, user: &str, conv: &str, seq: u64) -> chorus_store::StoreResult<u64> {
        self.inner.set_read(user, conv, seq).await
    }
    async fn read_seq(&self, user: &str, conv: &str) -> chorus_store::StoreResult<u64> {
        self.inner.read_seq(user, conv).await
    }
    async fn create_group(
        &self,
        group: &chorus_store::GroupRecord,
    ) -> chorus_store::StoreResult<bool> {
        self.inner.create_group(group).await
    }
    async fn group(
        &self,
        id: &str,
    ) -> chorus_store::StoreResult<Option<chorus_store::GroupRecord>> {
        self.inner.group(id).await
    }
    async fn update_group(
        &self,
        group: &chorus_store::GroupRecord,
        added: &[String],
        removed: &[String],
    ) -> chorus_store::StoreResult<()> {
        self.inner.update_group(group, added, removed).await
    }
    async fn find_dedup(
        &self,
        key: &chorus_store::DedupKey,
        now_ms: u64,
    ) -> chorus_store::StoreResult<Option<chorus_store::DedupHit>> {
        self.inner.find_dedup(key, now_ms).await
    }
    async fn allocate_seq_block(
        &self,
        conv: &str,
        size: u64,
    ) -> chorus_store::StoreResult<chorus_store::SeqBlock> {
        self.inner.allocate_seq_block(conv, size).await
    }
    async fn flush(&self) -> chorus_store::StoreResult<()> {
        self.inner.flush().await
    }
    async fn set_room_settings(
        &self,
        room: &str,
        settings: &RoomSettings,
    ) -> chorus_store::StoreResult<()> {
        self.inner.set_room_settings(room, settings).await
    }
    async fn room_settings(&self, room: &str) -> chorus_store::StoreResult<RoomSettings> {
        let reads = *self.reads.lock();
        match reads {
            SettingsReads::Answer => self.inner.room_settings(room).await,
            SettingsReads::Fail => Err(chorus_store::StoreError::Unavailable("down".into())),
            SettingsReads::Hang => std::future::pending().await,
        }
    }
    async fn set_last_seen(&self, user: &str, at_ms: u64) -> chorus_store::StoreResult<()> {
        self.inner.set_last_seen(user, at_ms).await
    }
    async fn last_seen(&self, user: &str) -> chorus_store::StoreResult<Option<u64>> {
        self.inner.last_seen(user).await
    }
    async fn count_groups(&self, user: &str, up_to: u64) -> chorus_store::StoreResult<u64> {
        self.inner.count_groups(user, up_to).await
    }
    async fn append_load_samples(
        &self,
        member: &str,
        samples: &[chorus_store::LoadRecord],
        keep_ms: u64,
        now_ms: u64,
    ) -> chorus_store::StoreResult<()> {
        self.inner
            .append_load_samples(member, samples, keep_ms, now_ms)
            .await
    }
    async fn load_members(&self, now_ms: u64) -> chorus_store::StoreResult<Vec<String>> {
        self.inner.load_members(now_ms).await
    }
    async fn load_history(
        &self,
        member: &str,
        after_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> chorus_store::StoreResult<Vec<chorus_store::LoadRecord>> {
        self.inner
            .load_history(member, after_ms, limit, now_ms)
            .await
    }
    async fn probe(&self) -> chorus_store::StoreResult<()> {
        self.inner.probe().await
    }
}

/// A room whose settings cannot be read starts on the configured default, and
/// takes the stored setting once a retry reads it.
#[tokio::test(start_paused = true)]
async fn a_room_that_cannot_load_its_settings_uses_the_default_until_a_retry_succeeds() {
    for outage in [SettingsReads::Fail, SettingsReads::Hang] {
        let dir = tempfile::tempdir().expect("temp dir");
        let inner = Arc::new(EmbeddedStore::open(dir.path()).expect("store opens"));
        let store = Arc::new(Flaky {
            inner,
            reads: parking_lot::Mutex::new(outage),
        });
        let mut settings = Settings::default();
        settings.live.slow_mode = 3 * SECOND;
        settings.live.rate_per_user = 10_000;
        let region = ShardRegion::start(store.clone(), settings)
            .await
            .expect("region starts");
        let stored = RoomSettings {
            slow_mode_s: Some(0),
        };
        store.set_room_settings("r", &stored).await.expect("stored");
        let mut fan = Client::open(&region, 1, "fan", Roles::default()).await;

        assert_eq!(fan.danmaku("r").await, Ok(1), "{outage:?}");
        assert_eq!(
            fan.danmaku("r").await,
            Err((ErrorCode::RateLimited, Some(3_000))),
            "{outage:?}: the configured default holds meanwhile"
        );
        // Retries back off (1 s, 2 s, ...) while reads keep failing. `sleep` on
        // the paused clock runs every timer due on the way, in order.
        tokio::time::sleep(SECOND).await;
        assert_eq!(
            fan.danmaku("r").await,
            Err((ErrorCode::RateLimited, Some(2_000))),
            "{outage:?}"
        );
        store.set(SettingsReads::Answer);
        // The retry after the next wait reads the stored setting: off.
        tokio::time::sleep(5 * SECOND).await;
        assert_eq!(fan.danmaku("r").await, Ok(2), "{outage:?}");
        assert_eq!(fan.danmaku("r").await, Ok(3), "{outage:?}");
    }
}
