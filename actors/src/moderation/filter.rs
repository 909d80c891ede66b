//! [`Filter`]: one immutable dictionary and allow-list, compiled to automatons.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use super::normalise::{self, Normalised, Symbols};
use super::words::{FilterError, ListKind, WordList};
use super::{Outcome, Policy, metric};

/// A compiled dictionary and allow-list. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Filter {
    /// Leftmost-longest automaton over the normalised dictionary; `None` when the
    /// dictionary is empty, so a disabled filter costs nothing per message.
    words: Option<AhoCorasick>,
    /// For each pattern of `words`, the dictionary word as written.
    names: Vec<Arc<str>>,
    /// Overlapping automaton over the normalised allow-list, run only when a text
    /// has a candidate match.
    allow: Option<AhoCorasick>,
    /// How many allow-list entries are distinct after normalisation.
    allowed: usize,
    /// Set when the filter is installed in a [`Moderation`](super::Moderation).
    pub(super) version: u64,
}

/// One dictionary word found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Byte range in the original text, from the match's first character to the end
    /// of its last one (separators in between included).
    pub range: Range<usize>,
    /// The dictionary word as written in the list.
    pub word: Arc<str>,
}

/// What a check found in a text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The words found, by position in the text.
    pub hits: Vec<Hit>,
    /// Version of the filter that checked the text (0 for one never installed).
    pub version: u64,
}

impl Verdict {
    /// Whether no word was found.
    pub fn is_clean(&self) -> bool {
        self.hits.is_empty()
    }
}

/// Up to this many words the dictionary is compiled to a DFA (about 2 KiB per word,
/// one table look-up per byte, twice as fast as the NFA on mixed chat); above it
/// to a contiguous NFA (under 100 bytes per word).
const DFA_MAX_WORDS: usize = 10_000;

fn matcher_kind(words: usize) -> AhoCorasickKind {
    if words <= DFA_MAX_WORDS {
        AhoCorasickKind::DFA
    } else {
        AhoCorasickKind::ContiguousNFA
    }
}

/// Original texts are processed in windows whose offsets fit the origin map.
const WINDOW: usize = 1 << 30;

/// Buffers reused by the checks of one thread.
#[derive(Debug, Default)]
struct Scratch {
    normalised: Normalised,
    /// Normalised spans of allow-listed words written without separators.
    allowed: Vec<Range<usize>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in use).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let result = f(&mut scratch);
            // A huge text must not pin its buffers for the thread's lifetime.
            if scratch.normalised.bytes.capacity() > 1 << 20 {
                *scratch = Scratch::default();
            }
            result
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

impl Filter {
    /// A filter that finds nothing.
    pub fn empty() -> Self {
        Self {
            words: None,
            names: Vec::new(),
            allow: None,
            allowed: 0,
            version: 0,
        }
    }

    /// Compiles a dictionary and an allow-list, both numbered from line 1 in errors.
    ///
    /// An empty dictionary gives a filter that finds nothing; duplicates (also those
    /// that only become equal after normalisation) are kept once.
    ///
    /// # Errors
    ///
    /// [`FilterError::EmptyWord`] for an entry with no letter or digit left after
    /// normalisation; [`FilterError::Build`] if the automaton cannot be built.
    pub fn build<'a>(
        words: impl IntoIterator<Item = &'a str>,
        allow: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, FilterError> {
        Self::from_lists(
            &WordList::from_entries(ListKind::Words, words),
            &WordList::from_entries(ListKind::Allow, allow),
        )
    }

    /// Compiles parsed word lists (see [`WordList::parse`]).
    ///
    /// # Errors
    ///
    /// As [`Filter::build`], naming the list and line of a bad entry.
    pub fn from_lists(words: &WordList, allow: &WordList) -> Result<Self, FilterError> {
        let Compiled { patterns, names } = compile(words)?;
        let allow_patterns = compile(allow)?.patterns;
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(matcher_kind(patterns.len())))
                    .build(&patterns)?,
            )
        };
        let allow_matcher = if allow_patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&allow_patterns)?,
            )
        };
        Ok(Self {
            words: matcher,
            names,
            allow: allow_matcher,
            allowed: allow_patterns.len(),
            version: 0,
        })
    }

    /// How many distinct words (after normalisation) the dictionary has.
    pub fn size(&self) -> usize {
        self.names.len()
    }

    /// Heap bytes used by the compiled automatons.
    pub fn memory_usage(&self) -> usize {
        self.words.as_ref().map_or(0, AhoCorasick::memory_usage)
            + self.allow.as_ref().map_or(0, AhoCorasick::memory_usage)
    }

    /// How many distinct words (after normalisation) the allow-list has.
    pub fn allowed(&self) -> usize {
        self.allowed
    }

    /// Version given by the [`Moderation`](super::Moderation) that installed this
    /// filter (0 if none did).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Finds the dictionary words in `text`.
    pub fn check(&self, text: &str) -> Verdict {
        let mut verdict = Verdict {
            hits: Vec::new(),
            version: self.version,
        };
        let Some(words) = &self.words else {
            return verdict;
        };
        with_scratch(|scratch| {
            for (base, window) in windows(text) {
                for symbols in [Symbols::AsLetters, Symbols::AsSeparators] {
                    let read_symbol =
                        normalise::normalise(window, symbols, &mut scratch.normalised);
                    self.scan(words, window, base, scratch, &mut verdict.hits);
                    if !read_symbol {
                        break;
                    }
                }
            }
        });
        // The two readings of `@ $ ! |` may find one occurrence twice: report it once.
        verdict
            .hits
            .sort_by_key(|hit| (hit.range.start, hit.range.end));
        verdict.hits.dedup_by(|next, kept| {
            let same = next.word == kept.word && next.range.start < kept.range.end;
            if same {
                kept.range.end = kept.range.end.max(next.range.end);
            }
            same
        });
        verdict
    }

    /// `text` with every character from each match's first to its last replaced by
    /// `*`, or `None` when it is clean.
    pub fn mask(&self, text: &str) -> Option<String> {
        let verdict = self.check(text);
        (!verdict.is_clean()).then(|| mask(text, &verdict))
    }

    /// Checks `text` and applies `policy` to it, counting the hits.
    pub fn apply(&self, policy: Policy, text: &str) -> Outcome {
        let verdict = self.check(text);
        if verdict.is_clean() {
            return Outcome::Clean;
        }
        metrics::counter!(metric::HITS, "policy" => policy.as_str())
            .increment(verdict.hits.len() as u64);
        match policy {
            Policy::Mask => Outcome::Masked(mask(text, &verdict)),
            Policy::Reject => Outcome::Rejected,
        }
    }

    /// Finds the accepted matches of one normalised window.
    fn scan(
        &self,
        words: &AhoCorasick,
        window: &str,
        base: usize,
        scratch: &mut Scratch,
        hits: &mut Vec<Hit>,
    ) {
        let norm = &scratch.normalised;
        let hay = norm.bytes.as_slice();
        // Allow-listed spans are looked for once, at the first candidate match.
        let mut allowed_found = false;
        let mut at = 0;
        while at < hay.len() {
            let Some(found) = words.find(Input::new(hay).span(at..hay.len())) else {
                break;
            };
            let start = found.start();
            if !allowed_found {
                allowed_spans(self.allow.as_ref(), norm, &mut scratch.allowed);
                allowed_found = true;
            }
            let allowed = scratch.allowed.as_slice();
            // The longest word may fail the checks where a shorter one at the same
            // place passes: try the shorter ones before moving on.
            let mut candidate = Some(found);
            let mut accepted = None;
            while let Some(m) = candidate {
                if is_word_aligned(norm, m.start(), m.end())
                    && !is_allowed(allowed, m.start(), m.end())
                {
                    accepted = Some(m);
                    break;
                }
                // The leftmost-longest match within a shorter span: the next longest
                // word at `start`, if it still starts there.
                candidate = words
                    .find(Input::new(hay).span(start..m.end().saturating_sub(1).max(start)))
                    .filter(|shorter| shorter.start() == start);
            }
            match accepted {
                Some(m) => {
                    let first = norm.origin_of(m.start());
                    let mut last = norm.origin_of(m.end() - 1);
                    while last > 0 && !window.is_char_boundary(last) {
                        last -= 1;
                    }
                    let last_len = window
                        .get(last..)
                        .and_then(|rest| rest.chars().next())
                        .map_or(1, char::len_utf8);
                    if let Some(word) = self.names.get(m.pattern().as_usize()) {
                        hits.push(Hit {
                            range: base + first..base + last + last_len,
                            word: Arc::clone(word),
                        });
                    }
                    at = m.end();
                }
                None => at = start + norm.char_len_at(start),
            }
        }
    }
}

/// Whether a match is a word of its own: written without separators, or spaced out
/// with nothing glued to its ends. `s h i t` and `s.h.i.t` are matches, `this hit`
/// is not. Scripts written without spaces (Chinese, Japanese, Thai...) have no word
/// ends to check.
fn is_word_aligned(norm: &Normalised, start: usize, end: usize) -> bool {
    if !norm.has_gap_within(start, end) {
        return true;
    }
    let unspaced = |c: Option<char>| c.is_some_and(super::fold::is_unspaced);
    let start_ok = norm.gap_before(start)
        || unspaced(norm.char_at(start))
        || unspaced(norm.char_before(start));
    let end_ok =
        norm.gap_before(end) || unspaced(norm.char_before(end)) || unspaced(norm.char_at(end));
    start_ok && end_ok
}

/// Whether a match lies entirely inside an allow-listed word.
fn is_allowed(allowed: &[Range<usize>], start: usize, end: usize) -> bool {
    allowed
        .iter()
        .any(|span| span.start <= start && end <= span.end)
}

/// Collects the allow-listed words written without separators.
fn allowed_spans(allow: Option<&AhoCorasick>, norm: &Normalised, out: &mut Vec<Range<usize>>) {
    out.clear();
    if let Some(allow) = allow {
        out.extend(
            allow
                .find_overlapping_iter(norm.bytes.as_slice())
                .filter(|m| !norm.has_gap_within(m.start(), m.end()))
                .map(|m| m.range()),
        );
    }
}

/// A normalised word list.
struct Compiled {
    /// Distinct normalised words, in list order.
    patterns: Vec<Vec<u8>>,
    /// For each pattern, the first entry that normalised to it, as written.
    names: Vec<Arc<str>>,
}

/// Normalises a word list, refusing entries that normalise to nothing.
fn compile(list: &WordList) -> Result<Compiled, FilterError> {
    let mut normalised = Normalised::default();
    let mut seen = HashSet::new();
    let mut compiled = Compiled {
        patterns: Vec::new(),
        names: Vec::new(),
    };
    for entry in list.entries() {
        normalise::normalise(&entry.word, Symbols::AsLetters, &mut normalised);
        if normalised.bytes.is_empty() {
            return Err(FilterError::EmptyWord {
                list: list.name().to_owned(),
                line: entry.line,
                word: entry.word.clone(),
            });
        }
        if seen.insert(normalised.bytes.clone()) {
            compiled.patterns.push(normalised.bytes.clone());
            compiled.names.push(Arc::from(entry.word.as_str()));
        }
    }
    Ok(compiled)
}

/// Splits `text` at character boundaries into windows shorter than 2 GiB, with
/// their offsets.
fn windows(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut base = 0;
    std::iter::from_fn(move || {
        let rest = text.get(base..).filter(|rest| !rest.is_empty())?;
        let mut end = rest.len().min(WINDOW);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = (base, rest.get(..end)?);
        base += end;
        Some(window)
    })
}

/// Replaces by `*` every character of `text` inside a hit's range.
fn mask(text: &str, verdict: &Verdict) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hits = verdict.hits.iter().map(|hit| hit.range.clone()).peekable();
    let mut current: Option<Range<usize>> = None;
    for (at, c) in text.char_indices() {
        while current.as_ref().is_none_or(|range| range.end <= at) {
            match hits.peek() {
                Some(next) if next.start <= at => current = hits.next(),
                _ => break,
            }
        }
        if current.as_ref().is_some_and(|range| range.contains(&at)) {
            out.push('*');
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises `text` the way words are matched (symbols read as letters): what an
/// operator sees when testing why a text was or was not filtered.
pub fn normalise(text: &str) -> String {
    let mut normalised = Normalised::default();
    let mut out = String::with_capacity(text.len());
    for (_, window) in windows(text) {
        normalise::normalise(window, Symbols::AsLetters, &mut normalised);
        out.push_str(&String::from_utf8_lossy(&normalised.bytes));
    }
    out
}
