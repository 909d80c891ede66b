//! `chorusctl status`: one row per member, each from its own `/admin/status`.

use chorus_admin_api::Endpoint;
use chorus_admin_api::cluster::{MemberInfo, StatusResponse};
use futures_util::future::join_all;
use serde_json::json;

use super::Outcome;
use super::http::CtlError;
use super::render::{NONE, or_none, yes_no};
use super::table::Table;
use super::view::Ctl;

/// One line of `chorusctl status`: a member and its own `/admin/status`, or why
/// that could not be had.
#[derive(Debug, Clone)]
pub(crate) struct StatusRow {
    pub(crate) member: MemberInfo,
    /// `Ok`: the node's answer. `Err`: why there is none (not alive, no admin
    /// address, did not answer).
    pub(crate) status: Result<StatusResponse, String>,
}

impl Ctl {
    pub(super) async fn status(&self) -> Result<Outcome, CtlError> {
        let view = self.view().await?;
        let path = Endpoint::Status.route().path;
        let rows: Vec<StatusRow> = join_all(view.members.iter().map(|member| async move {
            let status = match (member.alive, self.admin_of(member)) {
                (false, _) => Err("not alive".to_string()),
                (true, None) => Err("advertises no admin address".to_string()),
                (true, Some(addr)) => self.client.get(addr, path).await.map_err(|e| e.to_string()),
            };
            StatusRow {
                member: member.clone(),
                status,
            }
        }))
        .await;
        let notes = rows
            .iter()
            .filter(|r| r.member.alive)
            .filter_map(|r| {
                r.status
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", r.member.node_id))
            })
            .collect();
        let mut outcome = if self.json {
            let nodes: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "node_id": r.member.node_id,
                        "member": r.member,
                        "status": r.status.as_ref().ok(),
                        "error": r.status.as_ref().err(),
                    })
                })
                .collect();
            super::render::json(&json!({ "node": view.node, "nodes": nodes }))
        } else {
            Outcome::text(status_table(&rows))
        };
        outcome.notes = notes;
        Ok(outcome)
    }
}

/// `chorusctl status`.
pub(crate) fn status_table(rows: &[StatusRow]) -> String {
    let mut table = Table::new(&[
        "NODE", "STATUS", "ALIVE", "SESSIONS", "USERS", "CONVS", "ROOMS", "TCP", "WS",
    ]);
    for row in rows {
        let m = &row.member;
        let (status, counts) = match &row.status {
            Ok(s) => (
                if s.status.is_empty() {
                    or_none(&m.status)
                } else {
                    s.status.clone()
                },
                [
                    s.sessions.to_string(),
                    s.entities.user.to_string(),
                    s.entities.conversation.to_string(),
                    s.entities.live_room.to_string(),
                ],
            ),
            Err(_) => (
                or_none(&m.status),
                std::array::from_fn(|_| NONE.to_string()),
            ),
        };
        // The advertised address, else the one the node says it listens on.
        let listen = |advertised: &str, own: fn(&StatusResponse) -> &str| {
            if !advertised.is_empty() {
                return advertised.to_string();
            }
            row.status
                .as_ref()
                .map_or_else(|_| NONE.to_string(), |s| or_none(own(s)))
        };
        let [sessions, users, convs, rooms] = counts;
        table.row(vec![
            m.node_id.clone(),
            status,
            yes_no(m.alive).to_string(),
            sessions,
            users,
            convs,
            rooms,
            listen(&m.tcp, |s| &s.listen.tcp),
            listen(&m.ws, |s| &s.listen.ws),
        ]);
    }
    table.render()
}
