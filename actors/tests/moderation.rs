//! The sensitive-word filter as a caller sees it: dictionary words are caught
//! through disguises, masks cover exactly the original characters, allow-listed
//! words pass, and reloads under load are atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chorus_actors::moderation::{Filter, Moderation, normalise};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Han characters dictionary words are made of; none appears in a context below.
const HAN: &str = "法轮功暴力恐怖色情赌博毒品枪支诈骗传销邪教反动分裂抗议游行示威罢工屠杀迫害贪污腐败黑社洗钱翻墙代开发票";

const EN_PREFIXES: &[&str] = &["", "hey ", "你好，", "ok... ", "lol: ", "(", "「", "2024 "];
const EN_SUFFIXES: &[&str] = &["", " man", "!", "。", " 好的", "?!", ")", " 100%"];
const ZH_PREFIXES: &[&str] = &["", "我们", "hey ", "说：", "（", "嗯……"];
const ZH_SUFFIXES: &[&str] = &["", "了吧", " ok", "！", "。", "呢?"];

/// What may be inserted between two characters of a word.
const INSERTS: &[&str] = &[
    " ", "  ", ".", "-", "_", "*", "~", "#", "/", "、", "，", "·", "\u{3000}", "@", "$", "!", "|",
    "😀", "\u{200B}", "\u{200C}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{00AD}", "\u{FE0F}",
    "\u{034F}",
];

/// Invisible characters: they do not split a word, so leetspeak still applies.
const INVISIBLE: &[&str] = &[
    "\u{200B}", "\u{200C}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{00AD}",
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Look-alikes of a lowercase letter from other scripts and compatibility blocks.
fn look_alikes(letter: char) -> Vec<char> {
    let offset = letter as u32 - 'a' as u32;
    let mut out: Vec<char> = [0xFF41, 0xFF21, 0x24D0, 0x1D41A, 0x1D5EE]
        .iter()
        .filter_map(|base| char::from_u32(base + offset))
        .collect();
    let scripts: &[char] = match letter {
        'a' => &['а', 'А', 'Α'],
        'b' => &['В', 'Β'],
        'c' => &['с', 'С'],
        'd' => &['ԁ'],
        'e' => &['е', 'Е', 'Ε'],
        'h' => &['һ', 'Н', 'Η'],
        'i' => &['і', 'Ι', 'ı'],
        'j' => &['ј'],
        'k' => &['К', 'Κ', 'κ'],
        'l' => &['ӏ', 'I'],
        'm' => &['М', 'Μ'],
        'n' => &['Ν', 'η'],
        'o' => &['о', 'О', 'ο', 'Ο'],
        'p' => &['р', 'Р', 'Ρ'],
        's' => &['ѕ'],
        't' => &['Т', 'Τ', 'τ'],
        'u' => &['υ'],
        'v' => &['ν'],
        'x' => &['х', 'Х', 'Χ'],
        'y' => &['у', 'Υ'],
        'z' => &['Ζ'],
        _ => &[],
    };
    out.extend_from_slice(scripts);
    out
}

fn leet(letter: char) -> &'static [&'static str] {
    match letter {
        'a' => &["4", "@"],
        'e' => &["3"],
        'i' => &["1", "!"],
        'l' => &["1", "|"],
        'o' => &["0"],
        's' => &["5", "$"],
        't' => &["7"],
        _ => &[],
    }
}

/// A small deterministic generator for the mutation choices of one case.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.roll(items.len())]
    }
}

/// Disguises an English word. Either spaced out (separators, symbols, invisible
/// characters inserted) or in leetspeak (fewer than half the letters replaced,
/// only invisible characters inserted); in both, any letter may change case, width
/// or script.
fn disguise_english(word: &str, dice: &mut Dice) -> String {
    let spaced = dice.roll(2) == 0;
    let letters: Vec<char> = word.chars().collect();
    let mut leet_budget = letters.len().saturating_sub(1) / 2;
    let mut out = String::new();
    for (i, &letter) in letters.iter().enumerate() {
        if i > 0 {
            let inserts = if spaced { INSERTS } else { INVISIBLE };
            for _ in 0..dice.roll(3) {
                out.push_str(dice.pick(inserts));
            }
        }
        match dice.roll(6) {
            0 if !spaced && leet_budget > 0 && !leet(letter).is_empty() => {
                leet_budget -= 1;
                let choices = leet(letter);
                // `!` and `|` are letters only inside a word.
                let inside = i > 0 && i + 1 < letters.len();
                let choices = if inside { choices } else { &choices[..1] };
                out.push_str(dice.pick(choices));
            }
            1 | 2 => out.push(dice.pick(&look_alikes(letter))),
            3 => out.extend(letter.to_uppercase()),
            _ => out.push(letter),
        }
    }
    out
}

/// Disguises a Chinese word: separators, symbols and invisible characters between
/// its characters.
fn disguise_chinese(word: &str, dice: &mut Dice) -> String {
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if i > 0 {
            for _ in 0..dice.roll(3) {
                out.push_str(dice.pick(INSERTS));
            }
        }
        out.push(c);
    }
    out
}

fn english_word() -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..26, 4..9)
        .prop_map(|letters| letters.into_iter().map(|l| char::from(b'a' + l)).collect())
}

fn chinese_word() -> impl Strategy<Value = String> {
    let han: Vec<char> = HAN.chars().collect();
    prop::collection::vec(prop::sample::select(han), 2..5)
        .prop_map(|chars| chars.into_iter().collect())
}

fn dictionary() -> impl Strategy<Value = Vec<String>> {
    (
        prop::collection::vec(english_word(), 1..15),
        prop::collection::vec(chinese_word(), 1..15),
    )
        .prop_map(|(mut en, zh)| {
            en.extend(zh);
            en
        })
}

/// A text with one disguised dictionary word, and the byte range of that word.
struct Case {
    text: String,
    span: std::ops::Range<usize>,
    prefix: &'static str,
    suffix: &'static str,
}

fn disguised_in_context(word: &str, seed: u64) -> Case {
    let mut dice = Dice(seed);
    let chinese = !word.is_ascii();
    let (disguised, prefixes, suffixes) = if chinese {
        (disguise_chinese(word, &mut dice), ZH_PREFIXES, ZH_SUFFIXES)
    } else {
        (disguise_english(word, &mut dice), EN_PREFIXES, EN_SUFFIXES)
    };
    let prefix = dice.pick(prefixes);
    let suffix = dice.pick(suffixes);
    Case {
        text: format!("{prefix}{disguised}{suffix}"),
        span: prefix.len()..prefix.len() + disguised.len(),
        prefix,
        suffix,
    }
}

proptest! {
    #![proptest_config(config(768))]

    /// Every dictionary word, however disguised, is caught, and each of its
    /// characters is masked.
    #[test]
    fn disguised_words_are_caught(words in dictionary(), pick in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let filter = Filter::build(words.iter().map(String::as_str), []).expect("generated words are valid");
        let word = pick.get(&words);
        let case = disguised_in_context(word, seed);
        let masked = filter.mask(&case.text);
        prop_assert!(masked.is_some(), "{word:?} not caught in {:?} (normalised {:?})", case.text, normalise(&case.text));
        let masked = masked.unwrap_or_default();
        prop_assert_eq!(masked.chars().count(), case.text.chars().count());
        let span_chars = case.text[case.span.clone()].chars().count();
        let before = case.text[..case.span.start].chars().count();
        prop_assert!(
            masked.chars().skip(before).take(span_chars).all(|c| c == '*'),
            "{:?} masked as {:?}", case.text, masked
        );
    }

    /// With the word alone in the dictionary, the mask covers exactly the word's
    /// original characters, from its first to its last, and nothing else changes.
    #[test]
    fn mask_covers_exactly_the_match(word in prop_oneof![english_word(), chinese_word()], seed in any::<u64>()) {
        let case = disguised_in_context(&word, seed);
        prop_assume!(!normalise(case.prefix).contains(&normalise(&word)));
        prop_assume!(!normalise(case.suffix).contains(&normalise(&word)));
        let filter = Filter::build([word.as_str()], []).expect("generated word is valid");
        let verdict = filter.check(&case.text);
        prop_assert_eq!(verdict.hits.len(), 1, "{:?}", case.text);
        prop_assert_eq!(verdict.hits[0].range.clone(), case.span.clone(), "{:?}", case.text);
        let stars = "*".repeat(case.text[case.span.clone()].chars().count());
        let expected = format!("{}{}{}", case.prefix, stars, case.suffix);
        prop_assert_eq!(filter.mask(&case.text), Some(expected));
    }

    /// A word inside an allow-listed word is not flagged; alone it still is.
    #[test]
    fn allow_listed_superstrings_pass(
        word in prop_oneof![english_word(), chinese_word()],
        before in prop_oneof![english_word(), chinese_word()],
        after in prop_oneof![english_word(), chinese_word()],
        shape in 0usize..3,
        upper in any::<bool>(),
    ) {
        let (before, after) = match shape {
            0 => (before.as_str(), ""),
            1 => ("", after.as_str()),
            _ => (before.as_str(), after.as_str()),
        };
        let allowed = format!("{before}{word}{after}");
        let filter = Filter::build([word.as_str()], [allowed.as_str()]).expect("generated words are valid");
        let written = if upper { allowed.to_uppercase() } else { allowed.clone() };
        let text = format!("so {written}, ok");
        prop_assert!(filter.check(&text).is_clean(), "{text:?} flagged with {allowed:?} allowed");
        let alone = format!("so {word}, ok");
        prop_assert!(!filter.check(&alone).is_clean(), "{alone:?} not flagged");
    }
}

/// Full-width forms, mathematical letters and look-alikes of every letter fold to it.
#[test]
fn every_look_alike_folds_to_its_letter() {
    for letter in 'a'..='z' {
        let expected = normalise(&letter.to_string());
        for alike in look_alikes(letter) {
            assert_eq!(
                normalise(&alike.to_string()),
                expected,
                "{alike:?} (U+{:04X}) for {letter}",
                alike as u32
            );
        }
    }
}

/// Readers filtering in a loop while another thread reloads many times never see
/// a mix of versions: version A flags only `alphaword`, version B only `bravoword`,
/// and each check uses exactly one of them.
#[test]
fn reload_under_concurrent_filtering_is_atomic() {
    const RELOADS: u64 = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let list_a = dir.path().join("a.txt");
    let list_b = dir.path().join("b.txt");
    std::fs::write(&list_a, "# version A\nalphaword\n").expect("write list");
    std::fs::write(&list_b, "# version B\nbravoword\n").expect("write list");
    let moderation = Arc::new(Moderation::from_files(&list_a, None).expect("valid list"));
    assert_eq!(moderation.version(), 1);

    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (moderation, done, checks) = (
                Arc::clone(&moderation),
                Arc::clone(&done),
                Arc::clone(&checks),
            );
            std::thread::spawn(move || {
                let text = "x ALPHA word and b.r.a.v.o.w.o.r.d y";
                let mut last_version = 0;
                while !done.load(Ordering::Acquire) {
                    let verdict = moderation.check(text);
                    assert_eq!(verdict.hits.len(), 1, "one word per version: {verdict:?}");
                    let expected = if verdict.version % 2 == 1 {
                        "alphaword"
                    } else {
                        "bravoword"
                    };
                    assert_eq!(
                        &*verdict.hits[0].word, expected,
                        "version {}",
                        verdict.version
                    );
                    assert!(verdict.version >= last_version, "versions go forward");
                    last_version = verdict.version;
                    let masked = moderation.mask(text).expect("one word is always there");
                    assert_eq!(masked.chars().count(), text.chars().count());
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut checks_during_reloads = 0;
    for reload in 0..RELOADS {
        let before = checks.load(Ordering::Relaxed);
        let list = if reload % 2 == 0 { &list_b } else { &list_a };
        let report = moderation
            .reload_from_files(list, None)
            .expect("valid list");
        assert_eq!(report.version, reload + 2);
        assert_eq!(report.words, 1);
        if checks.load(Ordering::Relaxed) > before {
            checks_during_reloads += 1;
        }
    }
    // A bad list in the middle of it all changes nothing.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "alphaword\n***\n").expect("write list");
    assert!(moderation.reload_from_files(&bad, None).is_err());
    done.store(true, Ordering::Release);
    for reader in readers {
        reader
            .join()
            .expect("reader saw one consistent filter per check");
    }
    assert_eq!(moderation.version(), RELOADS + 1);
    assert!(
        checks.load(Ordering::Relaxed) > RELOADS,
        "readers kept filtering"
    );
    assert!(
        checks_during_reloads > 0,
        "readers made progress while reloads ran"
    );
}
