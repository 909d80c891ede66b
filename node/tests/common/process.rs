//! Real `chorus` processes for the tests that need them (clusters, kill -9,
//! resource limits on the process): the command line, and the addresses the
//! node prints on its first line of stdout once it listens.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A started node's process, killed (and reaped) when dropped, however the test
/// ends.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a started node listens, from its `listening` line.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub admin: SocketAddr,
}

/// `chorus serve --config <config> --log-level warn`, stdout piped for
/// [`listening`], stderr the test's.
pub fn serve(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chorus"));
    command
        .args(["serve", "--config"])
        .arg(config)
        .args(["--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Waits for the node's `listening` line (printed once every listener is
/// bound: the readiness signal) and returns its addresses. The rest of stdout
/// is drained on a thread, so the node never blocks on a full pipe.
pub fn listening(child: &mut Child) -> Listening {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().expect("a listening line").unwrap();
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {line:?}"))
            .parse()
            .unwrap()
    };
    let listening = Listening {
        tcp: field("tcp="),
        ws: field("ws="),
        admin: field("admin="),
    };
    std::thread::spawn(move || for _ in lines {});
    listening
}

/// The `chorus-loadtest` binary, from the same target directory as `chorus`.
/// Cargo builds it for `cargo test --workspace` (its package has integration
/// tests) but not for `cargo test -p chorus-node`: then build it first with
/// `cargo build -p chorus-loadtest`.
pub fn loadtest() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_chorus")).with_file_name("chorus-loadtest");
    assert!(
        path.exists(),
        "{} is missing: `cargo build -p chorus-loadtest` (or run `cargo test --workspace`)",
        path.display()
    );
    path
}
