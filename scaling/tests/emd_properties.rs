//! Properties of every decomposition, on many seeded random signals (tones of
//! random periods and amplitudes, a trend, noise, flat runs from rounding):
//!
//! 1. The IMFs and the residue sum to the input (to rounding).
//! 2. Each IMF's extrema and zero crossings differ by at most one (both stop
//!    rules require it of the IMFs they accept).

use chorus_scaling::emd::{Emd, Shape, Stop};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn signal(rng: &mut StdRng) -> Vec<f64> {
    let n = rng.random_range(40..600);
    let tones: Vec<(f64, f64, f64)> = (0..rng.random_range(1..5))
        .map(|_| {
            (
                rng.random_range(3.0..120.0),
                rng.random_range(0.1..10.0),
                rng.random_range(0.0..6.3),
            )
        })
        .collect();
    let trend = rng.random_range(-0.05..0.05);
    let noise = rng.random_range(0.0..1.0);
    let offset = rng.random_range(-100.0..1000.0);
    // Some signals are whole numbers, as connection counts are: flat runs.
    let round = rng.random_bool(0.3);
    (0..n)
        .map(|i| {
            let t = i as f64;
            let v = offset
                + trend * t
                + tones
                    .iter()
                    .map(|(period, amp, phase)| {
                        amp * (2.0 * std::f64::consts::PI * t / period + phase).sin()
                    })
                    .sum::<f64>()
                + noise * rng.random_range(-1.0..1.0);
            if round { v.round() } else { v }
        })
        .collect()
}

fn check(stop: Stop, seeds: std::ops::Range<u64>) {
    let emd = Emd {
        stop,
        ..Emd::default()
    };
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = signal(&mut rng);
        let d = emd.decompose(&s).expect("decomposes");
        let scale = s.iter().map(|v| v.abs()).fold(1.0, f64::max);
        for i in 0..s.len() {
            let sum: f64 = d.imfs.iter().map(|imf| imf[i]).sum::<f64>() + d.residue[i];
            assert!(
                (sum - s[i]).abs() <= 1e-9 * scale,
                "seed {seed}: components sum to {sum}, the input is {}",
                s[i]
            );
        }
        for (k, imf) in d.imfs.iter().enumerate() {
            let shape = Shape::of(imf);
            assert!(shape.is_imf(), "seed {seed}: IMF {k} has shape {shape:?}");
        }
    }
}

#[test]
fn cauchy_rule_components_sum_to_the_input_and_are_imfs() {
    check(Stop::CAUCHY_DEFAULT, 0..150);
}

#[test]
fn s_number_components_sum_to_the_input_and_are_imfs() {
    check(Stop::SNumber { s: 4 }, 1000..1150);
}
