//! A progress line on stderr every second while a scenario runs.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The running ticker; [`Progress::stop`] ends it.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Dropped or set by `stop`: the ticker ends at its next wake-up.
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Prints `line(elapsed)` to stderr every second, prefixed with the scenario's
    /// name and the elapsed time, unless `enabled` is false.
    pub(crate) fn start(
        scenario: &'static str,
        enabled: bool,
        mut line: impl FnMut(Duration) -> String + Send + 'static,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = enabled.then(|| {
            tokio::spawn(async move {
                let start = Instant::now();
                let mut tick = tokio::time::interval_at(
                    start + Duration::from_secs(1),
                    Duration::from_secs(1),
                );
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let elapsed = start.elapsed();
                            eprintln!("[{scenario} {:>5.1}s] {}", elapsed.as_secs_f64(), line(elapsed));
                        }
                        _ = stopped.wait_for(|s| *s) => break,
                    }
                }
            })
        });
        Self { stop, task }
    }

    /// Stops the ticker and waits for it.
    pub(crate) async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
