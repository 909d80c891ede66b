//! ARIMA(p, d, q) fitted by exact maximum likelihood, with forecasts and their
//! variances, and automatic order selection.
//!
//! Written here after testing the maintained crates the issue names (see
//! `docs/scaling.md`): `anofox-forecast` 0.19 clamps each coefficient to ±0.99
//! instead of keeping the model stationary, and its ARMA(2, 1) on WWWusage
//! forecasts an explosion; `chronos-ts` 0.1 adds a drift to every d = 1 model
//! and its ARMA(2, 1) on WWWusage forecasts 10³¹. Neither matches statsmodels.
//!
//! The model, in statsmodels' conventions (its `ARIMA` class with default
//! settings, which the fixtures come from): difference the series `d` times into
//! `w`; for `d = 0` subtract a mean `μ` (estimated); `w` is a zero-mean
//! stationary, invertible ARMA(p, q):
//! `w_t = Σ φ_i w_{t−i} + e_t + Σ θ_j e_{t−j}`, `e_t ~ N(0, σ²)`.
//! For `d > 0` there is no constant, so forecasts do not drift.
//!
//! - `kalman`: the exact likelihood and the filter's final state.
//! - `params`: the stationarity / invertibility map the optimiser works in.
//! - `optim`: BFGS.
//! - `select`: the KPSS test for `d`, the AIC grid for `p` and `q`.

mod kalman;
mod optim;
mod params;
mod select;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use select::{
    KPSS_CRITICAL_5, Selection, SelectionLimits, kpss_level, ndiffs, select, short_lags,
};

use crate::error::ScalingError;
use kalman::Arma;

/// Largest `p` or `q` a fit accepts (the state has `max(p, q + 1)` entries).
pub const MAX_PQ: usize = 5;
/// Largest `d`.
pub const MAX_D: usize = 2;
/// Longest series a fit accepts; the node fits windows of a few hundred samples.
pub const MAX_SERIES: usize = 100_000;

/// The 97.5 % quantile of the standard normal: 95 % intervals.
pub const Z95: f64 = 1.959_963_984_540_054;

/// An ARIMA order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Order {
    /// Autoregressive terms.
    pub p: usize,
    /// Differences.
    pub d: usize,
    /// Moving-average terms.
    pub q: usize,
    /// With `d = 1`: the differences have a mean, a drift the forecast keeps
    /// (statsmodels' `trend="t"`, R's `include.drift`). Ignored otherwise.
    #[serde(default)]
    pub drift: bool,
}

impl Order {
    /// `(p, d, q)`, without drift.
    pub const fn new(p: usize, d: usize, q: usize) -> Self {
        Self {
            p,
            d,
            q,
            drift: false,
        }
    }

    /// `(p, 1, q)` with drift.
    pub const fn with_drift(p: usize, q: usize) -> Self {
        Self {
            p,
            d: 1,
            q,
            drift: true,
        }
    }

    /// Whether the model estimates a mean: of the series for `d = 0`, of its
    /// differences (the drift) for `d = 1` with drift.
    fn has_mean(&self) -> bool {
        self.d == 0 || (self.d == 1 && self.drift)
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {})", self.p, self.d, self.q)?;
        if self.drift && self.d == 1 {
            write!(f, " with drift")?;
        }
        Ok(())
    }
}

/// A fitted model: its estimates, and the end of the series it forecasts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArimaFit {
    /// The order.
    pub order: Order,
    /// The mean (`d = 0`), or the drift (`d = 1` with drift).
    pub mean: Option<f64>,
    /// AR coefficients `φ_1 … φ_p`.
    pub ar: Vec<f64>,
    /// MA coefficients `θ_1 … θ_q`.
    pub ma: Vec<f64>,
    /// Innovation variance `σ²`.
    pub sigma2: f64,
    /// Log-likelihood at the estimates.
    pub loglike: f64,
    /// Akaike's information criterion: `−2 loglike + 2 k`, `k` counting the
    /// coefficients, the mean and `σ²` (as statsmodels does).
    pub aic: f64,
    /// The last `d` observations, newest first: the integration's start.
    last: Vec<f64>,
    /// The estimates in the optimiser's free coordinates: where fits of larger
    /// orders start from.
    #[serde(skip)]
    free: Vec<f64>,
    /// The filter's predicted ARMA state for the first step ahead.
    next_state: Vec<f64>,
    /// Its covariance (for `σ² = 1`), row-major.
    next_cov: Vec<f64>,
}

/// Forecasts of one model or of a sum of components: means and variances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Expected value 1, 2, … steps ahead.
    pub mean: Vec<f64>,
    /// Variance of the forecast error at each step.
    pub variance: Vec<f64>,
}

impl Forecast {
    /// The lower end of the central interval with normal quantile `z`.
    pub fn lower(&self, z: f64) -> Vec<f64> {
        self.mean
            .iter()
            .zip(&self.variance)
            .map(|(m, v)| m - z * v.max(0.0).sqrt())
            .collect()
    }

    /// The upper end of the central interval with normal quantile `z`.
    pub fn upper(&self, z: f64) -> Vec<f64> {
        self.mean
            .iter()
            .zip(&self.variance)
            .map(|(m, v)| m + z * v.max(0.0).sqrt())
            .collect()
    }
}

/// The series differenced `d` times.
pub fn difference(series: &[f64], d: usize) -> Vec<f64> {
    let mut w = series.to_vec();
    for _ in 0..d {
        w = w.windows(2).map(|x| x[1] - x[0]).collect();
    }
    w
}

/// Fits ARIMA `order` to `series` by exact maximum likelihood.
pub fn fit(series: &[f64], order: Order) -> Result<ArimaFit, ScalingError> {
    fit_from(series, order, &[])
}

/// [`fit`], also starting from the estimates of nested models (same `d`, one
/// fewer `p` or `q`): a zero added to the free coordinates is exactly the
/// nested model, so the larger fit is never worse than the smaller one.
pub(crate) fn fit_from(
    series: &[f64],
    order: Order,
    nested: &[&ArimaFit],
) -> Result<ArimaFit, ScalingError> {
    fit_with(series, order, nested, true)
}

/// Fits `previous.order` to a new `series` (the same component one window
/// later), starting only from the previous estimates: one optimisation instead
/// of several, for the refits between two order selections.
pub fn refit(series: &[f64], previous: &ArimaFit) -> Result<ArimaFit, ScalingError> {
    if previous.free.is_empty() {
        return fit(series, previous.order);
    }
    fit_with(series, previous.order, &[previous], false)
}

fn fit_with(
    series: &[f64],
    order: Order,
    nested: &[&ArimaFit],
    standard_starts: bool,
) -> Result<ArimaFit, ScalingError> {
    let Order { p, d, q, .. } = order;
    if p > MAX_PQ || q > MAX_PQ || d > MAX_D {
        return Err(ScalingError::Arima(format!(
            "order {order}: p and q at most {MAX_PQ}, d at most {MAX_D}"
        )));
    }
    if series.len() > MAX_SERIES {
        return Err(ScalingError::Series(format!(
            "{} samples; ARIMA takes at most {MAX_SERIES}",
            series.len()
        )));
    }
    if series.iter().any(|v| !v.is_finite()) {
        return Err(ScalingError::Series("ARIMA needs finite samples".into()));
    }
    let needed = d + 2 * (p + q) + 4;
    if series.len() < needed {
        return Err(ScalingError::Series(format!(
            "{} samples; order {order} needs at least {needed}",
            series.len()
        )));
    }
    let w = difference(series, d);
    let last: Vec<f64> = series.iter().rev().take(d).copied().collect();
    let with_mean = order.has_mean();
    let n = w.len() as f64;
    let sample_mean = w.iter().sum::<f64>() / n;
    let spread = (w.iter().map(|v| (v - sample_mean).powi(2)).sum::<f64>() / n).sqrt();
    let centre = if with_mean { sample_mean } else { 0.0 };
    if spread <= 1e-12 * (1.0 + centre.abs()) {
        return Ok(deterministic(order, w[0], last));
    }
    // The mean moves in units of the series' spread, so that all free
    // parameters are of order one for the optimiser.
    let unpack = |x: &[f64]| -> (f64, Vec<f64>, Vec<f64>) {
        let (mean, rest) = if with_mean {
            (sample_mean + spread * x[0], &x[1..])
        } else {
            (0.0, x)
        };
        (
            mean,
            params::ar_from_free(&rest[..p]),
            params::ma_from_free(&rest[p..]),
        )
    };
    let objective = |x: &[f64]| -> f64 {
        let (mean, ar, ma) = unpack(x);
        let centred: Vec<f64> = w.iter().map(|v| v - mean).collect();
        match kalman::filter(&Arma::new(&ar, &ma), &centred) {
            Ok(f) if f.loglike.is_finite() => -f.loglike / n,
            _ => f64::INFINITY,
        }
    };
    let mut candidates = if standard_starts {
        starts(&w, centre, p, q, with_mean)
    } else {
        Vec::new()
    };
    for smaller in nested
        .iter()
        .filter(|f| f.order.d == d && !f.free.is_empty())
    {
        let (sp, sq) = (smaller.order.p, smaller.order.q);
        if sp > p || sq > q {
            continue;
        }
        let m = usize::from(with_mean);
        let mut x = smaller.free[..m].to_vec();
        x.extend(&smaller.free[m..m + sp]);
        x.extend(std::iter::repeat_n(0.0, p - sp));
        x.extend(&smaller.free[m + sp..]);
        x.extend(std::iter::repeat_n(0.0, q - sq));
        candidates.push(x);
    }
    let mut best: Option<optim::Minimum> = None;
    for start in candidates {
        let m = optim::minimise(&objective, &start);
        if m.value.is_finite() && best.as_ref().is_none_or(|b| m.value < b.value) {
            best = Some(m);
        }
    }
    let best =
        best.ok_or_else(|| ScalingError::Arima(format!("order {order}: no finite likelihood")))?;
    let (mean, ar, ma) = unpack(&best.x);
    let centred: Vec<f64> = w.iter().map(|v| v - mean).collect();
    let filtered = kalman::filter(&Arma::new(&ar, &ma), &centred)?;
    let k = (p + q + usize::from(with_mean) + 1) as f64;
    Ok(ArimaFit {
        order,
        mean: with_mean.then_some(mean),
        ar,
        ma,
        sigma2: filtered.sigma2,
        loglike: filtered.loglike,
        aic: -2.0 * filtered.loglike + 2.0 * k,
        last,
        free: best.x,
        next_state: filtered.next_state,
        next_cov: filtered.next_cov,
    })
}

/// A series whose differences are constant: nothing random is left, so the
/// forecast continues it exactly.
fn deterministic(order: Order, first: f64, last: Vec<f64>) -> ArimaFit {
    ArimaFit {
        order,
        mean: (order.d == 0).then_some(first),
        // (With drift the constant difference is in the state below.)
        ar: vec![0.0; order.p],
        ma: vec![0.0; order.q],
        sigma2: 0.0,
        loglike: f64::INFINITY,
        aic: f64::NEG_INFINITY,
        last,
        free: Vec::new(),
        // A constant difference `c` shows up as a zero-mean state plus `c`:
        // keep `c` in the state so the integration adds it every step.
        next_state: vec![if order.d == 0 { 0.0 } else { first }; 1],
        next_cov: vec![0.0; 1],
    }
}

/// Starting points: the origin (white noise at the sample mean), a persistent
/// AR (first partial autocorrelation 0.9: likelihoods of load series often have
/// a second optimum near the unit root, with the MA part cancelling most of
/// it), and the Hannan–Rissanen estimate when it lies inside the regions.
fn starts(w: &[f64], centre: f64, p: usize, q: usize, with_mean: bool) -> Vec<Vec<f64>> {
    let m = usize::from(with_mean);
    let zero = vec![0.0; m + p + q];
    let mut out = vec![zero.clone()];
    // r = 0.9 in free coordinates: x / sqrt(1 + x²) = 0.9.
    let near_unit = 0.9 / (1.0f64 - 0.81).sqrt();
    if p > 0 {
        let mut persistent = zero.clone();
        persistent[m] = near_unit;
        out.push(persistent.clone());
        if q > 0 {
            // And with an MA root near the AR one, nearly cancelling it.
            let mut cancelling = persistent;
            cancelling[m + p] = near_unit;
            out.push(cancelling);
        }
    }
    if p + q > 0 {
        let centred: Vec<f64> = w.iter().map(|v| v - centre).collect();
        if let Some((ar, ma)) = hannan_rissanen(&centred, p, q)
            && let (Some(fa), Some(fm)) = (params::free_from_ar(&ar), params::free_from_ma(&ma))
        {
            let mut x = vec![0.0; usize::from(with_mean)];
            x.extend(fa);
            x.extend(fm);
            out.push(x);
        }
    }
    out
}

/// Hannan–Rissanen: a long AR by least squares estimates the innovations, then
/// one regression on lagged values and lagged innovations gives φ and θ.
fn hannan_rissanen(w: &[f64], p: usize, q: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = w.len();
    let long = ((n as f64).ln().powi(2) as usize).clamp(p.max(q) + 1, n / 4);
    if n < long + p.max(q) + 10 {
        return None;
    }
    let lagged = |t: usize, lag: usize, v: &[f64]| v[t - lag];
    let ar_long = least_squares(
        (long..n).map(|t| ((1..=long).map(|l| lagged(t, l, w)).collect(), w[t])),
        long,
    )?;
    let mut e = vec![0.0; n];
    for t in long..n {
        e[t] = w[t] - (1..=long).map(|l| ar_long[l - 1] * w[t - l]).sum::<f64>();
    }
    let start = long + q.max(p);
    let coef = least_squares(
        (start..n).map(|t| {
            let mut x: Vec<f64> = (1..=p).map(|l| w[t - l]).collect();
            x.extend((1..=q).map(|l| e[t - l]));
            (x, w[t])
        }),
        p + q,
    )?;
    Some((coef[..p].to_vec(), coef[p..].to_vec()))
}

/// Ordinary least squares through the normal equations (small `k`).
fn least_squares(rows: impl Iterator<Item = (Vec<f64>, f64)>, k: usize) -> Option<Vec<f64>> {
    let mut xtx = vec![0.0; k * k];
    let mut xty = vec![0.0; k];
    for (x, y) in rows {
        for i in 0..k {
            xty[i] += x[i] * y;
            for j in 0..k {
                xtx[i * k + j] += x[i] * x[j];
            }
        }
    }
    // A tiny ridge keeps a rank-deficient design (a constant series) solvable.
    for i in 0..k {
        xtx[i * k + i] += 1e-10 * (1.0 + xtx[i * k + i]);
    }
    kalman::solve_system(&mut xtx, &mut xty, k).ok()?;
    xty.iter().all(|v| v.is_finite()).then_some(xty)
}

impl ArimaFit {
    /// Forecasts `h` steps ahead: means and error variances.
    ///
    /// The ARMA part continues from the filter's last state (mean and
    /// covariance); for `d > 0` the integration runs in the same linear system,
    /// from the last `d` observations, which are known exactly. The variances
    /// are therefore exact for the fitted parameters (parameter uncertainty is
    /// not included, as in statsmodels).
    pub fn forecast(&self, h: usize) -> Forecast {
        let arma = Arma::new(&self.ar, &self.ma);
        let r = self.next_state.len().min(arma.r).max(1);
        let d = self.order.d;
        // Integration: y_t = w_t + Σ c_k y_{t−k}, from (1 − B)^d.
        let c: Vec<f64> = match d {
            0 => vec![],
            1 => vec![1.0],
            _ => vec![2.0, -1.0],
        };
        let size = r + d;
        // Full state X = [α (r); y_{t}, y_{t−1}, … (d)], mean and covariance.
        let mut mean = vec![0.0; size];
        mean[..r].copy_from_slice(&self.next_state[..r]);
        mean[r..].copy_from_slice(&self.last);
        let mut cov = vec![0.0; size * size];
        for i in 0..r {
            for j in 0..r {
                cov[i * size + j] = self.next_cov[i * self.next_state.len() + j];
            }
        }
        let deterministic = self.sigma2 == 0.0;
        let mut out = Forecast {
            mean: Vec::with_capacity(h),
            variance: Vec::with_capacity(h),
        };
        for step in 0..h {
            if step > 0 {
                // α ← T α + R e (the lags of y stay).
                let (m, cv) = if deterministic {
                    (mean[..r].to_vec(), vec![0.0; r * r])
                } else {
                    let block: Vec<f64> = (0..r)
                        .flat_map(|i| (0..r).map(move |j| (i, j)))
                        .map(|(i, j)| cov[i * size + j])
                        .collect();
                    (arma.step_mean(&mean[..r]), arma.step_cov(&block))
                };
                // Cross-covariances of α with the lags: T applied on the left.
                let mut cross = vec![0.0; r * d];
                for i in 0..r {
                    for k in 0..d {
                        cross[i * d + k] = if deterministic {
                            0.0
                        } else {
                            (0..r)
                                .map(|j| arma.t[i * arma.r + j] * cov[j * size + r + k])
                                .sum()
                        };
                    }
                }
                mean[..r].copy_from_slice(&m);
                for i in 0..r {
                    for j in 0..r {
                        cov[i * size + j] = cv[i * r + j];
                    }
                    for k in 0..d {
                        cov[i * size + r + k] = cross[i * d + k];
                        cov[(r + k) * size + i] = cross[i * d + k];
                    }
                }
            }
            // Observe: y = α[0] + c·lags (+ μ), then shift the lags.
            let y_mean = mean[0]
                + c.iter().zip(&mean[r..]).map(|(c, y)| c * y).sum::<f64>()
                + self.mean.unwrap_or(0.0);
            // The new y as a linear combination g of the state.
            let mut g = vec![0.0; size];
            g[0] = 1.0;
            for (k, ck) in c.iter().enumerate() {
                g[r + k] = *ck;
            }
            let cov_g: Vec<f64> = (0..size)
                .map(|i| (0..size).map(|j| cov[i * size + j] * g[j]).sum())
                .collect();
            let var_y: f64 = g.iter().zip(&cov_g).map(|(a, b)| a * b).sum();
            out.mean.push(y_mean);
            out.variance.push((var_y * self.sigma2).max(0.0));
            if d > 0 {
                // New lags: [y, lags[0..d−1]].
                let mut new_mean = mean.clone();
                let mut new_cov = cov.clone();
                new_mean[r] = y_mean;
                for k in 1..d {
                    new_mean[r + k] = mean[r + k - 1];
                }
                // Map M: X' = M X with row r = g, rows r+k = e_{r+k−1}.
                let row = |i: usize| -> Vec<f64> {
                    let mut e = vec![0.0; size];
                    if i < r {
                        e[i] = 1.0;
                    } else if i == r {
                        e.copy_from_slice(&g);
                    } else {
                        e[i - 1] = 1.0;
                    }
                    e
                };
                let rows: Vec<Vec<f64>> = (0..size).map(row).collect();
                for i in 0..size {
                    for j in 0..size {
                        new_cov[i * size + j] = (0..size)
                            .map(|a| {
                                rows[i][a]
                                    * (0..size)
                                        .map(|b| cov[a * size + b] * rows[j][b])
                                        .sum::<f64>()
                            })
                            .sum();
                    }
                }
                mean = new_mean;
                cov = new_cov;
            }
        }
        out
    }
}
