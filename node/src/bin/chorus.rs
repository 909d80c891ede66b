//! `chorus`: runs a Chorus node (docs/operations.md, "Running a node").

use std::process::ExitCode;

use chorus_node::cli::{Cli, Command};
use chorus_node::{Node, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chorus: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = telemetry::init_logging(config.log.format, &config.log.level) {
        eprintln!("chorus: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chorus: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let node = match Node::start(config).await {
            Ok(node) => node,
            Err(e) => {
                eprintln!("chorus: {e}");
                return ExitCode::FAILURE;
            }
        };
        // One machine-readable line once every listener is bound: scripts and tests
        // wait for it instead of polling (ports given as 0 are resolved here).
        let a = node.addrs();
        println!("listening tcp={} ws={} admin={}", a.tcp, a.ws, a.admin);
        tokio::select! {
            () = wait_for_signal() => {}
            () = node.exit_requested() => tracing::info!("drained: exiting"),
            () = reload_tls_on_sighup(&node) => {}
        }
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Reloads the `[tls]` certificates on every SIGHUP; never completes. A failed
/// reload keeps the certificates in use (and is logged with its reason).
async fn reload_tls_on_sighup(node: &Node) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                match node.reload_tls() {
                    Ok(Some(_)) | Err(_) => {} // Logged by the reload itself.
                    Ok(None) => tracing::info!("SIGHUP: no [tls] certificate to reload"),
                }
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Completes on SIGTERM or SIGINT.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
