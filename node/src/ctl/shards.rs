//! `chorusctl shards`: how many shards each serving member owns.

use chorus_admin_api::Endpoint;
use chorus_admin_api::cluster::ShardsResponse;

use super::Outcome;
use super::http::CtlError;
use super::render::{NONE, json, or_none, yes_no};
use super::table::Table;
use super::view::Ctl;

impl Ctl {
    pub(super) async fn shards(&self) -> Result<Outcome, CtlError> {
        let answer: ShardsResponse = self
            .client
            .get(&self.admin, Endpoint::Shards.route().path)
            .await?;
        Ok(if self.json {
            json(&answer)
        } else {
            Outcome::text(shards_table(&answer))
        })
    }
}

/// `chorusctl shards`: one row per owner, serving members first in the order the
/// node lists them, with the number of shards and the share.
pub(crate) fn shards_table(answer: &ShardsResponse) -> String {
    let total = u64::from(answer.shards);
    let serving = &answer.serving;
    let mut table = Table::new(&["NODE", "SERVING", "SHARDS", "SHARE"]);
    let mut listed: Vec<&str> = serving.iter().map(String::as_str).collect();
    listed.extend(
        answer
            .owners
            .keys()
            .map(String::as_str)
            .filter(|n| !serving.iter().any(|s| s == n)),
    );
    let mut assigned = 0;
    for node in listed {
        let count = answer.owners.get(node).map_or(0, Vec::len);
        assigned += count;
        table.row(vec![
            node.to_string(),
            yes_no(serving.iter().any(|s| s == node)).to_string(),
            count.to_string(),
            share(count, total),
        ]);
    }
    let mut out = format!(
        "{total} shards over {} serving members (as {} sees it)\n",
        serving.len(),
        or_none(&answer.node)
    );
    out.push_str(&table.render());
    if (assigned as u64) < total {
        out.push_str(&format!(
            "{} shards have no owner\n",
            total - assigned as u64
        ));
    }
    out
}

fn share(count: usize, total: u64) -> String {
    if total == 0 {
        return NONE.to_string();
    }
    format!("{:.1}%", count as f64 * 100.0 / total as f64)
}
