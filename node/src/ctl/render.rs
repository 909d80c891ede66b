//! What the commands' text has in common: how an absent value and a yes/no
//! print, and the JSON of `--json`.

use serde::Serialize;

use super::Outcome;

/// What a cell shows for a value that is absent or unknown.
pub(crate) const NONE: &str = "-";

/// `text`, or [`NONE`] if it is empty.
pub(crate) fn or_none(text: &str) -> String {
    if text.is_empty() {
        NONE.to_string()
    } else {
        text.to_string()
    }
}

/// `value`, or [`NONE`] if there is none.
pub(crate) fn opt(value: Option<impl ToString>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `value` pretty-printed, for `--json`.
pub(crate) fn json(value: &impl Serialize) -> Outcome {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    Outcome::text(text)
}

/// Bytes for a person: `1.2 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
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
