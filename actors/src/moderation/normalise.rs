//! The normalised text that words are matched in, with a map back to the original.
//!
//! Every normalised byte records the original byte offset it came from (the start
//! of the original character for folded characters, the same byte for runs copied
//! as is), so a match maps back to whole original characters however many bytes
//! the fold added or removed. The top bit of that offset ([`GAP`]) marks the first byte
//! after something that separates words (a space, punctuation, a symbol): matching
//! ignores separators, but the filter uses the marks to tell `s h i t` (one word,
//! spaced out) from `this hit` (two words that happen to join up).
//!
//! Leetspeak is decided per *token* (a run of ASCII letters and digits with nothing
//! separating them): its digits and `@ $ ! |` stand for letters only if letters are
//! at least half of the token, so `sh1t` and `@ss` fold while `455`, `2024` or
//! `A$5` stay numbers and prices.

use super::fold::{self, Ascii, Fold};

/// Marks the first normalised byte after a separator.
pub(super) const GAP: u32 = 1 << 31;

/// A normalised text: the bytes words are matched in (valid UTF-8) and, for each
/// byte, the offset of the original character it came from.
#[derive(Debug, Default)]
pub(super) struct Normalised {
    /// The normalised text.
    pub(super) bytes: Vec<u8>,
    /// Per normalised byte: the original byte offset (of the byte itself when copied
    /// as is, else of the folded character), with [`GAP`] on the first byte after a
    /// separator.
    pub(super) origin: Vec<u32>,
}

impl Normalised {
    /// The original byte offset normalised byte `at` came from (possibly inside a
    /// multi-byte character copied as is).
    pub(super) fn origin_of(&self, at: usize) -> usize {
        self.origin.get(at).map_or(0, |o| (o & !GAP) as usize)
    }

    /// Whether a separator comes right before normalised byte `at` (the start of the
    /// text counts; the end of the text too, for `at == len`).
    pub(super) fn gap_before(&self, at: usize) -> bool {
        self.origin.get(at).is_none_or(|o| o & GAP != 0) || at == 0
    }

    /// Whether a separator lies inside the normalised span.
    pub(super) fn has_gap_within(&self, start: usize, end: usize) -> bool {
        self.origin
            .get(start + 1..end)
            .is_some_and(|inner| inner.iter().any(|o| o & GAP != 0))
    }

    /// The normalised character starting at byte `at`.
    pub(super) fn char_at(&self, at: usize) -> Option<char> {
        let end = (at + 4).min(self.bytes.len());
        let bytes = self.bytes.get(at..end)?;
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok()?,
        };
        valid.chars().next()
    }

    /// The normalised character ending right before byte `at`.
    pub(super) fn char_before(&self, at: usize) -> Option<char> {
        let mut start = at.checked_sub(1)?;
        while start > 0 && self.bytes.get(start).is_some_and(|b| b & 0xC0 == 0x80) {
            start -= 1;
        }
        self.char_at(start)
    }

    /// Length in bytes of the normalised character starting at byte `at`.
    pub(super) fn char_len_at(&self, at: usize) -> usize {
        self.bytes.get(at).map_or(1, |&b| utf8_len(b))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.origin.clear();
    }
}

/// Length of a UTF-8 sequence from its first byte.
pub(super) fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7F => 1,
        0x80..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Whether `@ $ ! |` may stand for letters in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Symbols {
    /// `@ $ ! |` inside a token stand for `a s i i`.
    AsLetters,
    /// `@ $ ! |` separate words, like other punctuation. The filter makes this
    /// second pass only when the first one read a symbol as a letter, so
    /// `f@u@c@k` (symbols inserted) is caught as well as `f@ck` (symbol replacing).
    AsSeparators,
}

/// Normalises `text` into `out` (cleared first); `text` must be shorter than 2 GiB.
/// Returns whether a symbol was read as a letter.
pub(super) fn normalise(text: &str, symbols: Symbols, out: &mut Normalised) -> bool {
    out.clear();
    out.bytes.reserve(text.len());
    out.origin.reserve(text.len());
    let mut writer = Writer {
        out,
        gap: 0,
        token: Token::default(),
        symbols,
        symbol_read_as_letter: false,
    };
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte < 0x80 {
            // Letters and spaces, most of a Latin text, take the shortest way.
            if byte.is_ascii_alphabetic() {
                let rest = bytes.get(at..).unwrap_or_default();
                let run = rest
                    .iter()
                    .position(|b| !b.is_ascii_alphabetic())
                    .unwrap_or(rest.len());
                writer.letters(rest.get(..run).unwrap_or_default(), at);
                at += run;
                continue;
            } else if byte == b' ' {
                writer.separator();
            } else {
                writer.ascii(byte, at as u32);
            }
            at += 1;
            continue;
        }
        // Most of a Chinese or Korean text: the whole run is copied at once.
        let run = bytes.get(at..).map_or(0, kept_run_len);
        if run > 0 {
            writer.kept(bytes.get(at..at + run).unwrap_or_default(), at);
            at += run;
            continue;
        }
        let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        // Offsets fit: the caller splits longer texts.
        let origin = at as u32;
        match fold::fold(c).as_ref() {
            Fold::Invisible => {}
            Fold::One(folded) => writer.char(*folded, origin),
            Fold::Many(folded) => folded.chars().for_each(|f| writer.char(f, origin)),
        }
        at += c.len_utf8();
    }
    writer.close_token();
    writer.symbol_read_as_letter
}

/// Length in bytes of the run of characters kept as is ([`fold::is_kept_as_is`]) at the
/// start of `text`, valid UTF-8; decided from the bytes, without decoding.
pub(super) fn kept_run_len(text: &[u8]) -> usize {
    let mut len = 0;
    while let Some(&first) = text.get(len) {
        let second = text.get(len + 1).copied().unwrap_or(0);
        let kept = match first {
            // U+5000..=U+9FFF; U+4000..=U+4DBF and U+4E00..=U+4FFF (not U+4DC0..=U+4DFF,
            // hexagram symbols); U+3400..=U+3FFF.
            0xE5..=0xE9 => true,
            0xE4 => second != 0xB7,
            0xE3 => second >= 0x90,
            // Hangul syllables U+AC00..=U+D7A3.
            0xEA..=0xED => {
                let third = text.get(len + 2).copied().unwrap_or(0);
                let code = (u32::from(first & 0x0F) << 12)
                    | (u32::from(second & 0x3F) << 6)
                    | u32::from(third & 0x3F);
                (0xAC00..=0xD7A3).contains(&code)
            }
            // U+20000..=U+3FFFF.
            0xF0 => second >= 0xA0,
            _ => false,
        };
        if !kept {
            break;
        }
        len += utf8_len(first);
    }
    len
}

/// The token being written: a run of ASCII letters, digits and symbols.
#[derive(Debug, Default)]
struct Token {
    /// Whether a token is open.
    open: bool,
    /// Its first normalised byte.
    start: usize,
    /// How many letters it has.
    letters: u32,
    /// How many leet digits and symbols it has.
    candidates: u32,
    /// Whether it has a symbol (which, unlike a digit, may be dropped).
    symbols: bool,
}

struct Writer<'a> {
    out: &'a mut Normalised,
    /// [`GAP`] when a separator came since the last normalised byte, else 0.
    gap: u32,
    token: Token,
    symbols: Symbols,
    symbol_read_as_letter: bool,
}

impl Writer<'_> {
    #[inline(always)]
    fn push(&mut self, byte: u8, origin: u32) {
        self.out.bytes.push(byte);
        self.out.origin.push(origin | std::mem::take(&mut self.gap));
    }

    /// An ASCII letter, already folded.
    #[inline(always)]
    fn letter(&mut self, letter: u8, origin: u32) {
        self.open_token();
        self.token.letters += 1;
        self.push(letter, origin);
    }

    /// A run of ASCII letters.
    #[inline(always)]
    fn letters(&mut self, run: &[u8], origin: usize) {
        self.open_token();
        self.token.letters += run.len() as u32;
        let start = self.out.bytes.len();
        self.out
            .bytes
            .extend(run.iter().map(|&b| fold::LOWER[usize::from(b & 0x7F)]));
        self.copied(start, origin, run.len());
    }

    /// A separator: ends the token.
    #[inline(always)]
    fn separator(&mut self) {
        self.close_token();
        self.gap = GAP;
    }

    #[inline(always)]
    fn open_token(&mut self) {
        if !self.token.open {
            self.token = Token {
                open: true,
                start: self.out.bytes.len(),
                ..Token::default()
            };
        }
    }

    #[inline]
    fn ascii(&mut self, byte: u8, origin: u32) {
        let class = fold::ASCII
            .get(usize::from(byte))
            .copied()
            .unwrap_or(Ascii::Separator);
        match class {
            Ascii::Letter(letter) => self.letter(letter, origin),
            Ascii::Digit(leet) => {
                self.open_token();
                if leet != 0 {
                    self.token.candidates += 1;
                }
                self.push(byte, origin);
            }
            Ascii::Symbol(..) if self.symbols == Symbols::AsLetters => {
                self.open_token();
                self.token.candidates += 1;
                self.token.symbols = true;
                self.push(byte, origin);
            }
            Ascii::Symbol(..) | Ascii::Separator => self.separator(),
            Ascii::Invisible => {}
        }
    }

    fn char(&mut self, c: char, origin: u32) {
        if c.is_ascii() {
            self.ascii(c as u8, origin);
        } else {
            let mut buf = [0; 4];
            self.wide(c.encode_utf8(&mut buf).as_bytes(), origin);
        }
    }

    /// Records the origins of `len` bytes just copied from `origin` on: each byte
    /// its own offset (a match's last byte is walked back to its character's start).
    fn copied(&mut self, start: usize, origin: usize, len: usize) {
        let first = origin as u32;
        self.out.origin.extend(first..first + len as u32);
        if let Some(o) = self.out.origin.get_mut(start) {
            *o |= std::mem::take(&mut self.gap);
        }
    }

    /// A run of characters kept as is; it ends the token.
    fn kept(&mut self, run: &[u8], origin: usize) {
        self.close_token();
        let start = self.out.bytes.len();
        self.out.bytes.extend_from_slice(run);
        self.copied(start, origin, run.len());
    }

    /// A non-ASCII character from the fold table; it ends the token.
    fn wide(&mut self, bytes: &[u8], origin: u32) {
        self.close_token();
        let gap = std::mem::take(&mut self.gap);
        self.out.bytes.extend_from_slice(bytes);
        for i in 0..bytes.len() {
            self.out
                .origin
                .push(if i == 0 { origin | gap } else { origin });
        }
    }

    /// Ends the token and decides its leetspeak.
    #[inline]
    fn close_token(&mut self) {
        let open = std::mem::replace(&mut self.token.open, false);
        if open && self.token.candidates > 0 {
            self.resolve_leet();
        }
    }

    /// Decides the leetspeak of the token just closed.
    #[cold]
    fn resolve_leet(&mut self) {
        let token = std::mem::take(&mut self.token);
        let leet = token.letters > 0 && token.letters >= token.candidates;
        let Normalised { bytes, origin } = &mut *self.out;
        let Some(span) = bytes.get_mut(token.start..) else {
            return;
        };
        if !token.symbols {
            if leet {
                for byte in span {
                    if let Some(Ascii::Digit(letter @ b'a'..=b'z')) =
                        fold::ASCII.get(usize::from(*byte))
                    {
                        *byte = *letter;
                    }
                }
            }
            return;
        }
        // `!` and `|` stand for letters only between other characters of the token.
        let solid = |b: &u8| {
            !matches!(
                fold::ASCII.get(usize::from(*b)),
                Some(Ascii::Symbol(_, true))
            )
        };
        let first_solid = span.iter().position(solid).unwrap_or(usize::MAX);
        let last_solid = span.iter().rposition(solid).unwrap_or(0);
        let mut write = token.start;
        let mut dropped = false;
        for read in token.start..bytes.len() {
            let (Some(&byte), Some(&from)) = (bytes.get(read), origin.get(read)) else {
                break;
            };
            let relative = read - token.start;
            let kept = match fold::ASCII.get(usize::from(byte)) {
                Some(Ascii::Digit(letter @ b'a'..=b'z')) if leet => Some(*letter),
                Some(Ascii::Symbol(letter, between))
                    if leet && (!between || (first_solid < relative && relative < last_solid)) =>
                {
                    self.symbol_read_as_letter = true;
                    Some(*letter)
                }
                Some(Ascii::Symbol(..)) => None,
                _ => Some(byte),
            };
            match kept {
                Some(kept) => {
                    if let (Some(b), Some(o)) = (bytes.get_mut(write), origin.get_mut(write)) {
                        *b = kept;
                        *o = if std::mem::take(&mut dropped) {
                            from | GAP
                        } else {
                            from
                        };
                    }
                    write += 1;
                }
                // A symbol that is not a letter separates, like any punctuation.
                None => dropped = true,
            }
        }
        bytes.truncate(write);
        origin.truncate(write);
        if dropped {
            self.gap = GAP;
        }
    }
}
