//! The exact Gaussian likelihood of a zero-mean ARMA(p, q) series, by the Kalman
//! filter on Harvey's state-space form, and the filter's state at the end (where
//! forecasts start).
//!
//! State `α_t` of size `r = max(p, q + 1)`: `α_{t+1} = T α_t + R e_{t+1}`,
//! `w_t = α_t[0]`, with `T`'s first column the AR coefficients and ones on its
//! superdiagonal, and `R = (1, θ_1, …, θ_{r−1})`. The filter starts from the
//! stationary distribution (`P = T P Tᵀ + R Rᵀ`), so the likelihood is exact, as
//! statsmodels' is. The innovation variance `σ²` is concentrated out: the filter
//! runs with `σ² = 1` and `σ̂² = Σ v_t² / F_t / n`.

use crate::error::ScalingError;

/// The ARMA system matrices.
#[derive(Debug, Clone)]
pub(crate) struct Arma {
    /// State size.
    pub(crate) r: usize,
    /// Transition, row-major `r × r`.
    pub(crate) t: Vec<f64>,
    /// Noise loading.
    pub(crate) rvec: Vec<f64>,
    /// AR coefficients padded with zeros to `r`: `T`'s first column.
    phi: Vec<f64>,
}

impl Arma {
    pub(crate) fn new(ar: &[f64], ma: &[f64]) -> Self {
        let r = ar.len().max(ma.len() + 1);
        let mut t = vec![0.0; r * r];
        for (i, &phi) in ar.iter().enumerate() {
            t[i * r] = phi;
        }
        for i in 0..r - 1 {
            t[i * r + i + 1] = 1.0;
        }
        let mut rvec = vec![0.0; r];
        rvec[0] = 1.0;
        for (i, &theta) in ma.iter().enumerate() {
            rvec[i + 1] = theta;
        }
        let mut phi = vec![0.0; r];
        phi[..ar.len()].copy_from_slice(ar);
        Self { r, t, rvec, phi }
    }

    /// `T a`.
    pub(crate) fn step_mean(&self, a: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.r];
        self.step_mean_into(a, &mut out);
        out
    }

    /// `T a` into `out`; `T` is a companion matrix: `(T a)_i = φ_i a_0 + a_{i+1}`.
    fn step_mean_into(&self, a: &[f64], out: &mut [f64]) {
        let r = self.r;
        for i in 0..r {
            out[i] = self.phi[i] * a[0] + if i + 1 < r { a[i + 1] } else { 0.0 };
        }
    }

    /// `T P Tᵀ + R Rᵀ` into `out`, in O(r²) from the companion structure:
    /// `(T P)_ij = φ_i P_0j + P_(i+1)j`, then the same on the right.
    fn step_cov_into(&self, p: &[f64], scratch: &mut [f64], out: &mut [f64]) {
        let r = self.r;
        for i in 0..r {
            for j in 0..r {
                let below = if i + 1 < r { p[(i + 1) * r + j] } else { 0.0 };
                scratch[i * r + j] = self.phi[i] * p[j] + below;
            }
        }
        for i in 0..r {
            for j in 0..r {
                let right = if j + 1 < r {
                    scratch[i * r + j + 1]
                } else {
                    0.0
                };
                out[i * r + j] = scratch[i * r] * self.phi[j] + right + self.rvec[i] * self.rvec[j];
            }
        }
    }

    /// `T P Tᵀ + R Rᵀ`.
    pub(crate) fn step_cov(&self, p: &[f64]) -> Vec<f64> {
        let mut scratch = vec![0.0; self.r * self.r];
        let mut out = vec![0.0; self.r * self.r];
        self.step_cov_into(p, &mut scratch, &mut out);
        out
    }

    /// The stationary state covariance (for `σ² = 1`): the solution of
    /// `P = T P Tᵀ + R Rᵀ`, as the linear system `(I − T ⊗ T) vec P = vec R Rᵀ`.
    fn stationary_cov(&self) -> Result<Vec<f64>, ScalingError> {
        let r = self.r;
        let m = r * r;
        let mut a = vec![0.0; m * m];
        let mut b = vec![0.0; m];
        for i in 0..r {
            for j in 0..r {
                let row = i * r + j;
                b[row] = self.rvec[i] * self.rvec[j];
                a[row * m + row] += 1.0;
                for k in 0..r {
                    for l in 0..r {
                        a[row * m + k * r + l] -= self.t[i * r + k] * self.t[j * r + l];
                    }
                }
            }
        }
        solve_system(&mut a, &mut b, m)?;
        Ok(b)
    }
}

/// What the filter leaves: the likelihood and where forecasts start.
#[derive(Debug, Clone)]
pub(crate) struct Filtered {
    /// Concentrated log-likelihood at `σ̂²`.
    pub(crate) loglike: f64,
    /// `σ̂²`.
    pub(crate) sigma2: f64,
    /// Predicted state for the step after the last observation.
    pub(crate) next_state: Vec<f64>,
    /// Its covariance, for `σ² = 1`.
    pub(crate) next_cov: Vec<f64>,
}

/// Runs the filter over `w` (zero mean); an error for a degenerate system whose
/// stationary covariance cannot be found.
pub(crate) fn filter(arma: &Arma, w: &[f64]) -> Result<Filtered, ScalingError> {
    let r = arma.r;
    let mut a = vec![0.0; r];
    let mut p = arma.stationary_cov()?;
    let (mut sum_sq, mut sum_log_f) = (0.0, 0.0);
    // Once the covariance stops changing the gain is constant (the filter has
    // reached its steady state, which an invertible MA always does): from then
    // on only the state is updated, which makes long series cheap.
    let mut steady = false;
    let mut last_f = f64::NAN;
    let mut col = vec![0.0; r];
    let mut updated = vec![0.0; r];
    let mut scratch = vec![0.0; r * r];
    let mut next_p = vec![0.0; r * r];
    for &obs in w {
        let f = p[0];
        if !(f.is_finite() && f > 0.0) {
            return Err(ScalingError::Arima(
                "innovation variance not positive".into(),
            ));
        }
        let v = obs - a[0];
        sum_sq += v * v / f;
        sum_log_f += f.ln();
        // Update with the observation: a += P[:,0] v / F, P -= P[:,0] P[0,:] / F.
        for i in 0..r {
            col[i] = p[i * r];
            updated[i] = a[i] + col[i] * v / f;
        }
        arma.step_mean_into(&updated, &mut a);
        if !steady {
            for i in 0..r {
                for j in 0..r {
                    p[i * r + j] -= col[i] * col[j] / f;
                }
            }
            arma.step_cov_into(&p, &mut scratch, &mut next_p);
            std::mem::swap(&mut p, &mut next_p);
            steady = (p[0] - last_f).abs() <= 1e-12 * f && (p[0] - f).abs() <= 1e-12 * f;
            last_f = p[0];
        }
    }
    let n = w.len() as f64;
    let sigma2 = sum_sq / n;
    let loglike =
        -0.5 * n * ((2.0 * std::f64::consts::PI).ln() + sigma2.ln() + 1.0) - 0.5 * sum_log_f;
    Ok(Filtered {
        loglike,
        sigma2,
        next_state: a,
        next_cov: p,
    })
}

/// Solves `a x = b` in place (`b` becomes `x`), Gaussian elimination with
/// partial pivoting; `a` is `m × m` row-major.
pub(crate) fn solve_system(a: &mut [f64], b: &mut [f64], m: usize) -> Result<(), ScalingError> {
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&x, &y| a[x * m + col].abs().total_cmp(&a[y * m + col].abs()))
            .unwrap_or(col);
        if a[pivot * m + col].abs() < 1e-300 {
            return Err(ScalingError::Arima(
                "singular stationary covariance system".into(),
            ));
        }
        if pivot != col {
            for k in 0..m {
                a.swap(col * m + k, pivot * m + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..m {
            let factor = a[row * m + col] / a[col * m + col];
            if factor != 0.0 {
                for k in col..m {
                    a[row * m + k] -= factor * a[col * m + k];
                }
                b[row] -= factor * b[col];
            }
        }
    }
    for row in (0..m).rev() {
        let mut v = b[row];
        for k in row + 1..m {
            v -= a[row * m + k] * b[k];
        }
        b[row] = v / a[row * m + row];
    }
    Ok(())
}
