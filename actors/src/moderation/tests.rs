//! Unit tests of normalisation, matching rules, masking and word lists.

use super::*;

fn filter(words: &[&str], allow: &[&str]) -> Filter {
    Filter::build(words.iter().copied(), allow.iter().copied()).expect("test lists are valid")
}

fn words_found(filter: &Filter, text: &str) -> Vec<String> {
    filter
        .check(text)
        .hits
        .iter()
        .map(|hit| hit.word.to_string())
        .collect()
}

#[test]
fn normalises_case_width_and_look_alikes() {
    assert_eq!(normalise("HeLLo"), "heiio");
    assert_eq!(normalise("ＳＨＩＴ"), "shit");
    assert_eq!(normalise("ѕһіт"), "shit");
    assert_eq!(normalise("ⓢⓗⓘⓣ"), "shit");
    assert_eq!(normalise("𝐬𝐡𝐢𝐭"), "shit");
    assert_eq!(normalise("ｓｈｉｔ"), "shit");
    assert_eq!(normalise("fück"), "fuck");
    assert_eq!(normalise("Straße"), "strasse");
    assert_eq!(normalise("ﬁne"), "fine");
}

#[test]
fn removes_separators_and_invisible_characters() {
    assert_eq!(normalise("s h.i-t"), "shit");
    assert_eq!(
        normalise("s\u{200B}h\u{200C}i\u{200D}t\u{2060}\u{FEFF}"),
        "shit"
    );
    assert_eq!(normalise("s\u{00AD}h\u{FE0F}i\u{0301}t"), "shit");
    assert_eq!(normalise("法 轮·功"), "法轮功");
    assert_eq!(normalise("法\u{200B}轮，功！"), "法轮功");
}

#[test]
fn keeps_cjk_and_other_writing_systems() {
    assert_eq!(normalise("你好，世界"), "你好世界");
    assert_eq!(normalise("안녕하세요"), "안녕하세요");
    assert_eq!(normalise("שלום"), "שלום");
    assert_eq!(normalise("สวัสดี"), normalise("สวัสดี"));
    assert_eq!(normalise("⼈"), "人");
    // Half-width katakana and voicing marks fold like their full-width forms.
    assert_eq!(normalise("ｶﾞｰﾑ"), normalise("ガーム"));
    assert_eq!(normalise("１２３\u{3000}ＡＢＣ"), "123abc");
}

#[test]
fn leetspeak_only_in_tokens_that_are_mostly_letters() {
    assert_eq!(normalise("sh1t"), "shit");
    assert_eq!(normalise("@ss"), "ass");
    assert_eq!(normalise("$h!t"), "shit");
    assert_eq!(normalise("h4x0r"), "haxor");
    assert_eq!(normalise("455"), "455");
    assert_eq!(normalise("1337"), "1337");
    assert_eq!(normalise("5h1t"), "shit");
    assert_eq!(normalise("A$5"), "a5");
    assert_eq!(normalise("2024年"), "2024年");
    assert_eq!(normalise("价格455元"), "价格455元");
    assert_eq!(normalise("wow!!"), "wow");
    assert_eq!(normalise("!hey"), "hey");
}

#[test]
fn finds_words_through_disguises() {
    let f = filter(&["shit", "法轮功"], &[]);
    for text in [
        "shit",
        "oh S H I T!",
        "s.h.i.t",
        "ＳＨＩＴ",
        "ѕһіт happens",
        "sh1t",
        "s\u{200B}hit",
        "bullshit",
        "学习法轮功",
        "法 轮 功",
        "法*轮*功好",
        "f@ke $h!t",
        "s@h@i@t",
    ] {
        assert_eq!(words_found(&f, text).len(), 1, "{text:?} must be caught");
    }
}

#[test]
fn separated_matches_must_be_whole_words() {
    let f = filter(&["shit", "asshole"], &[]);
    assert!(f.check("this hit the spot").is_clean());
    assert!(f.check("glass hole").is_clean());
    assert_eq!(words_found(&f, "an ass hole"), ["asshole"]);
    assert_eq!(words_found(&f, "s hit"), ["shit"]);
}

#[test]
fn shorter_word_when_the_longest_is_not_whole() {
    let f = filter(&["ass", "assam"], &[]);
    // `ass am...` joins up to `assam` across a space, glued to `amazing`.
    assert_eq!(words_found(&f, "ass amazing"), ["ass"]);
}

#[test]
fn allow_list_protects_words_that_contain_dictionary_words() {
    let f = filter(&["ass"], &["class", "assassin", "Massachusetts"]);
    assert!(f.check("first class").is_clean());
    assert!(f.check("the ASSASSIN came").is_clean());
    assert!(f.check("massachusetts").is_clean());
    assert_eq!(words_found(&f, "class ass"), ["ass"]);
    assert_eq!(words_found(&f, "classass"), ["ass"]);
    // An allow-listed word only protects when written as a word.
    assert_eq!(words_found(&f, "cl ass"), ["ass"]);
}

#[test]
fn mask_replaces_exactly_the_matched_characters() {
    let f = filter(&["shit", "法轮功"], &[]);
    assert_eq!(f.mask("clean text"), None);
    assert_eq!(f.mask("oh s.h.i.t!").as_deref(), Some("oh *******!"));
    assert_eq!(f.mask("ＳＨＩＴ好").as_deref(), Some("****好"));
    assert_eq!(f.mask("我学法 轮 功了").as_deref(), Some("我学*****了"));
    assert_eq!(f.mask("s\u{200B}hit shit").as_deref(), Some("***** ****"));
    let f = filter(&["fine"], &[]);
    // The ligature is one original character: masked as one.
    assert_eq!(f.mask("ﬁne day").as_deref(), Some("*** day"));
}

#[test]
fn hits_report_original_ranges_and_words() {
    let f = filter(&["Shit"], &[]);
    let verdict = f.check("ah ｓｈｉｔ");
    assert_eq!(verdict.hits.len(), 1);
    assert_eq!(verdict.hits[0].range, 3..15);
    assert_eq!(&*verdict.hits[0].word, "Shit");
}

#[test]
fn empty_dictionary_is_a_no_op() {
    let f = filter(&[], &[]);
    assert_eq!(f.size(), 0);
    assert!(f.check("anything at all").is_clean());
    assert_eq!(f.apply(Policy::Reject, "anything"), Outcome::Clean);
}

#[test]
fn duplicates_after_normalisation_count_once() {
    let f = filter(&["shit", "SHIT", "s h i t", "ｓｈｉｔ"], &[]);
    assert_eq!(f.size(), 1);
}

#[test]
fn words_that_normalise_to_nothing_are_refused_with_their_line() {
    let err = Filter::build(["ok", "fine", "!!!"], []).expect_err("`!!!` is empty");
    match err {
        FilterError::EmptyWord { list, line, word } => {
            assert_eq!((list.as_str(), line, word.as_str()), ("words", 3, "!!!"));
        }
        other => panic!("unexpected {other}"),
    }
    let err = Filter::build(["ok"], ["\u{200B}"]).expect_err("zero-width only");
    assert!(err.to_string().starts_with("allow:1:"), "{err}");
}

#[test]
fn word_list_file_format() {
    let list = WordList::parse(
        "w.txt",
        "\u{FEFF}# comment\n\nshit\n  法轮功  \n   # indented comment\r\nbad word\r\n",
    );
    let entries: Vec<_> = list
        .entries()
        .iter()
        .map(|e| (e.line, e.word.as_str()))
        .collect();
    assert_eq!(entries, [(3, "shit"), (4, "法轮功"), (6, "bad word")]);
}

#[test]
fn apply_masks_or_rejects() {
    let f = filter(&["shit"], &[]);
    assert_eq!(f.apply(Policy::Mask, "no"), Outcome::Clean);
    assert_eq!(
        f.apply(Policy::Mask, "oh shit"),
        Outcome::Masked("oh ****".to_owned())
    );
    assert_eq!(f.apply(Policy::Reject, "oh shit"), Outcome::Rejected);
    assert_eq!("reject".parse(), Ok(Policy::Reject));
    assert!("drop".parse::<Policy>().is_err());
}

#[test]
fn moderation_versions_and_reload_failures() {
    let dir = tempfile::tempdir().expect("temp dir");
    let words = dir.path().join("words.txt");
    std::fs::write(&words, "apple\n").expect("write");
    let moderation = Moderation::from_files(&words, None).expect("valid list");
    assert_eq!((moderation.version(), moderation.size()), (1, 1));
    assert_eq!(moderation.check("an apple").version, 1);

    std::fs::write(&words, "apple\nbanana\n# fruit\n").expect("write");
    let report = moderation
        .reload_from_files(&words, None)
        .expect("valid list");
    assert_eq!((report.version, report.words), (2, 2));

    std::fs::write(&words, "apple\n...\n").expect("write");
    let err = moderation
        .reload_from_files(&words, None)
        .expect_err("line 2 is empty");
    assert!(
        matches!(err, FilterError::EmptyWord { line: 2, .. }),
        "{err}"
    );
    std::fs::write(&words, b"apple\n\xff\n").expect("write");
    let err = moderation
        .reload_from_files(&words, None)
        .expect_err("not UTF-8");
    assert!(matches!(err, FilterError::NotUtf8 { line: 2, .. }), "{err}");
    let err = moderation
        .reload_from_files(&dir.path().join("missing.txt"), None)
        .expect_err("missing");
    assert!(matches!(err, FilterError::Read { .. }), "{err}");
    // The last good filter is still in use.
    assert_eq!((moderation.version(), moderation.size()), (2, 2));
    assert!(!moderation.check("banana split").is_clean());
}

#[test]
fn byte_level_run_detection_agrees_with_the_character_ranges() {
    let samples = (0x80..0x1_0000).chain((0x1_0000..0x4_0000).step_by(97));
    for c in samples.filter_map(char::from_u32) {
        let mut buf = [0; 4];
        let encoded = c.encode_utf8(&mut buf).as_bytes();
        let expected = if fold::is_kept_as_is(c) {
            encoded.len()
        } else {
            0
        };
        assert_eq!(
            normalise::kept_run_len(encoded),
            expected,
            "U+{:04X}",
            c as u32
        );
    }
}
