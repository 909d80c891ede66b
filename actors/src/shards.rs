//! The entity kinds this node serves, and what spans all of them.
//!
//! `region` is the generic machinery (placement, routing, registries,
//! supervision) and names no kind; each kind (`user`, `conversation`, `live`)
//! builds on it. This module sits above both: it hands the region its kinds
//! when it starts, and moves every kind's entities when the placement changes.
//! Nothing below imports it.

use std::sync::Arc;

use chorus_store::MessageStore;

use crate::conversation::{Conversation, ConversationMsg};
use crate::live::{LiveRoom, LiveRoomMsg};
use crate::moderation::Moderation;
use crate::placement::Table;
use crate::region::entity::KindSlot;
use crate::region::{Lifecycle, ShardRegion};
use crate::remote::SessionRef;
use crate::settings::Settings;
use crate::user::{Attached, User, UserMsg};

impl ShardRegion {
    /// Starts the region and its entity supervisor.
    pub async fn start(
        store: Arc<dyn MessageStore>,
        settings: Settings,
    ) -> Result<Self, ractor::SpawnErr> {
        Self::start_with(store, settings, Arc::new(Moderation::disabled())).await
    }

    /// Starts the region with a word filter applied to `send` and `danmaku`.
    pub async fn start_with(
        store: Arc<dyn MessageStore>,
        settings: Settings,
        moderation: Arc<Moderation>,
    ) -> Result<Self, ractor::SpawnErr> {
        let kinds = [
            KindSlot::of::<User>(&settings),
            KindSlot::of::<Conversation>(&settings),
            KindSlot::of::<LiveRoom>(&settings),
        ];
        Self::start_serving(store, settings, moderation, kinds).await
    }

    /// After the placement changed from `previous`: hands off the entities this
    /// node no longer owns (each finishes what it accepted, then stops; the next
    /// message for its key goes to the new owner, which restarts it from the
    /// store), and re-attaches this node's sessions whose User moved (and
    /// their presence watches).
    pub fn rebalance(&self, previous: &Table) {
        let placement = self.placement();
        // First: conversations gained from another node wait for it to settle.
        self.fence_gained_shards(previous);
        self.group_cache()
            .drop_where(|gid| !placement.is_local(&format!("group:{gid}")));
        let users = self
            .registry::<User>()
            .remove_where(|u| !placement.is_local(&format!("user:{u}")));
        for (_, user) in &users {
            let _ = user.send_message(UserMsg::Lifecycle(Lifecycle::hand_off()));
        }
        let convs = self
            .registry::<Conversation>()
            .remove_where(|c| !placement.is_local(c));
        for (key, conv) in &convs {
            // Gates of the key on this node wait for it, should the shard come
            // back before it stopped.
            self.conversation_retiring(key, conv.get_id());
            let _ = conv.send_message(ConversationMsg::Lifecycle(Lifecycle::hand_off()));
        }
        let rooms = self
            .registry::<LiveRoom>()
            .remove_where(|r| !placement.is_local(r));
        for (_, room) in &rooms {
            let _ = room.send_message(LiveRoomMsg::Lifecycle(Lifecycle::hand_off()));
        }
        let mut moved = 0usize;
        for session in self.sessions().all() {
            let key = format!("user:{}", session.user());
            let before = previous.owner_of_shard(placement.shard_of(&key)).cloned();
            if before != placement.owner(&key) {
                moved += 1;
                let user = session.user().to_string();
                self.tell_user(
                    &user,
                    UserMsg::Attach(SessionRef::Local(session), Attached::Nobody),
                );
            }
        }
        // Watchers of a User that moved watch again, at its new owner.
        let mut rewatched = 0usize;
        for (user, watchers) in self.sessions().watches() {
            let key = format!("user:{user}");
            let before = previous.owner_of_shard(placement.shard_of(&key)).cloned();
            if before != placement.owner(&key) {
                for watcher in watchers {
                    rewatched += 1;
                    let session = SessionRef::Local(watcher);
                    self.tell_user(
                        &user,
                        UserMsg::Watch {
                            session,
                            renew: true,
                        },
                    );
                }
            }
        }
        tracing::info!(
            users = users.len(),
            conversations = convs.len(),
            live_rooms = rooms.len(),
            sessions_moved = moved,
            watches_moved = rewatched,
            "placement changed: handed off entities"
        );
    }
}
