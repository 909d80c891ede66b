//! `probe`: is this machine steady enough to measure latency on?
//!
//! Each thread repeats one fixed piece of CPU work (a chunk: a few tens of
//! microseconds of integer arithmetic, no memory traffic, no system calls) and
//! times every chunk. On a steady machine every chunk takes about the same time.
//! A chunk far slower than the median means the CPU itself ran slowly or not at
//! all for this thread: another process (or, on a virtual machine, the host) took
//! it. The report gives, per second of the run, how many milliseconds went to
//! chunks over [`SLOW_FACTOR`] times the median — time during which any server on
//! the machine would stall as well, and which shows up in its latency tail.
//!
//! It needs no node. Run it alone on an idle machine before trusting a p99 measured
//! there, and next to a run to see whether both saw the same stalls.

use std::time::{Duration, Instant};

use serde::Serialize;

/// A chunk slower than this many medians counts as stalled.
pub const SLOW_FACTOR: f64 = 5.0;

/// Multiply-add steps per chunk: tens of microseconds on a 2020s server core.
const CHUNK_STEPS: u32 = 20_000;

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Threads working at once (one per core to load the whole machine).
    pub threads: usize,
    /// How long each thread works.
    pub duration: Duration,
}

/// What one thread saw.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadReport {
    /// Chunks timed.
    pub chunks: u64,
    /// Median chunk time, µs.
    pub median_us: f64,
    /// 99th percentile chunk time, µs.
    pub p99_us: f64,
    /// 99.9th percentile chunk time, µs.
    pub p999_us: f64,
    /// Slowest chunk, µs.
    pub max_us: f64,
    /// Milliseconds spent in chunks over [`SLOW_FACTOR`] medians, per second of
    /// the run.
    pub stalled_ms_per_second: Vec<f64>,
}

/// The probe's report.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// Always `"probe"`.
    pub scenario: &'static str,
    /// Threads that worked at once.
    pub threads: usize,
    /// Seconds each thread worked.
    pub duration_s: f64,
    /// The factor over the median that counts as stalled.
    pub slow_factor: f64,
    /// Share of the run's time spent in stalled chunks, over all threads.
    pub stalled_share: f64,
    /// Seconds (of `duration_s`) in which some thread spent over 10 ms stalled:
    /// a server's p99 over such a second cannot be below that.
    pub seconds_over_10ms: usize,
    /// Each thread's view.
    pub per_thread: Vec<ThreadReport>,
}

/// Times chunks on `cfg.threads` threads for `cfg.duration`. Blocks the calling
/// thread for the duration.
pub fn run(cfg: &ProbeConfig) -> ProbeReport {
    let duration = cfg.duration;
    let workers: Vec<_> = (0..cfg.threads.max(1))
        .map(|_| std::thread::spawn(move || time_chunks(duration)))
        .collect();
    let per_thread: Vec<ThreadReport> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_default())
        .map(|chunks| summarize(&chunks, duration))
        .collect();
    let stalled_ms: f64 = per_thread
        .iter()
        .flat_map(|t| t.stalled_ms_per_second.iter())
        .sum();
    let total_ms = duration.as_secs_f64() * 1e3 * per_thread.len() as f64;
    let seconds = per_thread
        .iter()
        .map(|t| t.stalled_ms_per_second.len())
        .max()
        .unwrap_or(0);
    let seconds_over_10ms = (0..seconds)
        .filter(|&s| {
            per_thread
                .iter()
                .any(|t| t.stalled_ms_per_second.get(s).is_some_and(|&ms| ms > 10.0))
        })
        .count();
    ProbeReport {
        scenario: "probe",
        threads: per_thread.len(),
        duration_s: duration.as_secs_f64(),
        slow_factor: SLOW_FACTOR,
        // A chunk that started before the end may finish long after it on a
        // stalled machine, so the stalled time can exceed the run: at most all of it.
        stalled_share: if total_ms > 0.0 {
            (stalled_ms / total_ms).min(1.0)
        } else {
            0.0
        },
        seconds_over_10ms,
        per_thread,
    }
}

/// One chunk: when it started (since the thread's start) and how long it took.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    at: Duration,
    took: Duration,
}

fn time_chunks(duration: Duration) -> Vec<Chunk> {
    let start = Instant::now();
    let mut chunks = Vec::with_capacity(1 << 20);
    let mut x: u64 = 1;
    loop {
        let began = Instant::now();
        let at = began - start;
        if at >= duration {
            break;
        }
        for _ in 0..CHUNK_STEPS {
            // `black_box` keeps each step a step: without it the compiler folds
            // the chain and a chunk shrinks to a few microseconds.
            x = std::hint::black_box(
                x.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
        chunks.push(Chunk {
            at,
            took: began.elapsed(),
        });
    }
    chunks
}

fn summarize(chunks: &[Chunk], duration: Duration) -> ThreadReport {
    let mut sorted: Vec<Duration> = chunks.iter().map(|c| c.took).collect();
    sorted.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .map_or(0.0, us)
    };
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let slow = median.mul_f64(SLOW_FACTOR);
    let seconds = duration.as_secs_f64().ceil().max(1.0) as usize;
    let mut stalled = vec![0.0; seconds];
    for c in chunks.iter().filter(|c| c.took > slow) {
        if let Some(ms) = stalled.get_mut(c.at.as_secs() as usize) {
            *ms += c.took.as_secs_f64() * 1e3;
        }
    }
    ThreadReport {
        chunks: chunks.len() as u64,
        median_us: us(median),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: sorted.last().copied().map_or(0.0, us),
        stalled_ms_per_second: stalled,
    }
}

impl Default for ThreadReport {
    fn default() -> Self {
        summarize(&[], Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at_ms: u64, took_us: u64) -> Chunk {
        Chunk {
            at: Duration::from_millis(at_ms),
            took: Duration::from_micros(took_us),
        }
    }

    #[test]
    fn slow_chunks_are_summed_into_the_second_they_started_in() {
        let mut chunks: Vec<Chunk> = (0..2_000).map(|i| chunk(i, 30)).collect();
        chunks.push(chunk(500, 40_000));
        chunks.push(chunk(1_200, 100));
        chunks.push(chunk(1_300, 151));
        let r = summarize(&chunks, Duration::from_secs(2));
        assert_eq!(r.median_us, 30.0);
        assert_eq!(r.max_us, 40_000.0);
        assert_eq!(r.stalled_ms_per_second.len(), 2);
        assert!((r.stalled_ms_per_second[0] - 40.0).abs() < 1e-9);
        // 100 µs is under 5 medians (150 µs); 151 µs is over.
        assert!((r.stalled_ms_per_second[1] - 0.151).abs() < 1e-9);
    }

    #[test]
    fn a_short_run_reports_every_thread() {
        let r = run(&ProbeConfig {
            threads: 2,
            duration: Duration::from_millis(200),
        });
        assert_eq!(r.threads, 2);
        assert!(
            r.per_thread
                .iter()
                .all(|t| t.chunks > 0 && t.median_us > 0.0)
        );
        assert!((0.0..=1.0).contains(&r.stalled_share));
    }

    #[test]
    fn no_chunks_is_an_empty_report_not_a_panic() {
        let r = summarize(&[], Duration::ZERO);
        assert_eq!((r.chunks, r.max_us), (0, 0.0));
    }
}
