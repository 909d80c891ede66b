//! The map between unconstrained numbers (what the optimiser moves freely) and
//! AR coefficients inside the stationarity region, or MA coefficients inside the
//! invertibility region.
//!
//! Each unconstrained `x_k` becomes a partial autocorrelation
//! `r_k = x_k / sqrt(1 + x_k²)` in (−1, 1), and the Durbin–Levinson recursion
//! turns partial autocorrelations into coefficients (Barndorff-Nielsen and
//! Schou, 1973; Monahan, 1984). Every point of the unconstrained space is a
//! stationary (invertible) model and every such model is reached, so the fit
//! never has to reject a step. statsmodels enforces the same regions (by default)
//! through a map of the same kind, so both find the same optimum.

/// AR coefficients `φ` (for `w_t = Σ φ_j w_{t−j} + …`) of a stationary model.
pub(crate) fn ar_from_free(free: &[f64]) -> Vec<f64> {
    let pacf: Vec<f64> = free.iter().map(|&x| x / (1.0 + x * x).sqrt()).collect();
    levinson(&pacf)
}

/// MA coefficients `θ` (for `w_t = e_t + Σ θ_j e_{t−j}`) of an invertible model.
pub(crate) fn ma_from_free(free: &[f64]) -> Vec<f64> {
    // θ(B) = 1 + Σ θ_j B^j is invertible exactly when 1 − Σ (−θ_j) B^j is a
    // stationary AR polynomial.
    ar_from_free(free).into_iter().map(|c| -c).collect()
}

/// The unconstrained numbers of stationary AR coefficients; `None` when they are
/// not stationary (a partial autocorrelation at or beyond ±1).
pub(crate) fn free_from_ar(ar: &[f64]) -> Option<Vec<f64>> {
    let mut phi = ar.to_vec();
    let mut pacf = vec![0.0; ar.len()];
    for k in (0..ar.len()).rev() {
        let r = phi[k];
        if !r.is_finite() || r.abs() >= 0.999_999 {
            return None;
        }
        pacf[k] = r;
        let scale = 1.0 - r * r;
        let prev: Vec<f64> = (0..k)
            .map(|j| (phi[j] + r * phi[k - 1 - j]) / scale)
            .collect();
        phi.truncate(k);
        phi.copy_from_slice(&prev);
    }
    Some(pacf.iter().map(|&r| r / (1.0 - r * r).sqrt()).collect())
}

/// The unconstrained numbers of invertible MA coefficients.
pub(crate) fn free_from_ma(ma: &[f64]) -> Option<Vec<f64>> {
    let as_ar: Vec<f64> = ma.iter().map(|c| -c).collect();
    free_from_ar(&as_ar)
}

/// Durbin–Levinson: AR coefficients from partial autocorrelations.
fn levinson(pacf: &[f64]) -> Vec<f64> {
    let mut phi: Vec<f64> = Vec::with_capacity(pacf.len());
    for (k, &r) in pacf.iter().enumerate() {
        let next: Vec<f64> = (0..k).map(|j| phi[j] - r * phi[k - 1 - j]).collect();
        phi = next;
        phi.push(r);
    }
    phi
}

/// Whether the AR polynomial `1 − Σ φ_j z^j` has all roots outside the unit
/// circle (Schur–Cohn, by stepping down to partial autocorrelations).
#[cfg(test)]
pub(crate) fn stationary(ar: &[f64]) -> bool {
    free_from_ar(ar).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_stationary() {
        for free in [vec![0.3], vec![-2.0, 0.5], vec![1.5, -0.7, 3.0], vec![]] {
            let ar = ar_from_free(&free);
            assert!(stationary(&ar));
            let back = free_from_ar(&ar).expect("stationary");
            for (a, b) in free.iter().zip(&back) {
                assert!((a - b).abs() < 1e-9, "{free:?} -> {ar:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn known_regions() {
        assert!(stationary(&[0.5]));
        assert!(!stationary(&[1.0]));
        assert!(stationary(&[1.2, -0.5]));
        assert!(!stationary(&[0.6, 0.5]));
        // WWWusage's AR(3) on the differences (statsmodels' estimate).
        assert!(stationary(&[1.151, -0.661, 0.341]));
        assert!(free_from_ma(&[0.99]).is_some());
        assert!(free_from_ma(&[1.01]).is_none());
    }
}
