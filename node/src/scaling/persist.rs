//! The load history in the store: this node's samples written in batches, and
//! every member's stored history read back at start.
//!
//! ```text
//! every sample_s:      own sample ──► Pending (bounded; oldest dropped when full)
//! every store_every_s: Pending ──► append_load_samples(node id) ──► the store
//!                      (failure or timeout: logged, counted, put back for the next batch)
//! at start:            load_members ──► load_history per member ──► histories
//! ```
//!
//! Writing is a task of its own, so a store that is down or slow never holds up
//! sampling, gossip or forecasts: samples wait in [`Pending`], whose size is
//! bounded, and a batch that fails is retried with the next one.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use chorus_scaling::series::LoadSample;
use tokio_util::sync::CancellationToken;

use super::{Restored, now_ms};
use chorus_store::load::{MAX_MEMBERS, MAX_SAMPLES_PER_APPEND, MAX_SAMPLES_PER_READ};
use chorus_store::{LoadRecord, MessageStore, StoreResult};

/// Samples waiting to be written, oldest first, at most `cap`.
#[derive(Debug)]
pub(crate) struct Pending {
    samples: VecDeque<LoadSample>,
    /// The bound: a store outage longer than this many samples loses the
    /// oldest ones (counted), never the node's memory.
    cap: usize,
}

impl Pending {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Queues a sample, dropping the oldest when full.
    pub(crate) fn push(&mut self, sample: LoadSample) {
        self.samples.push_back(sample);
        while self.samples.len() > self.cap {
            self.samples.pop_front();
            metrics::counter!("chorus_scaling_store_dropped_total").increment(1);
        }
        metrics::gauge!("chorus_scaling_store_pending").set(self.samples.len() as f64);
    }

    /// Takes the oldest samples, at most one append's worth.
    fn take(&mut self) -> Vec<LoadSample> {
        let n = self.samples.len().min(MAX_SAMPLES_PER_APPEND);
        self.samples.drain(..n).collect()
    }

    /// Puts back samples whose write failed, ahead of the newer ones (within
    /// the bound: the oldest go first).
    fn put_back(&mut self, samples: Vec<LoadSample>) {
        for sample in samples.into_iter().rev() {
            self.samples.push_front(sample);
        }
        while self.samples.len() > self.cap {
            self.samples.pop_front();
            metrics::counter!("chorus_scaling_store_dropped_total").increment(1);
        }
        metrics::gauge!("chorus_scaling_store_pending").set(self.samples.len() as f64);
    }

    /// Samples waiting.
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

/// Where and how the samples are written.
pub(crate) struct Writer {
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) member: String,
    /// How long each sample is kept: the history's span.
    pub(crate) keep_ms: u64,
    /// How long one batch may take before it counts as failed.
    pub(crate) timeout: Duration,
}

/// What one batch did, for the logs and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Nothing was pending.
    Nothing,
    /// This many samples were written.
    Stored(usize),
    /// The write failed or timed out; the samples wait for the next batch.
    Failed,
}

impl Writer {
    /// Writes what is pending, one append's worth at a time.
    pub(crate) async fn write_pending(&self, pending: &Mutex<Pending>, now_ms: u64) -> Written {
        let mut stored = 0;
        loop {
            let batch = lock(pending).take();
            if batch.is_empty() {
                break;
            }
            let records: Vec<LoadRecord> = batch.iter().filter_map(encode).collect();
            let outcome = tokio::time::timeout(
                self.timeout,
                self.store
                    .append_load_samples(&self.member, &records, self.keep_ms, now_ms),
            )
            .await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {:?}", self.timeout)),
            };
            if let Some(error) = error {
                metrics::counter!("chorus_scaling_store_failures_total").increment(1);
                tracing::warn!(
                    %error,
                    samples = batch.len(),
                    "writing load samples to the store failed; retrying with the next batch"
                );
                lock(pending).put_back(batch);
                return Written::Failed;
            }
            metrics::counter!("chorus_scaling_store_written_total").increment(batch.len() as u64);
            stored += batch.len();
        }
        let left = lock(pending).samples.len();
        metrics::gauge!("chorus_scaling_store_pending").set(left as f64);
        if stored == 0 {
            Written::Nothing
        } else {
            Written::Stored(stored)
        }
    }
}

/// The stored history's side of the service.
impl super::Scaling {
    /// How long the store keeps a sample: the span of a full history.
    pub(super) fn keep_ms(&self) -> u64 {
        u64::from(self.config.history_samples) * u64::from(self.config.sample_s) * 1000
    }

    fn store_writer(&self) -> Writer {
        Writer {
            store: self.store.clone(),
            member: self.node_id.clone(),
            keep_ms: self.keep_ms(),
            timeout: Duration::from_secs(u64::from(self.config.store_every_s.clamp(1, 30))),
        }
    }

    /// Writes this node's samples every `store_every_s`, and once more at
    /// shutdown.
    pub(super) async fn store_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let writer = self.store_writer();
        let period = Duration::from_secs(u64::from(self.config.store_every_s));
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => {}
            }
            self.note_written(writer.write_pending(&self.pending, now_ms()).await);
        }
        self.note_written(writer.write_pending(&self.pending, now_ms()).await);
    }

    fn note_written(&self, written: Written) {
        let mut state = self.lock();
        match written {
            Written::Nothing => {}
            Written::Stored(n) => {
                state.stored.written += n as u64;
                state.stored.last_at_ms = Some(now_ms());
            }
            Written::Failed => state.stored.failures += 1,
        }
    }

    /// Reads every member's stored history into the histories. `Err` when the
    /// store could not answer (logged and counted; the caller tries again).
    pub(super) async fn restore(&self) -> Result<(), ()> {
        let now = now_ms();
        let per_member = self.config.history_samples as usize;
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            read_histories(self.store.as_ref(), self.keep_ms(), per_member, now),
        )
        .await;
        let histories = match read {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                metrics::counter!("chorus_scaling_restore_failures_total").increment(1);
                tracing::warn!(error = %e, "reading the stored load history failed");
                return Err(());
            }
            Err(_) => {
                metrics::counter!("chorus_scaling_restore_failures_total").increment(1);
                tracing::warn!("reading the stored load history timed out");
                return Err(());
            }
        };
        let members = histories.len();
        let samples = histories.iter().map(|(_, s)| s.len()).sum();
        for (member, stored) in histories {
            self.merge(&member, stored);
        }
        tracing::info!(members, samples, "read the stored load history");
        self.lock().restored = Some(Restored {
            at_ms: now,
            members,
            samples,
        });
        Ok(())
    }

    /// Merges stored samples into a member's history, in time order, without
    /// duplicates, keeping the newest `history_samples`.
    fn merge(&self, node: &str, stored: Vec<LoadSample>) {
        let mut state = self.lock();
        if !state.histories.contains_key(node) && state.histories.len() >= MAX_MEMBERS {
            return;
        }
        let history = state.histories.entry(node.to_string()).or_default();
        let mut all: Vec<LoadSample> = history.drain(..).chain(stored).collect();
        all.sort_by_key(|s| s.at_ms);
        all.dedup_by_key(|s| s.at_ms);
        let keep = self.config.history_samples as usize;
        let skip = all.len().saturating_sub(keep);
        history.extend(all.into_iter().skip(skip));
    }
}

fn lock(pending: &Mutex<Pending>) -> parking_lot::MutexGuard<'_, Pending> {
    pending.lock()
}

/// A sample as the store keeps it: its JSON, as gossiped.
fn encode(sample: &LoadSample) -> Option<LoadRecord> {
    serde_json::to_vec(sample).ok().map(|data| LoadRecord {
        at_ms: sample.at_ms,
        data,
    })
}

/// Every member's stored samples of the last `keep_ms`, at most `per_member`
/// each (the newest), as `(member, samples oldest first)`. A stored sample
/// that does not parse is skipped and counted.
pub(crate) async fn read_histories(
    store: &dyn MessageStore,
    keep_ms: u64,
    per_member: usize,
    now_ms: u64,
) -> StoreResult<Vec<(String, Vec<LoadSample>)>> {
    let after = now_ms.saturating_sub(keep_ms);
    let mut out = Vec::new();
    for member in store
        .load_members(now_ms)
        .await?
        .into_iter()
        .take(MAX_MEMBERS)
    {
        let mut samples: VecDeque<LoadSample> = VecDeque::new();
        let mut last = after;
        loop {
            let page = store
                .load_history(&member, last, MAX_SAMPLES_PER_READ, now_ms)
                .await?;
            let Some(end) = page.last().map(|r| r.at_ms) else {
                break;
            };
            let full = page.len() >= MAX_SAMPLES_PER_READ;
            for record in page {
                match parse(&record) {
                    Some(sample) => samples.push_back(sample),
                    None => metrics::counter!("chorus_scaling_bad_samples_total").increment(1),
                }
                while samples.len() > per_member {
                    samples.pop_front();
                }
            }
            if !full || end <= last {
                break;
            }
            last = end;
        }
        if !samples.is_empty() {
            out.push((member, samples.into()));
        }
    }
    Ok(out)
}

/// A stored sample, if it is one whose time matches its key.
fn parse(record: &LoadRecord) -> Option<LoadSample> {
    if record.data.len() > super::MAX_SAMPLE_BYTES {
        return None;
    }
    let sample: LoadSample = serde_json::from_slice(&record.data).ok()?;
    (sample.at_ms == record.at_ms).then_some(sample)
}

#[cfg(test)]
mod tests;
