//! `chorusctl tls reload`: the node reads its `[tls]` files again.

use chorus_admin_api::Endpoint;
use chorus_admin_api::tls::TlsReloadResponse;
use clap::Subcommand;

use super::Outcome;
use super::http::CtlError;
use super::render::json;
use super::view::Ctl;

/// `chorusctl tls`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TlsCommand {
    /// Read the node's [tls] certificate, key and CA files again; a bad file keeps
    /// the certificates in use and says why.
    Reload,
}

impl Ctl {
    pub(super) async fn tls(&self, command: &TlsCommand) -> Result<Outcome, CtlError> {
        let TlsCommand::Reload = command;
        let answer: TlsReloadResponse = self
            .client
            .post(&self.admin, Endpoint::TlsReload.route().path, None)
            .await?;
        Ok(if self.json {
            json(&answer)
        } else {
            Outcome::text(tls_reload_text(&answer))
        })
    }
}

/// `tls reload`'s answer as one line.
pub(crate) fn tls_reload_text(answer: &TlsReloadResponse) -> String {
    format!(
        "{}: TLS certificates reloaded (chain of {}, {} CA certificates, reload #{})\n",
        answer.node, answer.chain, answer.ca_certs, answer.generation,
    )
}
