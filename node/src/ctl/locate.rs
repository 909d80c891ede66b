//! `chorusctl where KEY`: the shard and owner of an entity, and the nodes it
//! runs on (each alive member is asked whether it runs it).

use chorus_admin_api::Endpoint;
use chorus_admin_api::cluster::WhereResponse;
use futures_util::future::join_all;
use serde_json::{Value, json};

use super::Outcome;
use super::http::{CtlError, encode_segment};
use super::table::fields;
use super::view::Ctl;

/// What `chorusctl where` found out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WhereReport {
    /// The asked node's answer.
    pub(crate) answer: WhereResponse,
    /// Nodes that said `running_here: true`, sorted.
    pub(crate) running_on: Vec<String>,
    /// Alive members that could not say, sorted.
    pub(crate) unreachable: Vec<String>,
}

impl Ctl {
    pub(super) async fn where_is(&self, key: &str) -> Result<Outcome, CtlError> {
        let path = Endpoint::Where.route().with_param(&encode_segment(key));
        let answer: WhereResponse = self.client.get(&self.admin, &path).await?;
        let view = self.view().await?;
        let asks = view.members.iter().filter(|m| m.alive).map(|member| {
            let path = &path;
            let answer = &answer;
            async move {
                let running = if member.this {
                    Ok(answer.running_here)
                } else if let Some(addr) = self.admin_of(member) {
                    self.client
                        .get::<WhereResponse>(addr, path)
                        .await
                        .map(|a| a.running_here)
                        .map_err(|e| e.to_string())
                } else {
                    Err("advertises no admin address".to_string())
                };
                (member.node_id.clone(), running)
            }
        });
        let mut report = WhereReport {
            answer: answer.clone(),
            running_on: Vec::new(),
            unreachable: Vec::new(),
        };
        let mut notes = Vec::new();
        for (node, running) in join_all(asks).await {
            match running {
                Ok(true) => report.running_on.push(node),
                Ok(false) => {}
                Err(e) => {
                    notes.push(format!("{node}: {e}"));
                    report.unreachable.push(node);
                }
            }
        }
        let mut outcome = if self.json {
            super::render::json(&report.to_json())
        } else {
            Outcome::text(report.to_text())
        };
        outcome.notes = notes;
        Ok(outcome)
    }
}

impl WhereReport {
    /// The `--json` document.
    pub(crate) fn to_json(&self) -> Value {
        let mut doc = json!({
            "key": self.answer.key,
            "kind": self.answer.kind,
            "shard": self.answer.shard,
            "owner": self.answer.owner,
            "running_on": self.running_on,
        });
        if !self.unreachable.is_empty() {
            doc["unreachable"] = self.unreachable.clone().into();
        }
        doc
    }

    /// The text for a person.
    pub(crate) fn to_text(&self) -> String {
        let running_on = if self.running_on.is_empty() {
            "nowhere (not started, or stopped when idle)".to_string()
        } else {
            self.running_on.join(", ")
        };
        let mut pairs = vec![
            ("key", self.answer.key.clone()),
            ("kind", self.answer.kind.clone()),
            ("shard", self.answer.shard.to_string()),
            ("owner", self.answer.owner.clone()),
            ("running on", running_on),
        ];
        if !self.unreachable.is_empty() {
            pairs.push(("not answering", self.unreachable.join(", ")));
        }
        fields(&pairs)
    }
}
