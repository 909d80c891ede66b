//! Word lists (the dictionary and the allow-list) and what can be wrong with them.

use std::path::{Path, PathBuf};

/// Why a dictionary or allow-list was refused. A refused list never replaces the
/// filter in use.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{path}:{line}: not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line (from 1) of the first invalid byte.
        line: usize,
    },
    /// An entry has no letter or digit left after normalisation, so it would match
    /// nothing (or everything).
    #[error("{list}:{line}: {word:?} has no letter or digit left after normalisation")]
    EmptyWord {
        /// The list: a file name, or `words` / `allow` for lists given in memory.
        list: String,
        /// Line of the entry (from 1).
        line: usize,
        /// The entry as written.
        word: String,
    },
    /// The automaton could not be built (a dictionary far beyond any real one).
    #[error("cannot build the matcher: {0}")]
    Build(#[from] aho_corasick::BuildError),
}

/// Which list a [`WordList`] given in memory is, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// The dictionary of words to filter.
    Words,
    /// The allow-list of words that contain dictionary words but are fine.
    Allow,
}

impl ListKind {
    fn name(self) -> &'static str {
        match self {
            Self::Words => "words",
            Self::Allow => "allow",
        }
    }
}

/// One entry of a word list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Line in the list (from 1).
    pub line: usize,
    /// The word as written, without surrounding whitespace.
    pub word: String,
}

/// A dictionary or allow-list: entries with the line each came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordList {
    /// Names the list in errors.
    name: String,
    entries: Vec<Entry>,
}

impl WordList {
    /// A list with no entries.
    pub fn empty(kind: ListKind) -> Self {
        Self {
            name: kind.name().to_owned(),
            entries: Vec::new(),
        }
    }

    /// Takes entries as given, numbering them from 1 (no comment handling).
    pub fn from_entries<'a>(kind: ListKind, words: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            name: kind.name().to_owned(),
            entries: words
                .into_iter()
                .enumerate()
                .map(|(i, word)| Entry {
                    line: i + 1,
                    word: word.to_owned(),
                })
                .collect(),
        }
    }

    /// Parses the file format: one word per line; surrounding whitespace trimmed;
    /// blank lines and lines starting with `#` ignored; a leading byte-order mark
    /// ignored. `name` names the list in errors.
    pub fn parse(name: &str, text: &str) -> Self {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        Self {
            name: name.to_owned(),
            entries: text
                .lines()
                .enumerate()
                .filter_map(|(i, line)| {
                    let word = line.trim();
                    (!word.is_empty() && !word.starts_with('#')).then(|| Entry {
                        line: i + 1,
                        word: word.to_owned(),
                    })
                })
                .collect(),
        }
    }

    /// Reads and parses a list file. Blocking: call it off the async runtime.
    ///
    /// # Errors
    ///
    /// [`FilterError::Read`] or [`FilterError::NotUtf8`].
    pub fn read(path: &Path) -> Result<Self, FilterError> {
        let bytes = std::fs::read(path).map_err(|source| FilterError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + e
                .as_bytes()
                .get(..valid)
                .map_or(0, |b| b.iter().filter(|&&b| b == b'\n').count());
            FilterError::NotUtf8 {
                path: path.to_owned(),
                line,
            }
        })?;
        Ok(Self::parse(&path.display().to_string(), &text))
    }

    /// The name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entries, in list order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// How many entries the list has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
