//! `chorusctl kick USER`: close every session of a user.

use chorus_admin_api::Endpoint;
use chorus_admin_api::users::KickResponse;

use super::Outcome;
use super::http::{CtlError, encode_segment};
use super::render::json;
use super::view::Ctl;

impl Ctl {
    pub(super) async fn kick(&self, user: &str) -> Result<Outcome, CtlError> {
        let path = Endpoint::Kick.route().with_param(&encode_segment(user));
        let answer: KickResponse = self.client.post(&self.admin, &path, None).await?;
        Ok(if self.json {
            json(&answer)
        } else {
            Outcome::text(kick_text(user, &answer))
        })
    }
}

/// `chorusctl kick`.
pub(crate) fn kick_text(user: &str, answer: &KickResponse) -> String {
    match answer.closed {
        1 => format!("{user}: 1 session closed\n"),
        n => format!("{user}: {n} sessions closed\n"),
    }
}
