//! `chorusctl`: operates a Chorus cluster through the nodes' admin API
//! (`chorus_node::ctl` has the commands).

use std::process::ExitCode;

use chorus_node::ctl::{self, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chorusctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ctl::run(&cli)) {
        Ok(outcome) => {
            print!("{}", outcome.stdout);
            for note in &outcome.notes {
                eprintln!("chorusctl: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chorusctl: {e}");
            ExitCode::FAILURE
        }
    }
}
