//! `chorusctl members`: the membership as the node asked sees it.

use chorus_admin_api::cluster::MemberInfo;

use super::Outcome;
use super::http::CtlError;
use super::render::{NONE, json, or_none, yes_no};
use super::table::Table;
use super::view::{Ctl, sorted};

impl Ctl {
    pub(super) async fn members(&self) -> Result<Outcome, CtlError> {
        let answer = self.members_answer().await?;
        if self.json {
            return Ok(json(&answer));
        }
        Ok(Outcome::text(format!(
            "members as {} sees them\n{}",
            or_none(&answer.node),
            members_table(&sorted(answer.members))
        )))
    }
}

/// `chorusctl members`.
pub(crate) fn members_table(members: &[MemberInfo]) -> String {
    let mut table = Table::new(&[
        "NODE",
        "STATUS",
        "ALIVE",
        "CONNECTED",
        "LOAD",
        "TCP",
        "WS",
        "ADMIN",
        "CLUSTER",
    ]);
    for m in members {
        let connected = if m.this { "self" } else { yes_no(m.connected) };
        table.row(vec![
            m.node_id.clone(),
            or_none(&m.status),
            yes_no(m.alive).to_string(),
            connected.to_string(),
            m.load.to_string(),
            or_none(&m.tcp),
            or_none(&m.ws),
            or_none(&m.admin),
            m.cluster
                .as_deref()
                .map_or_else(|| NONE.to_string(), or_none),
        ]);
    }
    table.render()
}
