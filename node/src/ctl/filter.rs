//! `chorusctl filter reload|test TEXT`: the word filter.

use chorus_admin_api::Endpoint;
use chorus_admin_api::filter::{FilterReloadResponse, FilterTestResponse};
use clap::Subcommand;

use super::Outcome;
use super::http::{Body, CtlError};
use super::render::{human_bytes, json, or_none};
use super::table::fields;
use super::view::Ctl;

/// `chorusctl filter`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum FilterCommand {
    /// Rebuild the word filter from its files; a bad file keeps the old filter.
    Reload,
    /// Show what the word filter finds in TEXT and what mask mode would deliver.
    Test {
        /// The text to check.
        text: String,
    },
}

impl Ctl {
    pub(super) async fn filter(&self, command: &FilterCommand) -> Result<Outcome, CtlError> {
        match command {
            FilterCommand::Reload => {
                let answer: FilterReloadResponse = self
                    .client
                    .post(&self.admin, Endpoint::FilterReload.route().path, None)
                    .await?;
                Ok(if self.json {
                    json(&answer)
                } else {
                    Outcome::text(filter_reload_text(&answer))
                })
            }
            FilterCommand::Test { text } => {
                let answer: FilterTestResponse = self
                    .client
                    .post(
                        &self.admin,
                        Endpoint::FilterTest.route().path,
                        Some(Body::text(text)),
                    )
                    .await?;
                Ok(if self.json {
                    json(&answer)
                } else {
                    Outcome::text(filter_test_text(&answer))
                })
            }
        }
    }
}

/// `chorusctl filter reload`.
pub(crate) fn filter_reload_text(answer: &FilterReloadResponse) -> String {
    format!(
        "word filter reloaded: version {}, {} words, {} allowed, {}, built in {} ms\n",
        answer.version,
        answer.words,
        answer.allowed,
        human_bytes(answer.memory_bytes),
        answer.build_ms,
    )
}

/// `chorusctl filter test`.
pub(crate) fn filter_test_text(answer: &FilterTestResponse) -> String {
    let hits: Vec<String> = answer
        .hits
        .iter()
        .map(|h| {
            let at = format!("{}..{}", h.start, h.end);
            match h.text.as_deref() {
                Some(text) if text != h.word && !text.is_empty() => {
                    format!("{:?} as {text:?} at {at}", h.word)
                }
                _ => format!("{:?} at {at}", h.word),
            }
        })
        .collect();
    let hits = if hits.is_empty() {
        "none".to_string()
    } else {
        format!("{}: {}", hits.len(), hits.join(", "))
    };
    fields(&[
        ("hits", hits),
        ("masked", or_none(&answer.masked)),
        ("normalised", or_none(&answer.normalised)),
        ("filter version", answer.version.to_string()),
    ])
}
