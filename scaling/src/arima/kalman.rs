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
        Self { r, t, rvec }
    }

    /// `T a`.
    pub(crate) fn step_mean(&self, a: &[f64]) -> Vec<f64> {
        let r = self.r;
        (0..r)
            .map(|i| (0..r).map(|j| self.t[i * r + j] * a[j]).sum())
            .collect()
    }

    /// `T P Tᵀ + R Rᵀ`.
    pub(crate) fn step_cov(&self, p: &[f64]) -> Vec<f64> {
        let r = self.r;
        let mut tp = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                tp[i * r + j] = (0..r).map(|k| self.t[i * r + k] * p[k * r + j]).sum();
            }
        }
        let mut out = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                out[i * r + j] = (0..r)
                    .map(|k| tp[i * r + k] * self.t[j * r + k])
                    .sum::<f64>()
                    + self.rvec[i] * self.rvec[j];
            }
        }
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
        let col: Vec<f64> = (0..r).map(|i| p[i * r]).collect();
        for i in 0..r {
            a[i] += col[i] * v / f;
        }
        for i in 0..r {
            for j in 0..r {
                p[i * r + j] -= col[i] * col[j] / f;
            }
        }
        a = arma.step_mean(&a);
        p = arma.step_cov(&p);
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
