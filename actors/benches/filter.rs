//! Sensitive-word filter throughput: a 5,000-word dictionary (half English-like,
//! half Chinese) over generated mixed Chinese/English chat messages, normalisation
//! included. Everything is generated from fixed seeds, so runs compare.
//!
//! `cargo bench -p chorus-actors --bench filter` runs each benchmark twice: under the
//! benchmarking thread's CPU time (`filter-cpu`, throughput on one core whatever else
//! the machine runs) and under the wall clock (`filter-wall`).

use std::collections::HashSet;
use std::hint::black_box;

use chorus_actors::moderation::{Filter, Policy, normalise};
use std::time::Duration;

use chorus_actors::moderation::Outcome;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};

/// Common Han characters, for dictionary words and chat text alike.
const HAN: &str = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音跑投据片胡热";

/// Words for the English part of the chat.
const ENGLISH: &[&str] = &[
    "the", "you", "ok", "lol", "game", "tonight", "see", "thanks", "good", "morning", "are", "we",
    "still", "on", "for", "dinner", "send", "me", "link", "please", "haha", "nice", "what", "time",
    "is", "it", "meeting", "moved", "to", "friday", "coffee", "later", "sure", "why", "not",
    "great", "idea", "happy", "birthday", "love", "this", "song",
];

const ZH_PUNCT: &[&str] = &["，", "。", "！", "？", "、", "……", "：", "～"];
const EMOJI: &[&str] = &["😂", "👍", "❤️", "🎉", "🙏", "😅"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &'a [&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

fn han(rng: &mut Rng, chars: &[char]) -> char {
    chars[rng.below(chars.len())]
}

/// 2,500 English-like words (2–4 syllables) and 2,500 Chinese words (2–4 characters).
fn dictionary(rng: &mut Rng) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "br", "ch", "d", "f", "g", "gr", "k", "kr", "m", "n", "p", "pl", "r", "s", "sh", "sk",
        "t", "tr", "v", "z",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "oo", "ai", "ou"];
    let chars: Vec<char> = HAN.chars().collect();
    let mut words = Vec::with_capacity(5_000);
    let mut seen = HashSet::new();
    while words.len() < 2_500 {
        let syllables = 2 + rng.below(3);
        let word: String = (0..syllables)
            .map(|_| format!("{}{}", rng.pick(ONSETS), rng.pick(VOWELS)))
            .collect();
        if seen.insert(normalise(&word)) {
            words.push(word);
        }
    }
    while words.len() < 5_000 {
        let len = 2 + rng.below(3);
        let word: String = (0..len).map(|_| han(rng, &chars)).collect();
        if seen.insert(normalise(&word)) {
            words.push(word);
        }
    }
    words
}

/// Chat messages of 20–200 bytes: Chinese, English or both, with punctuation,
/// emoji and numbers; about one in fifty carries a dictionary word.
fn messages(
    rng: &mut Rng,
    words: &[String],
    chinese: u32,
    english: u32,
    total: usize,
) -> Vec<String> {
    let chars: Vec<char> = HAN.chars().collect();
    let mut out = Vec::new();
    let mut size = 0;
    while size < total {
        let target = 20 + rng.below(180);
        let mut message = String::new();
        while message.len() < target {
            let roll = rng.below(100) as u32;
            if roll < chinese {
                for _ in 0..2 + rng.below(8) {
                    message.push(han(rng, &chars));
                }
                message.push_str(rng.pick(ZH_PUNCT));
            } else if roll < chinese + english {
                message.push_str(rng.pick(ENGLISH));
                message.push(' ');
            } else if roll < 98 {
                message.push_str(rng.pick(EMOJI));
                message.push_str(&rng.below(1000).to_string());
                message.push(' ');
            } else {
                message.push_str(&words[rng.below(words.len())]);
                message.push(' ');
            }
        }
        size += message.len();
        out.push(message);
    }
    out
}

/// The benchmarks, under one clock.
fn bench_filter<M: Measurement + 'static>(c: &mut Criterion<M>, clock: &str) {
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let words = dictionary(&mut rng);
    let filter = Filter::build(words.iter().map(String::as_str), ["classic", "assassin"])
        .expect("generated dictionary");
    assert_eq!(filter.size(), words.len());
    let corpora = [
        ("mixed", messages(&mut rng, &words, 55, 35, 1 << 20)),
        ("chinese", messages(&mut rng, &words, 95, 0, 1 << 20)),
        ("english", messages(&mut rng, &words, 0, 95, 1 << 20)),
    ];

    let mut group = c.benchmark_group(format!("filter-{clock}"));
    for (name, corpus) in &corpora {
        let bytes: usize = corpus.iter().map(String::len).sum();
        group.throughput(Throughput::BytesDecimal(bytes as u64));
        group.bench_function(format!("check/{name}"), |b| {
            b.iter(|| {
                corpus
                    .iter()
                    .map(|m| filter.check(black_box(m)).hits.len())
                    .sum::<usize>()
            })
        });
    }
    let (_, mixed) = &corpora[0];
    let bytes: usize = mixed.iter().map(String::len).sum();
    group.throughput(Throughput::BytesDecimal(bytes as u64));
    group.bench_function("apply-mask/mixed", |b| {
        b.iter(|| {
            mixed
                .iter()
                .filter(|m| matches!(filter.apply(Policy::Mask, black_box(m)), Outcome::Masked(_)))
                .count()
        })
    });
    group.bench_function("normalise-only/mixed", |b| {
        b.iter(|| {
            mixed
                .iter()
                .map(|m| normalise(black_box(m)).len())
                .sum::<usize>()
        })
    });
    group.finish();

    c.bench_function(&format!("build-{clock}/5000-words"), |b| {
        b.iter(|| Filter::build(words.iter().map(String::as_str), ["classic"]).map(|f| f.size()))
    });
}

/// CPU time of the benchmarking thread. On a shared machine the wall clock also
/// counts the time other processes held the core, which says nothing about the
/// filter; this is the "MB/s on one core" figure.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }

    fn end(&self, started: ThreadTime) -> Duration {
        started.elapsed()
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds as times and decimal MB/s.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns (cpu)"),
            t if t < 1e6 => (1e-3, "µs (cpu)"),
            t if t < 1e9 => (1e-6, "ms (cpu)"),
            _ => (1e-9, "s (cpu)"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, unit) = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64 / 1e6, "MB/s (cpu)"),
            Throughput::Bits(n) => (n as f64 / 1e6, "Mbit/s (cpu)"),
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, "elem/s (cpu)")
            }
        };
        values
            .iter_mut()
            .for_each(|ns| *ns = per_iteration * 1e9 / *ns);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn main() {
    let mut cpu = Criterion::default()
        .with_measurement(ThreadCpu)
        .sample_size(20)
        .configure_from_args();
    bench_filter(&mut cpu, "cpu");
    let mut wall = Criterion::default().sample_size(20).configure_from_args();
    bench_filter(&mut wall, "wall");
    wall.final_summary();
}
