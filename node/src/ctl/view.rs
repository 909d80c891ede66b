//! What every command shares: the client, the node asked first, and the cluster
//! as that node sees it (`/admin/members`), with how to reach each member.

use chorus_admin_api::Endpoint;
use chorus_admin_api::cluster::{MemberInfo, MembersResponse};

use super::http::{AdminClient, CtlError};

/// One command's context.
pub(crate) struct Ctl {
    pub(crate) client: AdminClient,
    /// `--admin`: the node asked first, and how this node reaches it (its
    /// advertised address may differ, e.g. behind a port forward).
    pub(crate) admin: String,
    /// `--json`: print the answers, not text.
    pub(crate) json: bool,
}

/// The cluster as the node at `--admin` sees it.
pub(crate) struct View {
    /// The id of the node that answered.
    pub(crate) node: String,
    /// Sorted by node id.
    pub(crate) members: Vec<MemberInfo>,
}

impl Ctl {
    /// `/admin/members` of the node asked first.
    pub(crate) async fn members_answer(&self) -> Result<MembersResponse, CtlError> {
        self.client
            .get(&self.admin, Endpoint::Members.route().path)
            .await
    }

    /// The cluster as the node asked first sees it.
    pub(crate) async fn view(&self) -> Result<View, CtlError> {
        let answer = self.members_answer().await?;
        Ok(View {
            node: answer.node,
            members: sorted(answer.members),
        })
    }

    /// How to reach `member`'s admin API: `--admin` for the node that answered,
    /// else its advertised address (`None` if it has none).
    pub(crate) fn admin_of<'a>(&'a self, member: &'a MemberInfo) -> Option<&'a str> {
        if member.this {
            Some(&self.admin)
        } else {
            Some(member.admin.as_str()).filter(|a| !a.is_empty())
        }
    }
}

/// `members` sorted by node id.
pub(crate) fn sorted(mut members: Vec<MemberInfo>) -> Vec<MemberInfo> {
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    members
}
