//! Membership of a Conversation: who may use it (the two users of a dm, the
//! members of a group), and the group operations — create, add, remove, leave,
//! info — with the bound on the groups one user belongs to. The entity
//! publishes every new state of its group to the node's access cache (see
//! `access`).

use chorus_store::GroupRecord;
use chorus_wire::{ConvId, ErrorCode, ServerFrame};

use super::access::GroupAccess;
use super::{ConversationState, GroupState, Request, error};

/// Group counts of a create or an add running at once.
const GROUP_COUNTS_IN_FLIGHT: usize = 16;

/// A member and how many groups the store counted for them.
type GroupCount = (String, chorus_store::StoreResult<u64>);

fn group_frame(reference: &str, g: &GroupRecord) -> ServerFrame {
    ServerFrame::Group {
        reference: reference.to_string(),
        id: g.id.clone(),
        name: g.name.clone(),
        owner: g.owner.clone(),
        members: g.members.clone(),
    }
}

impl ConversationState {
    /// Loads the group record once.
    pub(super) async fn group(&mut self) -> Result<Option<&GroupRecord>, String> {
        if let (GroupState::Unknown, ConvId::Group(id)) = (&self.group, &self.conv) {
            self.group = match self.store.group(id).await {
                Ok(Some(g)) => GroupState::Present(g),
                Ok(None) => GroupState::Absent,
                Err(e) => return Err(e.to_string()),
            };
            self.publish_group();
        }
        Ok(match &self.group {
            GroupState::Present(g) => Some(g),
            _ => None,
        })
    }

    /// Whether `user` may use this conversation: `Err((code, message))` if not.
    pub(super) async fn check_access(&mut self, user: &str) -> Result<(), (ErrorCode, String)> {
        match &self.conv {
            ConvId::Dm(..) => {
                if self.conv.is_dm_party(user) {
                    Ok(())
                } else {
                    Err((
                        ErrorCode::Forbidden,
                        "not a party of this conversation".into(),
                    ))
                }
            }
            ConvId::Group(_) => match self.group().await {
                Err(e) => Err((ErrorCode::Internal, format!("store: {e}"))),
                Ok(None) => Err((ErrorCode::NotFound, "no such group".into())),
                Ok(Some(g)) if g.members.binary_search_by(|m| m.as_str().cmp(user)).is_ok() => {
                    Ok(())
                }
                Ok(Some(_)) => Err((ErrorCode::Forbidden, "not a member of this group".into())),
            },
            ConvId::Live(_) => Err((ErrorCode::Invalid, "live rooms have no history".into())),
        }
    }

    pub(super) fn members(&self) -> Vec<String> {
        match (&self.conv, &self.group) {
            (ConvId::Dm(a, b), _) if a == b => vec![a.clone()],
            (ConvId::Dm(a, b), _) => vec![a.clone(), b.clone()],
            (_, GroupState::Present(g)) => g.members.clone(),
            _ => Vec::new(),
        }
    }

    /// Tells the region's access cache what this group is now (this entity is
    /// the one that changes it, see `access`).
    pub(super) fn publish_group(&self) {
        let ConvId::Group(id) = &self.conv else {
            return;
        };
        let access = match &self.group {
            GroupState::Unknown => return,
            GroupState::Absent => None,
            GroupState::Present(g) => Some(GroupAccess::of(g)),
        };
        self.region.group_cache().put(id, access);
    }

    /// `Err((code, message))` when one of `joining` may join no more groups.
    async fn check_group_limit(&self, joining: &[String]) -> Result<(), (ErrorCode, String)> {
        match self.at_group_limit(joining).await {
            Ok(None) => Ok(()),
            Ok(Some(user)) => {
                metrics::counter!("chorus_group_limit_refusals_total").increment(1);
                let limit = self.region.settings().max_groups_per_user;
                Err((
                    ErrorCode::Invalid,
                    format!("{user} is already in {limit} groups, the most one user may join"),
                ))
            }
            Err(e) => Err((ErrorCode::Internal, e)),
        }
    }

    /// The first (in id order) of `users` who is in `max_groups_per_user`
    /// groups already, if any: joining one more would take them past the bound.
    async fn at_group_limit(&self, users: &[String]) -> Result<Option<String>, String> {
        let limit = self.region.settings().max_groups_per_user as u64;
        let mut checks = tokio::task::JoinSet::new();
        let mut full: Vec<String> = Vec::new();
        let mut collect = |joined: Option<Result<GroupCount, tokio::task::JoinError>>| {
            match joined {
                Some(Ok((user, Ok(n)))) if n >= limit => full.push(user),
                Some(Ok((_, Ok(_)))) | None => {}
                Some(Ok((_, Err(e)))) => return Err(format!("store: {e}")),
                Some(Err(e)) => return Err(format!("counting groups: {e}")),
            }
            Ok(())
        };
        for user in users {
            // A few counts at a time: a create with many members stays quick
            // without flooding the store.
            if checks.len() >= GROUP_COUNTS_IN_FLIGHT {
                collect(checks.join_next().await)?;
            }
            let store = self.store.clone();
            let user = user.clone();
            checks.spawn(async move {
                let n = store.count_groups(&user, limit).await;
                (user, n)
            });
        }
        while !checks.is_empty() {
            collect(checks.join_next().await)?;
        }
        full.sort();
        Ok(full.into_iter().next())
    }

    pub(super) async fn on_group_create(
        &mut self,
        req: Request,
        name: String,
        members: Vec<String>,
    ) {
        let ConvId::Group(id) = &self.conv else {
            return error(&req, ErrorCode::Invalid, "not a group");
        };
        let id = id.clone();
        match self.group().await {
            Err(e) => return error(&req, ErrorCode::Internal, format!("store: {e}")),
            Ok(Some(_)) => {
                return error(
                    &req,
                    ErrorCode::Invalid,
                    format!("group id {id:?} is taken"),
                );
            }
            Ok(None) => {}
        }
        let mut all = members;
        all.push(req.user.clone());
        all.sort();
        all.dedup();
        if all.len() > self.region.settings().max_group_members {
            return error(&req, ErrorCode::Invalid, "too many members");
        }
        if let Err(answer) = self.check_group_limit(&all).await {
            return error(&req, answer.0, answer.1);
        }
        let record = GroupRecord {
            id: id.clone(),
            name,
            owner: req.user.clone(),
            members: all,
        };
        match self.store.create_group(&record).await {
            Ok(true) => {
                req.reply.send(group_frame(&req.reference, &record));
                self.group = GroupState::Present(record);
                self.publish_group();
            }
            Ok(false) => {
                self.group = GroupState::Unknown;
                error(
                    &req,
                    ErrorCode::Invalid,
                    format!("group id {id:?} is taken"),
                );
            }
            Err(e) => error(&req, ErrorCode::Internal, format!("store: {e}")),
        }
    }

    pub(super) async fn on_group_change(&mut self, req: Request, members: Vec<String>, add: bool) {
        let max = self.region.settings().max_group_members;
        let group = match self.group().await {
            Err(e) => return error(&req, ErrorCode::Internal, format!("store: {e}")),
            Ok(None) => return error(&req, ErrorCode::NotFound, "no such group"),
            Ok(Some(g)) => g.clone(),
        };
        if group.owner != req.user {
            return error(
                &req,
                ErrorCode::Forbidden,
                "only the owner may change members",
            );
        }
        let mut next = group.clone();
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for m in members {
            let present = next.members.binary_search(&m);
            match (add, present) {
                (true, Err(pos)) => {
                    next.members.insert(pos, m.clone());
                    added.push(m);
                }
                (false, Ok(pos)) => {
                    if m == next.owner {
                        return error(
                            &req,
                            ErrorCode::Invalid,
                            "the owner cannot be removed; use group_leave",
                        );
                    }
                    next.members.remove(pos);
                    removed.push(m);
                }
                _ => {}
            }
        }
        if next.members.len() > max {
            return error(&req, ErrorCode::Invalid, "too many members");
        }
        if let Err(answer) = self.check_group_limit(&added).await {
            return error(&req, answer.0, answer.1);
        }
        self.save_group(&req, next, &added, &removed).await;
    }

    pub(super) async fn on_group_leave(&mut self, req: Request) {
        let group = match self.group().await {
            Err(e) => return error(&req, ErrorCode::Internal, format!("store: {e}")),
            Ok(None) => return error(&req, ErrorCode::NotFound, "no such group"),
            Ok(Some(g)) => g.clone(),
        };
        let Ok(pos) = group.members.binary_search(&req.user) else {
            return error(&req, ErrorCode::Forbidden, "not a member of this group");
        };
        let mut next = group;
        next.members.remove(pos);
        if next.owner == req.user
            && let Some(heir) = next.members.first()
        {
            // Ownership passes to the first remaining member in id order.
            next.owner = heir.clone();
        }
        let removed = vec![req.user.clone()];
        if let Err(e) = self.store.update_group(&next, &[], &removed).await {
            return error(&req, ErrorCode::Internal, format!("store: {e}"));
        }
        self.group = GroupState::Present(next);
        self.publish_group();
        req.reply.send(ServerFrame::Ok {
            reference: req.reference,
        });
    }

    async fn save_group(
        &mut self,
        req: &Request,
        next: GroupRecord,
        added: &[String],
        removed: &[String],
    ) {
        if (!added.is_empty() || !removed.is_empty())
            && let Err(e) = self.store.update_group(&next, added, removed).await
        {
            return error(req, ErrorCode::Internal, format!("store: {e}"));
        }
        req.reply.send(group_frame(&req.reference, &next));
        self.group = GroupState::Present(next);
        self.publish_group();
    }

    pub(super) async fn on_group_info(&mut self, req: Request) {
        if let Err((code, message)) = self.check_access(&req.user).await {
            return error(&req, code, message);
        }
        if let GroupState::Present(g) = &self.group {
            req.reply.send(group_frame(&req.reference, g));
        }
    }
}
