//! `chorusctl live`: operators' settings of live rooms.
//!
//! ```text
//! chorusctl live slow ROOM             show the room's slow mode
//! chorusctl live slow ROOM SECONDS     one accepted danmaku per user per SECONDS (0: off)
//! chorusctl live slow ROOM --reset     drop the room's setting: [live] slow_mode_s applies
//! ```
//!
//! Any node answers: the setting lives in the message store, and the node that
//! takes it tells the room wherever it runs.

use chorus_admin_api::Endpoint;
use chorus_admin_api::live::{SlowModeRequest, SlowModeResponse};
use clap::builder::RangedU64ValueParser;
use clap::{Args, Subcommand};

use super::Outcome;
use super::http::{Body, CtlError, encode_segment};
use super::render::{json, or_none};
use super::table::fields;
use super::view::Ctl;
use crate::admin::MAX_SLOW_MODE_S;

/// `chorusctl live`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum LiveCommand {
    /// Show or set a room's slow mode: at most one accepted danmaku per user per
    /// SECONDS (senders with the paid or system role are exempt).
    Slow(SlowArgs),
}

/// `chorusctl live slow`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SlowArgs {
    /// The room id (without `live:`).
    pub room: String,
    /// Seconds between one user's accepted danmaku, 0 to turn slow mode off in
    /// this room; omit it to show the current setting.
    #[arg(value_parser = RangedU64ValueParser::<u32>::new().range(0..=u64::from(MAX_SLOW_MODE_S)))]
    pub seconds: Option<u32>,
    /// Remove the room's own setting, so that the nodes' `[live] slow_mode_s`
    /// applies again.
    #[arg(long, conflicts_with = "seconds")]
    pub reset: bool,
}

impl Ctl {
    pub(super) async fn live(&self, command: &LiveCommand) -> Result<Outcome, CtlError> {
        match command {
            LiveCommand::Slow(args) => self.live_slow(args).await,
        }
    }

    async fn live_slow(&self, args: &SlowArgs) -> Result<Outcome, CtlError> {
        let answer: SlowModeResponse = if args.reset || args.seconds.is_some() {
            let request = SlowModeRequest::new(args.room.clone(), args.seconds);
            self.client
                .post(
                    &self.admin,
                    Endpoint::SetLiveSlow.route().path,
                    Some(Body::json(&request)),
                )
                .await?
        } else {
            let path = Endpoint::LiveSlow
                .route()
                .with_param(&encode_segment(&args.room));
            self.client.get(&self.admin, &path).await?
        };
        Ok(if self.json {
            json(&answer)
        } else {
            Outcome::text(slow_text(&answer))
        })
    }
}

/// `chorusctl live slow`: the room, what it applies, and where that comes from.
pub(crate) fn slow_text(answer: &SlowModeResponse) -> String {
    let seconds = |s: u64| match s {
        0 => "off".to_string(),
        s => format!("{s} s per user"),
    };
    let source = match answer.override_s {
        Some(_) => "this room's setting",
        None => "the default ([live] slow_mode_s)",
    };
    fields(&[
        ("room", or_none(&answer.room)),
        ("slow mode", seconds(answer.slow_mode_s)),
        ("set by", source.to_string()),
        ("default", seconds(answer.default_s)),
    ])
}
