//! The actuator: the configured command, run when the recommendation changes.
//!
//! The program and its arguments come from `scaling.actuator` and run without a
//! shell (nothing in the recommendation can inject into a command line);
//! `{replicas}` in an argument becomes the count. Its output is logged, at most
//! [`MAX_LOGGED`] bytes of each stream, and every run is counted in
//! `chorus_scaling_actuator_runs_total{result}`.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

/// Bytes of stdout and of stderr logged per run.
pub(crate) const MAX_LOGGED: usize = 4096;

/// How a run ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ActuatorRun {
    /// The count it was run for.
    pub(crate) replicas: u32,
    /// When it started, ms since the epoch.
    pub(crate) at_ms: u64,
    /// `ok`, `failed` (non-zero exit or could not start) or `timeout`.
    pub(crate) result: &'static str,
    /// The exit code, when it exited.
    pub(crate) exit_code: Option<i32>,
}

/// Runs `argv` for `replicas`, waiting at most `timeout`.
pub(crate) async fn run(
    argv: &[String],
    replicas: u32,
    timeout: Duration,
    at_ms: u64,
) -> ActuatorRun {
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.replace("{replicas}", &replicas.to_string()))
        .collect();
    let done = |result: &'static str, exit_code: Option<i32>| {
        metrics::counter!("chorus_scaling_actuator_runs_total", "result" => result).increment(1);
        ActuatorRun {
            replicas,
            at_ms,
            result,
            exit_code,
        }
    };
    let Some((program, rest)) = args.split_first() else {
        return done("failed", None);
    };
    let child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(program = %program, error = %e, replicas, "scaling actuator could not start");
            return done("failed", None);
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            // Dropping the future drops the child, which kill_on_drop kills.
            tracing::warn!(program = %program, replicas, timeout_s = timeout.as_secs(), "scaling actuator timed out and was killed");
            done("timeout", None)
        }
        Ok(Err(e)) => {
            tracing::warn!(program = %program, error = %e, replicas, "scaling actuator failed");
            done("failed", None)
        }
        Ok(Ok(out)) => {
            let stdout = clip(&out.stdout);
            let stderr = clip(&out.stderr);
            let code = out.status.code();
            if out.status.success() {
                tracing::info!(program = %program, replicas, %stdout, %stderr, "scaling actuator ran");
                done("ok", code)
            } else {
                tracing::warn!(program = %program, replicas, ?code, %stdout, %stderr, "scaling actuator failed");
                done("failed", code)
            }
        }
    }
}

/// At most [`MAX_LOGGED`] bytes, as text.
fn clip(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_LOGGED)];
    let mut text = String::from_utf8_lossy(cut).trim_end().to_string();
    if bytes.len() > MAX_LOGGED {
        text.push_str(" [...]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn substitutes_the_count_and_reports_the_outcome() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("replicas");
        let script = format!("echo {{replicas}} > {}", file.display());
        let run_ok = run(&argv(&["sh", "-c", &script]), 7, Duration::from_secs(10), 1).await;
        assert_eq!(run_ok.result, "ok");
        assert_eq!(std::fs::read_to_string(&file).expect("written").trim(), "7");
        let failed = run(
            &argv(&["sh", "-c", "exit 3"]),
            2,
            Duration::from_secs(10),
            1,
        )
        .await;
        assert_eq!((failed.result, failed.exit_code), ("failed", Some(3)));
        let missing = run(
            &argv(&["/nonexistent/program"]),
            2,
            Duration::from_secs(10),
            1,
        )
        .await;
        assert_eq!(missing.result, "failed");
        let slow = run(&argv(&["sleep", "30"]), 2, Duration::from_millis(200), 1).await;
        assert_eq!(slow.result, "timeout");
        assert_eq!(clip(&[b'a'; MAX_LOGGED + 10]).len(), MAX_LOGGED + 6);
    }
}
