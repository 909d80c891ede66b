use super::*;

fn sine(n: usize, period: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (2.0 * std::f64::consts::PI * i as f64 / period).sin())
        .collect()
}

#[test]
fn a_pure_tone_is_one_imf() {
    let s = sine(200, 20.0);
    let d = Emd::default().decompose(&s).expect("decomposes");
    assert!(!d.imfs.is_empty());
    // The first IMF carries the tone: nearly all of the energy.
    let energy = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    assert!(energy(&d.imfs[0]) > 0.95 * energy(&s));
}

#[test]
fn a_monotonic_signal_is_all_residue() {
    let s: Vec<f64> = (0..50).map(|i| (i as f64).sqrt()).collect();
    let d = Emd::default().decompose(&s).expect("decomposes");
    assert!(d.imfs.is_empty());
    assert_eq!(d.residue, s);
}

#[test]
fn short_and_constant_signals_are_residue() {
    for s in [vec![], vec![1.0], vec![1.0, 2.0], vec![3.0; 40]] {
        let d = Emd::default().decompose(&s).expect("decomposes");
        assert!(d.imfs.is_empty());
        assert_eq!(d.residue, s);
    }
}

#[test]
fn refuses_non_finite_samples() {
    let mut s = sine(64, 8.0);
    s[10] = f64::NAN;
    assert!(Emd::default().decompose(&s).is_err());
    s[10] = f64::INFINITY;
    assert!(Emd::default().decompose(&s).is_err());
}

#[test]
fn plateaus_count_once_at_their_middle() {
    let e = extrema::find(&[0.0, 1.0, 3.0, 3.0, 3.0, 1.0, -1.0, -2.0, -2.0, 0.0, 1.0]);
    assert_eq!(e.maxima, vec![3]);
    assert_eq!(e.minima, vec![8]);
    // Crossings between 5 and 6, and the zero at 9.
    assert_eq!(e.zero_crossings, 3);
}

#[test]
fn max_imfs_leaves_the_rest_in_the_residue() {
    let s: Vec<f64> = sine(300, 7.0)
        .iter()
        .zip(sine(300, 50.0))
        .map(|(a, b)| a + b)
        .collect();
    let emd = Emd {
        max_imfs: 1,
        ..Emd::default()
    };
    let d = emd.decompose(&s).expect("decomposes");
    assert_eq!(d.imfs.len(), 1);
    for ((imf, rest), v) in d.imfs[0].iter().zip(&d.residue).zip(&s) {
        assert!((imf + rest - v).abs() < 1e-9);
    }
}
