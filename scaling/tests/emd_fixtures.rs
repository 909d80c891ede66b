//! EMD against PyEMD (`EMD-signal`): the IMFs and residue of fixed inputs, as
//! `fixtures/make.py` recorded them, under PyEMD's default Cauchy-type stopping
//! rule and under the S-number rule.
//!
//! Tolerance: every sample of every IMF and of the residue within 1e-6 of the
//! signal's range. Both sides run the same algorithm in double precision, so the
//! differences are rounding (observed: below 2e-15 of the range); a wrong
//! boundary rule, spline or stopping decision shows up as differences of order 1.

use chorus_scaling::emd::{Emd, Stop};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn fixture() -> Value {
    let text = include_str!("../fixtures/emd.json");
    serde_json::from_str(text).expect("fixtures/emd.json is JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

#[test]
fn imfs_match_pyemd() {
    let cases = fixture()["cases"].as_array().expect("cases").clone();
    assert!(cases.len() >= 8);
    let mut report = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let stop: Stop = serde_json::from_value(case["stop"].clone()).expect("a stop rule");
        let signal = floats(&case["signal"]);
        let want_imfs: Vec<Vec<f64>> = case["imfs"]
            .as_array()
            .expect("imfs")
            .iter()
            .map(floats)
            .collect();
        let want_residue = floats(&case["residue"]);
        let got = Emd {
            stop,
            ..Emd::default()
        }
        .decompose(&signal)
        .expect("decomposes");
        let range = signal.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - signal.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(got.imfs.len(), want_imfs.len(), "{name}: number of IMFs");
        let mut worst = 0.0f64;
        for (got, want) in got
            .imfs
            .iter()
            .chain([&got.residue])
            .zip(want_imfs.iter().chain([&want_residue]))
        {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                worst = worst.max((g - w).abs() / range);
            }
        }
        report.push(format!(
            "{name}: {} IMFs, worst {worst:.2e} of the range",
            want_imfs.len()
        ));
        assert!(
            worst < TOLERANCE,
            "{name}: differs from PyEMD by {worst:e} of the range"
        );
    }
    eprintln!("{}", report.join("\n"));
}
