//! The admin API's answers as operator text.
//!
//! Every reader here is lenient: a field that is missing, `null` or of another
//! type prints as `-`, and a node that answers a newer shape still gets a table.
//! Only the field a command cannot work without (`members`, for instance) is
//! required, and its absence is an error, not a panic.

use std::collections::BTreeMap;

use serde_json::Value;

use super::table::{Table, fields};

/// What a cell shows for a value that is absent or unknown.
pub(crate) const NONE: &str = "-";

/// One member of `/admin/members`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub(crate) node_id: String,
    /// The incarnation; `None` if not given. A node restarted under the same id
    /// has a new one.
    pub(crate) generation: Option<u64>,
    pub(crate) status: String,
    pub(crate) alive: bool,
    /// Whether the answering node has a transport session to it (`None`: not said).
    pub(crate) connected: Option<bool>,
    /// Whether this member is the node that answered.
    pub(crate) is_self: bool,
    pub(crate) tcp: String,
    pub(crate) ws: String,
    pub(crate) admin: String,
    pub(crate) cluster: String,
    pub(crate) load: Option<u64>,
    /// The member as the node sent it, for `--json`.
    pub(crate) raw: Value,
}

impl Member {
    /// Reads one entry of `members`; `None` if it has no `node_id`.
    pub(crate) fn from_json(value: &Value) -> Option<Member> {
        let node_id = value.get("node_id")?.as_str()?.to_string();
        let string = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(Member {
            node_id,
            generation: value.get("generation").and_then(Value::as_u64),
            status: string("status"),
            alive: value.get("alive").and_then(Value::as_bool).unwrap_or(false),
            connected: value.get("connected").and_then(Value::as_bool),
            is_self: value.get("self").and_then(Value::as_bool).unwrap_or(false),
            tcp: string("tcp"),
            ws: string("ws"),
            admin: string("admin"),
            cluster: string("cluster"),
            load: value.get("load").and_then(Value::as_u64),
            raw: value.clone(),
        })
    }
}

/// The members of a `/admin/members` answer, sorted by node id; entries without
/// a node id are skipped. `Err` says what is missing.
pub(crate) fn members_of(answer: &Value) -> Result<Vec<Member>, String> {
    let list = answer
        .get("members")
        .and_then(Value::as_array)
        .ok_or("the answer has no \"members\" list")?;
    let mut members: Vec<Member> = list.iter().filter_map(Member::from_json).collect();
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    Ok(members)
}

/// `value` as a cell: strings as they are, numbers and booleans printed, anything
/// else (absent, null, empty, a list) as [`NONE`].
pub(crate) fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => yes_no(*b).to_string(),
        _ => NONE.to_string(),
    }
}

pub(crate) fn or_none(text: &str) -> String {
    if text.is_empty() {
        NONE.to_string()
    } else {
        text.to_string()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `chorusctl members`.
pub(crate) fn members_table(members: &[Member]) -> String {
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
        let connected = match (m.is_self, m.connected) {
            (true, _) => "self".to_string(),
            (false, Some(c)) => yes_no(c).to_string(),
            (false, None) => NONE.to_string(),
        };
        table.row(vec![
            m.node_id.clone(),
            or_none(&m.status),
            yes_no(m.alive).to_string(),
            connected,
            m.load.map_or_else(|| NONE.to_string(), |l| l.to_string()),
            or_none(&m.tcp),
            or_none(&m.ws),
            or_none(&m.admin),
            or_none(&m.cluster),
        ]);
    }
    table.render()
}

/// One line of `chorusctl status`: a member and its own `/admin/status`, or why
/// that could not be had.
#[derive(Debug, Clone)]
pub(crate) struct StatusRow {
    pub(crate) member: Member,
    /// `Ok`: the node's answer. `Err`: why there is none (not alive, no admin
    /// address, did not answer).
    pub(crate) status: Result<Value, String>,
}

/// `chorusctl status`.
pub(crate) fn status_table(rows: &[StatusRow]) -> String {
    let mut table = Table::new(&[
        "NODE", "STATUS", "ALIVE", "SESSIONS", "USERS", "CONVS", "ROOMS", "TCP", "WS",
    ]);
    for row in rows {
        let m = &row.member;
        let (status, counts) = match &row.status {
            Ok(s) => {
                let entities = s.get("entities");
                let entity = |kind: &str| cell(entities.and_then(|e| e.get(kind)));
                (
                    s.get("status")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map_or_else(|| or_none(&m.status), str::to_string),
                    [
                        cell(s.get("sessions")),
                        entity("user"),
                        entity("conversation"),
                        entity("live_room"),
                    ],
                )
            }
            Err(_) => (
                or_none(&m.status),
                std::array::from_fn(|_| NONE.to_string()),
            ),
        };
        let listen = |key: &str, advertised: &str| {
            if !advertised.is_empty() {
                return advertised.to_string();
            }
            let listen = row.status.as_ref().ok().and_then(|s| s.get("listen"));
            cell(listen.and_then(|l| l.get(key)))
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
            listen("tcp", &m.tcp),
            listen("ws", &m.ws),
        ]);
    }
    table.render()
}

/// `chorusctl shards`: one row per owner, serving members first in the order the
/// node lists them, with the number of shards and the share.
pub(crate) fn shards_table(answer: &Value) -> Result<String, String> {
    let total = answer
        .get("shards")
        .and_then(Value::as_u64)
        .ok_or("the answer has no \"shards\" count")?;
    let owners: BTreeMap<String, usize> = answer
        .get("owners")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(node, shards)| (node.clone(), shards.as_array().map_or(0, Vec::len)))
                .collect()
        })
        .unwrap_or_default();
    let serving: Vec<String> = answer
        .get("serving")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    let mut table = Table::new(&["NODE", "SERVING", "SHARDS", "SHARE"]);
    let mut listed: Vec<&str> = serving.iter().map(String::as_str).collect();
    listed.extend(
        owners
            .keys()
            .map(String::as_str)
            .filter(|n| !serving.iter().any(|s| s == n)),
    );
    let mut assigned = 0;
    for node in listed {
        let count = owners.get(node).copied().unwrap_or(0);
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
        cell(answer.get("node"))
    );
    out.push_str(&table.render());
    if (assigned as u64) < total {
        out.push_str(&format!(
            "{} shards have no owner\n",
            total - assigned as u64
        ));
    }
    Ok(out)
}

fn share(count: usize, total: u64) -> String {
    if total == 0 {
        return NONE.to_string();
    }
    format!("{:.1}%", count as f64 * 100.0 / total as f64)
}

/// What `chorusctl where` found out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WhereReport {
    /// The asked node's answer (`key`, `kind`, `shard`, `owner`, ...).
    pub(crate) answer: Value,
    /// Nodes that said `running_here: true`, sorted.
    pub(crate) running_on: Vec<String>,
    /// Alive members that could not say, sorted.
    pub(crate) unreachable: Vec<String>,
}

impl WhereReport {
    /// The `--json` document.
    pub(crate) fn to_json(&self) -> Value {
        let mut doc = serde_json::json!({
            "key": self.answer.get("key").cloned().unwrap_or(Value::Null),
            "kind": self.answer.get("kind").cloned().unwrap_or(Value::Null),
            "shard": self.answer.get("shard").cloned().unwrap_or(Value::Null),
            "owner": self.answer.get("owner").cloned().unwrap_or(Value::Null),
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
            ("key", cell(self.answer.get("key"))),
            ("kind", cell(self.answer.get("kind"))),
            ("shard", cell(self.answer.get("shard"))),
            ("owner", cell(self.answer.get("owner"))),
            ("running on", running_on),
        ];
        if !self.unreachable.is_empty() {
            pairs.push(("not answering", self.unreachable.join(", ")));
        }
        fields(&pairs)
    }
}

/// `chorusctl kick`.
pub(crate) fn kick_text(user: &str, answer: &Value) -> String {
    match answer.get("closed").and_then(Value::as_u64) {
        Some(1) => format!("{user}: 1 session closed\n"),
        Some(n) => format!("{user}: {n} sessions closed\n"),
        None => format!("{user}: kicked\n"),
    }
}

/// `chorusctl token issue`: the token alone on stdout, so that
/// `TOKEN=$(chorusctl token issue alice)` works; the rest is a note.
pub(crate) fn token_text(answer: &Value) -> Result<(String, String), String> {
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no \"token\"")?;
    let roles: Vec<&str> = answer
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let note = format!(
        "token for {}, roles: {}, expires in {} s",
        cell(answer.get("user")),
        if roles.is_empty() {
            "none".to_string()
        } else {
            roles.join(", ")
        },
        cell(answer.get("expires_in_s")),
    );
    Ok((format!("{token}\n"), note))
}

/// `chorusctl filter reload`.
/// `tls reload`'s answer as one line.
pub(crate) fn tls_reload_text(answer: &Value) -> String {
    format!(
        "{}: TLS certificates reloaded (chain of {}, {} CA certificates, reload #{})\n",
        cell(answer.get("node")),
        cell(answer.get("chain")),
        cell(answer.get("ca_certs")),
        cell(answer.get("generation")),
    )
}

pub(crate) fn filter_reload_text(answer: &Value) -> String {
    let memory = answer
        .get("memory_bytes")
        .and_then(Value::as_u64)
        .map_or_else(|| NONE.to_string(), human_bytes);
    format!(
        "word filter reloaded: version {}, {} words, {} allowed, {memory}, built in {} ms\n",
        cell(answer.get("version")),
        cell(answer.get("words")),
        cell(answer.get("allowed")),
        cell(answer.get("build_ms")),
    )
}

/// `chorusctl filter test`.
pub(crate) fn filter_test_text(answer: &Value) -> String {
    let hits: Vec<String> = answer
        .get("hits")
        .and_then(Value::as_array)
        .map(|hits| {
            hits.iter()
                .map(|h| {
                    let word = cell(h.get("word"));
                    let text = cell(h.get("text"));
                    let at = format!("{}..{}", cell(h.get("start")), cell(h.get("end")));
                    if text == word || text == NONE {
                        format!("{word:?} at {at}")
                    } else {
                        format!("{word:?} as {text:?} at {at}")
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let hits = if hits.is_empty() {
        "none".to_string()
    } else {
        format!("{}: {}", hits.len(), hits.join(", "))
    };
    fields(&[
        ("hits", hits),
        ("masked", cell(answer.get("masked"))),
        ("normalised", cell(answer.get("normalised"))),
        ("filter version", cell(answer.get("version"))),
    ])
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
