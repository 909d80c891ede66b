//! What one character of the original text becomes before words are matched.
//!
//! ASCII is classified by a 128-entry table ([`ASCII`]); the leet digits and
//! symbols in it are only candidates, decided per token by the normaliser.
//! Han ideographs and Hangul syllables are kept byte for byte ([`is_kept_as_is`]).
//! Every other character goes through [`fold`]: NFKD compatibility decomposition
//! (full-width, circled, mathematical and other compatibility forms become their
//! plain letters), combining marks and invisible characters dropped, full lowercase,
//! then decancer's confusable table for the look-alikes NFKD does not touch (Cyrillic,
//! Greek, Cherokee, small capitals, ...). Writing systems whose letters are words in
//! their own right (Chinese, Japanese, Korean, Arabic, Hebrew, Indic, South-East
//! Asian, Mongolian) are kept, not turned into Latin shapes. The result of that slow
//! path is cached per block of 256 code points, built on first use.

use std::borrow::Cow;
use std::sync::OnceLock;

use decancer::{Options, Translation};
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// How one ASCII byte takes part in a normalised word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ascii {
    /// Whitespace and punctuation: ignored, but ends a token.
    Separator,
    /// Control characters other than whitespace: ignored, and a token goes on.
    Invisible,
    /// A letter, as its folded lowercase byte.
    Letter(u8),
    /// A digit, with the letter it stands for in leetspeak (`0` when none).
    Digit(u8),
    /// `@ $ ! |`: the letter they stand for in leetspeak; `true` when they count
    /// only between other characters of a token (`!` and `|` also end sentences
    /// and separate words).
    Symbol(u8, bool),
}

/// The fold of every ASCII byte.
pub(super) static ASCII: [Ascii; 128] = ascii_table();

const fn ascii_table() -> [Ascii; 128] {
    let mut table = [Ascii::Separator; 128];
    let mut b = 0;
    while b < 128 {
        let byte = b as u8;
        table[b] = match byte {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Ascii::Separator,
            0..=0x1f | 0x7f => Ascii::Invisible,
            // Capital I and small l look alike in most fonts; 1 and | join them.
            b'l' | b'L' => Ascii::Letter(b'i'),
            b'a'..=b'z' => Ascii::Letter(byte),
            b'A'..=b'Z' => Ascii::Letter(byte.to_ascii_lowercase()),
            b'0' => Ascii::Digit(b'o'),
            b'1' => Ascii::Digit(b'i'),
            b'3' => Ascii::Digit(b'e'),
            b'4' => Ascii::Digit(b'a'),
            b'5' => Ascii::Digit(b's'),
            b'7' => Ascii::Digit(b't'),
            b'2' | b'6' | b'8' | b'9' => Ascii::Digit(0),
            b'@' => Ascii::Symbol(b'a', false),
            b'$' => Ascii::Symbol(b's', false),
            b'!' | b'|' => Ascii::Symbol(b'i', true),
            _ => Ascii::Separator,
        };
        b += 1;
    }
    table
}

/// ASCII letters lowercased, with `l` read as `i`; other bytes unchanged.
pub(super) static LOWER: [u8; 128] = lower_table();

const fn lower_table() -> [u8; 128] {
    let ascii = ascii_table();
    let mut table = [0; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = match ascii[b] {
            Ascii::Letter(letter) => letter,
            _ => b as u8,
        };
        b += 1;
    }
    table
}

/// What a non-ASCII character becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fold {
    /// Zero-width and format characters, combining marks, variation selectors:
    /// nothing, and the token goes on (they are how words get split invisibly).
    Invisible,
    /// One character; an ASCII one is classified by [`ASCII`] (a space is a
    /// separator).
    One(char),
    /// Several characters (ligatures, `½`, `㎏`, `ß`...), each handled like [`Fold::One`].
    Many(Box<str>),
}

/// Han ideographs and Hangul syllables: kept byte for byte, without a table look-up
/// (they are most of a Chinese or Korean chat message).
pub(super) fn is_kept_as_is(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 | 0x20000..=0x3FFFF)
}

/// Writing systems that put no spaces between words: a match may start or end in
/// the middle of a run of them.
pub(super) fn is_unspaced(c: char) -> bool {
    matches!(
        c as u32,
        0x0E00..=0x0EFF        // Thai, Lao
        | 0x1000..=0x109F      // Myanmar
        | 0x1780..=0x17FF      // Khmer
        | 0x3005..=0x3007      // 々 〆 〇
        | 0x3040..=0x30FF      // kana
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x3FFFF
    )
}

/// Characters that render as nothing (Unicode's Default_Ignorable_Code_Point,
/// plus C1 controls) and combining marks.
fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x80..=0x9F
            | 0xAD
            | 0x34F
            | 0x61C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    ) || is_combining_mark(c)
}

/// Blocks of 256 code points over planes 0 and 1, where nearly all text lives.
const CACHED_BLOCKS: usize = 0x2_0000 >> 8;

static BLOCKS: [OnceLock<Box<[Fold]>>; CACHED_BLOCKS] = [const { OnceLock::new() }; CACHED_BLOCKS];

/// The fold of a non-ASCII character that is not kept as is.
pub(super) fn fold(c: char) -> Cow<'static, Fold> {
    let code = c as usize;
    match BLOCKS.get(code >> 8) {
        Some(cell) => {
            let block = cell.get_or_init(|| {
                let first = (code >> 8) << 8;
                (first..first + 256)
                    .map(|code| {
                        u32::try_from(code)
                            .ok()
                            .and_then(char::from_u32)
                            .map_or(Fold::Invisible, fold_uncached)
                    })
                    .collect()
            });
            match block.get(code & 0xFF) {
                Some(folded) => Cow::Borrowed(folded),
                None => Cow::Owned(fold_uncached(c)),
            }
        }
        None => Cow::Owned(fold_uncached(c)),
    }
}

/// Decancer's options: cure look-alikes, keep real writing systems and emoji.
fn confusable_options(c: char) -> Options {
    let keep_scripts = Options::default()
        .retain_chinese()
        .retain_japanese()
        .retain_korean()
        .retain_arabic()
        .retain_hebrew()
        .retain_devanagari()
        .retain_bengali()
        .retain_gujarati()
        .retain_tamil()
        .retain_thai()
        .retain_lao()
        .retain_burmese()
        .retain_khmer()
        .retain_mongolian();
    // Enclosed alphanumerics (🅰 🅱 ...) spell words; the other emoji do not, and a
    // smiley read as an `o` would only make false positives.
    if matches!(c as u32, 0x1F100..=0x1F1E5) {
        keep_scripts
    } else {
        keep_scripts.retain_emojis()
    }
}

fn fold_uncached(c: char) -> Fold {
    if is_invisible(c) {
        return Fold::Invisible;
    }
    if is_kept_as_is(c) {
        return Fold::One(c);
    }
    let mut out = String::new();
    decompose_compatible(c, |part| fold_part(part, &mut out));
    let mut chars = out.chars();
    match (chars.next(), chars.next()) {
        // A visible character that leaves nothing (a private-use glyph...) still
        // separates words.
        (None, _) => Fold::One(' '),
        (Some(one), None) => Fold::One(one),
        _ => Fold::Many(out.into_boxed_str()),
    }
}

/// Folds one character of a compatibility decomposition into `out`: lowercase,
/// then look-alikes.
fn fold_part(part: char, out: &mut String) {
    if is_invisible(part) {
        return;
    }
    // Full case folding, which plain lowercasing lacks; the look-alike table would
    // read ß as a b.
    if matches!(part, 'ß' | 'ẞ') {
        out.push_str("ss");
        return;
    }
    if part.is_ascii() {
        out.push(part.to_ascii_lowercase());
        return;
    }
    if is_kept_as_is(part) {
        push_folded(part, out);
        return;
    }
    // Decancer lowercases by itself, after looking up the capital: Greek `Η` looks
    // like `H`, its lowercase `η` like `n`.
    match decancer::cure_char(part, confusable_options(part)) {
        Translation::Character(cured) => push_lowercase(cured, out),
        Translation::String(cured) => cured.chars().for_each(|cured| push_lowercase(cured, out)),
        Translation::None => {}
    }
}

fn push_lowercase(c: char, out: &mut String) {
    for lower in c.to_lowercase() {
        if !is_invisible(lower) {
            push_folded(lower, out);
        }
    }
}

/// Pushes a folded character: ASCII as is (the ASCII table decides later), other
/// letters and digits as is, anything else (symbols, emoji, punctuation) as a space.
fn push_folded(c: char, out: &mut String) {
    if c.is_ascii() || c.is_alphanumeric() {
        out.push(c);
    } else if !out.ends_with(' ') {
        out.push(' ');
    }
}
