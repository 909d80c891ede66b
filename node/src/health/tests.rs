//! When failures turn into unhealthiness, on a paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PROBE_INTERVAL, StoreHealth, Tolerance};

/// A probe that fails while `down` is set, and one that never answers while
/// `hang` is set.
fn probe(
    down: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
{
    move || {
        let (down, hang) = (down.load(Ordering::SeqCst), hang.load(Ordering::SeqCst));
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            if down {
                Err("unreachable".into())
            } else {
                Ok(())
            }
        })
    }
}

async fn after(d: Duration) {
    tokio::time::sleep(d).await;
    // Let the probing task run its tick.
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn a_database_is_unhealthy_only_after_failing_for_the_request_timeout() {
    let (down, hang) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let health = StoreHealth::new();
    let stop = CancellationToken::new();
    let grace = Duration::from_secs(5);
    tokio::spawn(health.clone().follow(
        probe(down.clone(), hang.clone()),
        Tolerance::For(grace),
        Duration::from_secs(2),
        stop.clone(),
    ));
    after(PROBE_INTERVAL * 3).await;
    assert_eq!(health.problem(), None);

    down.store(true, Ordering::SeqCst);
    after(PROBE_INTERVAL * 3).await;
    assert_eq!(health.problem(), None, "a short outage is tolerated");
    after(grace).await;
    let problem = health.problem().expect("unhealthy after the grace");
    assert!(problem.contains("unreachable"), "{problem}");

    down.store(false, Ordering::SeqCst);
    after(PROBE_INTERVAL * 2).await;
    assert_eq!(health.problem(), None, "healthy at the first good probe");

    // A probe that never answers counts as a failure once it times out.
    hang.store(true, Ordering::SeqCst);
    after(grace + PROBE_INTERVAL * 4).await;
    let problem = health.problem().expect("unhealthy while probes hang");
    assert!(problem.contains("did not answer"), "{problem}");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_embedded_store_is_unhealthy_at_the_first_failure() {
    let (down, hang) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let health = StoreHealth::new();
    let stop = CancellationToken::new();
    tokio::spawn(health.clone().follow(
        probe(down.clone(), hang),
        Tolerance::None,
        Duration::from_secs(2),
        stop.clone(),
    ));
    after(PROBE_INTERVAL * 2).await;
    assert_eq!(health.problem(), None);
    down.store(true, Ordering::SeqCst);
    after(PROBE_INTERVAL * 2).await;
    assert!(health.problem().is_some());
    stop.cancel();
}
