//! Order selection: the number of differences `d` by repeated KPSS tests, then
//! `p` and `q` (and, for `d = 1`, whether there is a drift) by the smallest AIC
//! over a grid, as R's `auto.arima` and pmdarima
//! do (without their stepwise search: the grid is small enough to fit whole).

use serde::{Deserialize, Serialize};

use super::{ArimaFit, MAX_D, MAX_PQ, Order, difference, fit_from};
use crate::error::ScalingError;

/// The 5 % critical value of the KPSS level-stationarity statistic
/// (Kwiatkowski et al. 1992, table 1).
pub const KPSS_CRITICAL_5: f64 = 0.463;

/// The grid order selection searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionLimits {
    /// Largest `p` tried.
    pub max_p: usize,
    /// Largest `q` tried.
    pub max_q: usize,
    /// Largest `d` the KPSS tests may choose.
    pub max_d: usize,
}

impl Default for SelectionLimits {
    fn default() -> Self {
        Self {
            max_p: 2,
            max_q: 2,
            max_d: 2,
        }
    }
}

/// The chosen model and the AIC of every order tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The fit of the order with the smallest AIC.
    pub best: ArimaFit,
    /// Every order that could be fitted, with its AIC, in the order tried.
    pub tried: Vec<(Order, f64)>,
}

/// The KPSS statistic for level stationarity, with Bartlett weights over `lags`
/// autocovariances. Large values reject stationarity.
pub fn kpss_level(x: &[f64], lags: usize) -> f64 {
    let n = x.len();
    if n == 0 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let e: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let mut partial = 0.0;
    let eta: f64 = e
        .iter()
        .map(|v| {
            partial += v;
            partial * partial
        })
        .sum::<f64>()
        / (n as f64 * n as f64);
    let mut s = e.iter().map(|v| v * v).sum::<f64>();
    for k in 1..=lags.min(n.saturating_sub(1)) {
        let weight = 1.0 - k as f64 / (lags as f64 + 1.0);
        s += 2.0 * weight * (k..n).map(|t| e[t] * e[t - k]).sum::<f64>();
    }
    let s = s / n as f64;
    if s > 0.0 { eta / s } else { 0.0 }
}

/// The truncation lag of R's `tseries::kpss.test` with `lshort`:
/// `trunc(4 (n / 100)^{1/4})`.
pub fn short_lags(n: usize) -> usize {
    (4.0 * (n as f64 / 100.0).powf(0.25)).trunc() as usize
}

/// How many differences make the series level-stationary by the KPSS test at
/// 5 %, at most `max_d`; with the statistic of each test run.
pub fn ndiffs(series: &[f64], max_d: usize) -> (usize, Vec<f64>) {
    let mut x = series.to_vec();
    let mut d = 0;
    let mut stats = Vec::new();
    loop {
        let (lo, hi) = x
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if x.len() < 3 || hi - lo == 0.0 {
            break;
        }
        let stat = kpss_level(&x, short_lags(x.len()));
        stats.push(stat);
        if stat <= KPSS_CRITICAL_5 || d >= max_d {
            break;
        }
        d += 1;
        x = difference(&x, 1);
    }
    (d, stats)
}

/// Chooses `d` by [`ndiffs`], then fits every `(p, q)` of the grid and keeps the
/// smallest AIC.
pub fn select(series: &[f64], limits: SelectionLimits) -> Result<Selection, ScalingError> {
    let (d, _) = ndiffs(series, limits.max_d.min(MAX_D));
    let mut best: Option<ArimaFit> = None;
    let mut tried = Vec::new();
    let mut last_error = None;
    let (max_p, max_q) = (limits.max_p.min(MAX_PQ), limits.max_q.min(MAX_PQ));
    // With one difference, a drift is tried as well (R's auto.arima does the
    // same): without it a forecast of a ramp stays flat.
    let drifts: &[bool] = if d == 1 { &[false, true] } else { &[false] };
    for &drift in drifts {
        // Fits of the row above and of the cell to the left: the nested models
        // the next fit also starts from.
        let mut above: Vec<Option<ArimaFit>> = vec![None; max_q + 1];
        for p in 0..=max_p {
            let mut left: Option<ArimaFit> = None;
            for (q, above_q) in above.iter_mut().enumerate() {
                let order = if drift {
                    Order::with_drift(p, q)
                } else {
                    Order::new(p, d, q)
                };
                let nested: Vec<&ArimaFit> = [above_q.as_ref(), left.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let fitted = match fit_from(series, order, &nested) {
                    Ok(f) => {
                        tried.push((order, f.aic));
                        if best.as_ref().is_none_or(|b| f.aic < b.aic) {
                            best = Some(f.clone());
                        }
                        Some(f)
                    }
                    Err(e) => {
                        last_error = Some(e);
                        None
                    }
                };
                above_q.clone_from(&fitted);
                left = fitted;
            }
        }
    }
    match best {
        Some(best) => Ok(Selection { best, tried }),
        None => {
            Err(last_error
                .unwrap_or_else(|| ScalingError::Arima("no order could be fitted".into())))
        }
    }
}
