//! Cubic interpolating splines: the envelopes of EMD's sifting.
//!
//! Four or more knots get the *not-a-knot* end conditions (the third derivative is
//! continuous across the second and the second-to-last knot), three knots the
//! *natural* ones (zero curvature at both ends). These are the conditions of the
//! PyEMD reference the decomposition is checked against, and the common choice in
//! the EMD literature: not-a-knot does not force the envelope flat or straight at
//! the ends, where the mirrored extrema already shape it.
//!
//! The spline is solved in slope form: one tridiagonal system for the first
//! derivative at each knot, then each interval is a cubic Hermite polynomial.

use crate::error::ScalingError;

/// A cubic spline through knots `(x[i], y[i])` with strictly increasing `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct CubicSpline {
    /// Knot positions, strictly increasing.
    x: Vec<f64>,
    /// Knot values.
    y: Vec<f64>,
    /// First derivative at each knot.
    slope: Vec<f64>,
}

impl CubicSpline {
    /// The spline through the knots. Needs at least two knots (two give a line),
    /// strictly increasing finite positions and finite values.
    pub fn new(x: &[f64], y: &[f64]) -> Result<Self, ScalingError> {
        if x.len() != y.len() {
            return Err(ScalingError::Spline(
                "knot positions and values differ in length",
            ));
        }
        if x.len() < 2 {
            return Err(ScalingError::Spline("a spline needs at least two knots"));
        }
        if x.iter().chain(y).any(|v| !v.is_finite()) {
            return Err(ScalingError::Spline("knots must be finite"));
        }
        if x.windows(2).any(|w| w[1] <= w[0]) {
            return Err(ScalingError::Spline(
                "knot positions must strictly increase",
            ));
        }
        let slope = match x.len() {
            2 => {
                let s = (y[1] - y[0]) / (x[1] - x[0]);
                vec![s, s]
            }
            3 => natural_slopes(x, y),
            _ => not_a_knot_slopes(x, y),
        };
        Ok(Self {
            x: x.to_vec(),
            y: y.to_vec(),
            slope,
        })
    }

    /// The spline's value at `at`; outside the knots the end polynomials extend.
    pub fn value(&self, at: f64) -> f64 {
        // The interval whose left knot is the last one at or before `at`.
        let i = match self.x.partition_point(|&k| k <= at) {
            0 => 0,
            n => (n - 1).min(self.x.len() - 2),
        };
        self.piece(i, at)
    }

    /// The spline's values at increasing positions, in one pass over the knots.
    pub fn values_at(&self, positions: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let last = self.x.len() - 2;
        let mut i = 0;
        positions
            .into_iter()
            .map(|at| {
                while i < last && self.x[i + 1] <= at {
                    i += 1;
                }
                self.piece(i, at)
            })
            .collect()
    }

    /// Interval `i`'s cubic at `at`, in powers of `at - x[i]`.
    fn piece(&self, i: usize, at: f64) -> f64 {
        let h = self.x[i + 1] - self.x[i];
        let delta = (self.y[i + 1] - self.y[i]) / h;
        let (s0, s1) = (self.slope[i], self.slope[i + 1]);
        let c3 = (s0 + s1 - 2.0 * delta) / (h * h);
        let c2 = (3.0 * delta - 2.0 * s0 - s1) / h;
        let dx = at - self.x[i];
        ((c3 * dx + c2) * dx + s0) * dx + self.y[i]
    }
}

/// Slopes of the natural spline through three knots.
fn natural_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let (h0, h1) = (x[1] - x[0], x[2] - x[1]);
    let (d0, d1) = ((y[1] - y[0]) / h0, (y[2] - y[1]) / h1);
    // Rows: zero curvature at x0, continuous curvature at x1, zero curvature at x2.
    let lower = [0.0, 1.0 / h0, 1.0 / h1];
    let diag = [2.0 / h0, 2.0 * (1.0 / h0 + 1.0 / h1), 2.0 / h1];
    let upper = [1.0 / h0, 1.0 / h1, 0.0];
    let rhs = [3.0 * d0 / h0, 3.0 * d0 / h0 + 3.0 * d1 / h1, 3.0 * d1 / h1];
    solve_tridiagonal(&lower, &diag, &upper, &rhs)
}

/// Slopes of the not-a-knot spline through four or more knots.
fn not_a_knot_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len();
    let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let delta: Vec<f64> = (0..n - 1).map(|i| (y[i + 1] - y[i]) / h[i]).collect();
    let mut lower = vec![0.0; n];
    let mut diag = vec![0.0; n];
    let mut upper = vec![0.0; n];
    let mut rhs = vec![0.0; n];
    // Interior knots: continuous second derivative.
    for i in 1..n - 1 {
        lower[i] = h[i];
        diag[i] = 2.0 * (h[i - 1] + h[i]);
        upper[i] = h[i - 1];
        rhs[i] = 3.0 * (h[i] * delta[i - 1] + h[i - 1] * delta[i]);
    }
    // Ends: the first two and the last two intervals are one cubic each, which
    // written in slopes involves only the first (last) two knots.
    let span = x[2] - x[0];
    diag[0] = h[1];
    upper[0] = span;
    rhs[0] = ((h[0] + 2.0 * span) * h[1] * delta[0] + h[0] * h[0] * delta[1]) / span;
    let span = x[n - 1] - x[n - 3];
    let (ha, hb) = (h[n - 3], h[n - 2]);
    lower[n - 1] = span;
    diag[n - 1] = ha;
    rhs[n - 1] = (hb * hb * delta[n - 3] + (2.0 * span + hb) * ha * delta[n - 2]) / span;
    solve_tridiagonal(&lower, &diag, &upper, &rhs)
}

/// Solves a tridiagonal system (`lower[0]` and `upper[n-1]` unused) by Gaussian
/// elimination with partial pivoting, which the not-a-knot end rows need: their
/// diagonal can be smaller than the entry beside it.
fn solve_tridiagonal(lower: &[f64], diag: &[f64], upper: &[f64], rhs: &[f64]) -> Vec<f64> {
    let n = diag.len();
    // Row i holds up to three entries at columns i-?.. : after pivoting a row may
    // reach two columns right of its diagonal, so keep a second upper band.
    let mut a: Vec<[f64; 4]> = (0..n).map(|i| [lower[i], diag[i], upper[i], 0.0]).collect();
    let mut b = rhs.to_vec();
    // `a[i]` holds the coefficients of columns i-1, i, i+1, i+2 of row i.
    for k in 0..n.saturating_sub(1) {
        // Candidates for the pivot of column k: row k (its diagonal) and row k+1
        // (its lower entry); no other row has a non-zero in column k.
        if a[k + 1][0].abs() > a[k][1].abs() {
            let (row_k, row_next) = (a[k], a[k + 1]);
            // Swap the rows, re-aligning the columns to each row's own diagonal.
            a[k] = [row_k[0], row_next[0], row_next[1], row_next[2]];
            a[k + 1] = [row_k[1], row_k[2], row_k[3], 0.0];
            b.swap(k, k + 1);
        }
        let factor = a[k + 1][0] / a[k][1];
        if factor != 0.0 {
            a[k + 1][0] = 0.0;
            a[k + 1][1] -= factor * a[k][2];
            a[k + 1][2] -= factor * a[k][3];
            b[k + 1] -= factor * b[k];
        }
    }
    let mut out = vec![0.0; n];
    for i in (0..n).rev() {
        let mut v = b[i];
        if i + 1 < n {
            v -= a[i][2] * out[i + 1];
        }
        if i + 2 < n {
            v -= a[i][3] * out[i + 2];
        }
        out[i] = v / a[i][1];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_a_cubic_exactly() {
        // Not-a-knot splines reproduce any cubic.
        let f = |x: f64| 0.5 * x * x * x - 2.0 * x * x + x - 3.0;
        let x = [0.0, 1.0, 2.5, 3.0, 4.5, 7.0];
        let y: Vec<f64> = x.iter().map(|&v| f(v)).collect();
        let s = CubicSpline::new(&x, &y).expect("valid knots");
        for at in [-1.0, 0.3, 2.0, 5.5, 7.0, 8.0] {
            assert!((s.value(at) - f(at)).abs() < 1e-9, "at {at}");
        }
        let many = s.values_at((0..8).map(f64::from));
        for (i, v) in many.iter().enumerate() {
            assert!((v - f(i as f64)).abs() < 1e-9);
        }
    }

    #[test]
    fn three_knots_are_natural() {
        let s = CubicSpline::new(&[0.0, 1.0, 2.0], &[0.0, 1.0, 0.0]).expect("valid knots");
        // Symmetric, passes through the knots, zero curvature at the ends.
        assert!((s.value(1.0) - 1.0).abs() < 1e-12);
        assert!((s.value(0.5) - s.value(1.5)).abs() < 1e-12);
        let curvature =
            |at: f64| (s.value(at + 1e-4) - 2.0 * s.value(at) + s.value(at - 1e-4)) / 1e-8;
        assert!(curvature(1e-4).abs() < 1e-2);
    }

    #[test]
    fn refuses_bad_knots() {
        assert!(CubicSpline::new(&[0.0], &[1.0]).is_err());
        assert!(CubicSpline::new(&[0.0, 0.0, 1.0], &[1.0, 2.0, 3.0]).is_err());
        assert!(CubicSpline::new(&[0.0, 1.0], &[f64::NAN, 2.0]).is_err());
        assert!(CubicSpline::new(&[0.0, 1.0], &[1.0]).is_err());
    }
}
