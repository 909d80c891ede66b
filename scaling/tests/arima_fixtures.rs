//! ARIMA against statsmodels (`statsmodels.tsa.arima.model.ARIMA`, default
//! settings, and `trend="t"` for the d = 1 models with drift): parameters,
//! log-likelihood, AIC and 95 % forecast intervals for fixed orders, and order selection (KPSS statistics, the AIC grid, the chosen
//! order), as `fixtures/make.py` recorded them.
//!
//! Tolerances, per fit: log-likelihood within 0.01 (both maximise the same
//! exact likelihood; their optimisers stop at slightly different points of a
//! flat optimum); coefficients within 0.02 (a flat optimum moves them more than
//! the likelihood; the mean or drift relative to the series' spread); forecasts
//! and interval ends within 0.5 % of the series' spread (standard deviation).
//! KPSS statistics within 1e-9 (no optimisation). Observed: log-likelihoods
//! within 3e-7, coefficients within 4e-5, forecasts within 1.1e-4 of the spread.

use chorus_scaling::arima::{self, Order, SelectionLimits, Z95, kpss_level, short_lags};
use serde_json::Value;

fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn spread(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn fits_match_statsmodels() {
    let fixture = load(include_str!("../fixtures/arima.json"));
    let horizon = fixture["horizon"].as_u64().expect("horizon") as usize;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let series = floats(&case["series"]);
        let o = floats(&case["order"]);
        let order = if case["drift"].as_bool() == Some(true) {
            Order::with_drift(o[0] as usize, o[2] as usize)
        } else {
            Order::new(o[0] as usize, o[1] as usize, o[2] as usize)
        };
        let got = arima::fit(&series, order).expect("fits");
        let fc = got.forecast(horizon);
        let scale = spread(&series);
        let want_params = &case["params"];
        let mut coef_diff = 0.0f64;
        for (g, w) in got.ar.iter().zip(floats(&want_params["ar"])) {
            coef_diff = coef_diff.max((g - w).abs());
        }
        for (g, w) in got.ma.iter().zip(floats(&want_params["ma"])) {
            coef_diff = coef_diff.max((g - w).abs());
        }
        if let (Some(g), Some(w)) = (got.mean, want_params["const"].as_f64()) {
            // The mean (d = 0) or the drift, relative to the series' spread.
            coef_diff = coef_diff.max((g - w).abs() / scale);
        }
        let llf_diff = (got.loglike - case["llf"].as_f64().expect("llf")).abs();
        let aic_diff = (got.aic - case["aic"].as_f64().expect("aic")).abs();
        let mut fc_diff = 0.0f64;
        for (got, want) in [
            (fc.mean.clone(), floats(&case["forecast"])),
            (fc.lower(Z95), floats(&case["lower95"])),
            (fc.upper(Z95), floats(&case["upper95"])),
        ] {
            for (g, w) in got.iter().zip(&want) {
                fc_diff = fc_diff.max((g - w).abs() / scale);
            }
        }
        report.push(format!(
            "{name}: llf {:.4} (Δ {llf_diff:.1e}), Δcoef {coef_diff:.1e}, Δforecast {fc_diff:.1e} of the spread",
            got.loglike
        ));
        if llf_diff > 0.01 || aic_diff > 0.02 || coef_diff > 0.02 || fc_diff > 0.005 {
            failures.push(format!("{name}: {got:?}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "differ from statsmodels:\n{}",
        failures.join("\n")
    );
}

#[test]
fn order_selection_matches_statsmodels() {
    let fixture = load(include_str!("../fixtures/selection.json"));
    for case in fixture["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let series = floats(&case["series"]);
        let want_kpss = floats(&case["kpss"]);
        let got_kpss = kpss_level(&series, short_lags(series.len()));
        assert!(
            (got_kpss - want_kpss[0]).abs() < 1e-9,
            "{name}: KPSS {got_kpss} vs {}",
            want_kpss[0]
        );
        let (d, stats) = arima::ndiffs(&series, 2);
        assert_eq!(d as u64, case["d"].as_u64().expect("d"), "{name}: d");
        for (g, w) in stats.iter().zip(&want_kpss) {
            assert!((g - w).abs() < 1e-9, "{name}: KPSS after differencing");
        }
        let selection = arima::select(&series, SelectionLimits::default()).expect("selects");
        for want in case["grid"].as_array().expect("grid") {
            let p = want["p"].as_u64().expect("p") as usize;
            let q = want["q"].as_u64().expect("q") as usize;
            let aic = want["aic"].as_f64().expect("aic");
            let got = selection
                .tried
                .iter()
                .find(|(o, _)| o.p == p && o.q == q && !o.drift)
                .map(|(_, aic)| *aic)
                .expect("every order of the grid fits");
            assert!(
                (got - aic).abs() < 0.02,
                "{name}: AIC of ({p}, {d}, {q}) {got} vs {aic}"
            );
        }
        let best = floats(&case["best"]);
        let want = Order::new(best[0] as usize, best[1] as usize, best[2] as usize);
        assert_eq!(selection.best.order, want, "{name}: chosen order");
    }
}
