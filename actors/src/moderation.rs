//! The sensitive-word filter (docs/protocol.md §7.10): dictionary words are found in a
//! normalised text that ignores case, full-width forms, look-alike characters,
//! leetspeak, and separators, symbols or invisible characters inserted between
//! letters; then the text is masked or rejected.
//!
//! ```text
//! text ─► normalise ─► normalised bytes + origin map ─► Aho-Corasick (leftmost-longest)
//!             │                                              │ candidate matches
//!             │                     word-aligned? allow-listed? ◄┘
//!             └─────────── origin map ──► original byte ranges ─► mask / reject
//! ```
//!
//! - `fold`: what each character becomes (tables, confusables).
//! - `normalise`: the normalised text and its map back to the original.
//! - `filter`: [`Filter`], one compiled dictionary and allow-list; [`Verdict`].
//! - `words`: [`WordList`], the list file format; [`FilterError`].
//! - [`Moderation`] (here): the filter in use, swapped atomically on reload while
//!   readers keep checking; [`Policy`] and [`Outcome`].
//!
//! See `docs/moderation.md` for what is normalised and why.

mod filter;
mod fold;
mod normalise;
mod words;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use arc_swap::ArcSwap;

pub use filter::{Filter, Hit, Verdict, normalise};
pub use words::{Entry, FilterError, ListKind, WordList};

/// Metric names.
pub mod metric {
    /// Counter: dictionary words found in texts that were masked or rejected, by
    /// `policy` (`mask` or `reject`).
    pub const HITS: &str = "chorus_filter_hits_total";
    /// Gauge: version of the filter in use (1 for the first, +1 per reload).
    pub const VERSION: &str = "chorus_filter_dictionary_version";
    /// Gauge: distinct dictionary words in the filter in use.
    pub const SIZE: &str = "chorus_filter_dictionary_size";
    /// Counter: reloads refused (the previous filter stayed in use).
    pub const RELOAD_FAILURES: &str = "chorus_filter_reload_failures_total";
}

/// What to do with a text that contains dictionary words (`[moderation] mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Replace each matched span by `*`s and deliver the text.
    #[default]
    Mask,
    /// Refuse the text: the send gets `reject` `filtered` and nothing is stored.
    Reject,
}

impl Policy {
    /// The configuration and metric label name: `mask` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mask => "mask",
            Self::Reject => "reject",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mask" => Ok(Self::Mask),
            "reject" => Ok(Self::Reject),
            other => Err(format!(
                "moderation mode must be `mask` or `reject`, not {other:?}"
            )),
        }
    }
}

/// The result of applying a [`Policy`] to a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No dictionary word: deliver the text unchanged.
    Clean,
    /// Mask policy: deliver this text instead (same length in characters).
    Masked(String),
    /// Reject policy: refuse the send with `filtered`.
    Rejected,
}

/// What a successful reload installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadReport {
    /// Version of the filter now in use.
    pub version: u64,
    /// Distinct dictionary words.
    pub words: usize,
    /// Distinct allow-list words.
    pub allowed: usize,
    /// Heap bytes of the compiled automatons.
    pub memory_bytes: usize,
    /// Time spent reading and compiling the lists.
    pub build_time: Duration,
}

/// The filter in use, shared by every session of a node.
///
/// Readers never wait: each check loads the current [`Filter`] once (one atomic
/// load) and uses that one for the whole text, so a check sees either the old or the
/// new dictionary, never a mix. Reloads build the new filter first, then swap it in.
#[derive(Debug)]
pub struct Moderation {
    current: ArcSwap<Filter>,
    /// Serialises installs so versions increase in swap order; readers never take it.
    writer: Mutex<()>,
}

impl Default for Moderation {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Moderation {
    /// Moderation with an empty filter (version 0): every text is clean.
    pub fn disabled() -> Self {
        Self {
            current: ArcSwap::from_pointee(Filter::empty()),
            writer: Mutex::new(()),
        }
    }

    /// Moderation with `filter` installed as version 1.
    pub fn new(filter: Filter) -> Self {
        let moderation = Self::disabled();
        moderation.install(filter);
        moderation
    }

    /// Moderation with the lists of these files (version 1). Blocking.
    ///
    /// # Errors
    ///
    /// Why a list was refused.
    pub fn from_files(words: &Path, allow: Option<&Path>) -> Result<Self, FilterError> {
        let moderation = Self::disabled();
        moderation.reload_from_files(words, allow)?;
        Ok(moderation)
    }

    /// The filter in use, for a caller that checks several texts against one version.
    pub fn filter(&self) -> Arc<Filter> {
        self.current.load_full()
    }

    /// Version of the filter in use.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// Distinct dictionary words of the filter in use.
    pub fn size(&self) -> usize {
        self.current.load().size()
    }

    /// Finds the dictionary words in `text` (see [`Filter::check`]).
    pub fn check(&self, text: &str) -> Verdict {
        self.current.load().check(text)
    }

    /// `text` masked, or `None` when clean (see [`Filter::mask`]).
    pub fn mask(&self, text: &str) -> Option<String> {
        self.current.load().mask(text)
    }

    /// Applies `policy` to `text` (see [`Filter::apply`]).
    pub fn apply(&self, policy: Policy, text: &str) -> Outcome {
        self.current.load().apply(policy, text)
    }

    /// Installs `filter` as the next version and returns that version.
    pub fn install(&self, mut filter: Filter) -> u64 {
        let _writer = self.writer.lock();
        let version = self.current.load().version + 1;
        filter.version = version;
        let size = filter.size();
        self.current.store(Arc::new(filter));
        metrics::gauge!(metric::VERSION).set(version as f64);
        metrics::gauge!(metric::SIZE).set(size as f64);
        version
    }

    /// Reads, validates and compiles the lists, then swaps the new filter in.
    /// Blocking and CPU-heavy for big lists: from async code, run it in
    /// `spawn_blocking`. Checks go on with the old filter meanwhile.
    ///
    /// # Errors
    ///
    /// Why a list was refused; the old filter stays in use and
    /// `chorus_filter_reload_failures_total` counts it.
    pub fn reload_from_files(
        &self,
        words_path: &Path,
        allow_path: Option<&Path>,
    ) -> Result<ReloadReport, FilterError> {
        let started = Instant::now();
        let built = WordList::read(words_path).and_then(|words| {
            let allow = match allow_path {
                Some(path) => WordList::read(path)?,
                None => WordList::empty(ListKind::Allow),
            };
            Filter::from_lists(&words, &allow)
        });
        match built {
            Ok(filter) => {
                let (words, allowed, memory_bytes) =
                    (filter.size(), filter.allowed(), filter.memory_usage());
                let version = self.install(filter);
                tracing::info!(
                    version,
                    words,
                    allowed,
                    memory_bytes,
                    path = %words_path.display(),
                    "sensitive-word filter reloaded"
                );
                Ok(ReloadReport {
                    version,
                    words,
                    allowed,
                    memory_bytes,
                    build_time: started.elapsed(),
                })
            }
            Err(error) => {
                metrics::counter!(metric::RELOAD_FAILURES).increment(1);
                tracing::warn!(
                    %error,
                    kept_version = self.version(),
                    "sensitive-word filter reload refused"
                );
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
