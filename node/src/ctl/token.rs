//! `chorusctl token issue USER [--role ROLE]... [--ttl SECS]`: a client JWT.

use chorus_admin_api::Endpoint;
use chorus_admin_api::users::{TokenRequest, TokenResponse};
use clap::Subcommand;
use clap::builder::{PossibleValuesParser, RangedU64ValueParser};

use super::Outcome;
use super::http::{Body, CtlError};
use super::render::json;
use super::view::Ctl;
use crate::auth::Role;

/// `chorusctl token`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TokenCommand {
    /// Issue a client JWT signed with the node's auth.secret; prints the token.
    Issue {
        /// The user id the token is for.
        user: String,
        /// A role to grant; repeat for several.
        #[arg(
            long = "role",
            value_name = "ROLE",
            value_parser = PossibleValuesParser::new(Role::ALL.map(Role::as_str)),
        )]
        roles: Vec<String>,
        /// Seconds the token is valid (the node's default: one day).
        #[arg(
            long,
            value_name = "SECS",
            value_parser = RangedU64ValueParser::<u64>::new().range(1..),
        )]
        ttl: Option<u64>,
    },
}

impl Ctl {
    pub(super) async fn token(&self, command: &TokenCommand) -> Result<Outcome, CtlError> {
        let TokenCommand::Issue { user, roles, ttl } = command;
        let request = TokenRequest {
            user: user.clone(),
            roles: roles.clone(),
            ttl_s: *ttl,
        };
        let answer: TokenResponse = self
            .client
            .post(
                &self.admin,
                Endpoint::Token.route().path,
                Some(Body::json(&request)),
            )
            .await?;
        if self.json {
            return Ok(json(&answer));
        }
        let (token, note) = token_text(&answer);
        Ok(Outcome {
            stdout: token,
            notes: vec![note],
        })
    }
}

/// `chorusctl token issue`: the token alone on stdout, so that
/// `TOKEN=$(chorusctl token issue alice)` works; the rest is a note.
pub(crate) fn token_text(answer: &TokenResponse) -> (String, String) {
    let note = format!(
        "token for {}, roles: {}, expires in {} s",
        answer.user,
        if answer.roles.is_empty() {
            "none".to_string()
        } else {
            answer.roles.join(", ")
        },
        answer.expires_in_s,
    );
    (format!("{}\n", answer.token), note)
}
