//! Unconstrained minimisation for the ARIMA fit: BFGS with central-difference
//! gradients and a backtracking line search.
//!
//! The objective has at most a dozen parameters and costs one Kalman filter
//! pass, so numerical gradients are cheap enough and keep the likelihood code
//! free of derivatives. statsmodels minimises the same likelihood with L-BFGS;
//! on the fixtures both land on the same optimum.

/// Where the minimisation ended.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    /// The point.
    pub(crate) x: Vec<f64>,
    /// The objective there.
    pub(crate) value: f64,
}

/// Iterations at most.
const MAX_ITER: usize = 200;
/// Converged when the gradient's largest entry is below this.
const GRAD_TOL: f64 = 1e-7;
/// Or when a step improves the objective by less than this (relative).
const VALUE_TOL: f64 = 1e-13;

/// Minimises `f` from `x0`. `f` may return a non-finite value for points it
/// cannot evaluate; the line search backs away from them.
pub(crate) fn minimise(f: &dyn Fn(&[f64]) -> f64, x0: &[f64]) -> Minimum {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fx = f(&x);
    if n == 0 || !fx.is_finite() {
        return Minimum { x, value: fx };
    }
    let mut g = gradient(f, &x);
    // Inverse Hessian approximation, row-major.
    let mut h = identity(n);
    for _ in 0..MAX_ITER {
        if g.iter().all(|v| v.abs() < GRAD_TOL) {
            break;
        }
        let mut dir: Vec<f64> = (0..n)
            .map(|i| -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>())
            .collect();
        let mut slope: f64 = dir.iter().zip(&g).map(|(d, g)| d * g).sum();
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            h = identity(n);
            dir = g.iter().map(|v| -v).collect();
            slope = -g.iter().map(|v| v * v).sum::<f64>();
        }
        // Backtracking (Armijo) line search; long steps are capped so that the
        // transformed coefficients do not jump across the whole region at once.
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut step = if norm > 10.0 { 10.0 / norm } else { 1.0 };
        let mut next = None;
        for _ in 0..60 {
            let trial: Vec<f64> = x.iter().zip(&dir).map(|(x, d)| x + step * d).collect();
            let ft = f(&trial);
            if ft.is_finite() && ft <= fx + 1e-4 * step * slope {
                next = Some((trial, ft));
                break;
            }
            step *= 0.5;
        }
        let Some((x_new, f_new)) = next else {
            break;
        };
        let g_new = gradient(f, &x_new);
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let improvement = fx - f_new;
        x = x_new;
        g = g_new;
        let done = improvement.abs() <= VALUE_TOL * (1.0 + fx.abs());
        fx = f_new;
        if done {
            break;
        }
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-12 {
            bfgs_update(&mut h, &s, &y, sy);
        }
    }
    Minimum { x, value: fx }
}

fn identity(n: usize) -> Vec<f64> {
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        h[i * n + i] = 1.0;
    }
    h
}

/// `H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ`, `ρ = 1 / yᵀs`.
fn bfgs_update(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
        .collect();
    let yhy: f64 = y.iter().zip(&hy).map(|(a, b)| a * b).sum();
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] +=
                -rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

/// Central differences.
fn gradient(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * (1.0 + x[i].abs());
            probe[i] = x[i] + h;
            let up = f(&probe);
            probe[i] = x[i] - h;
            let down = f(&probe);
            probe[i] = x[i];
            let g = (up - down) / (2.0 * h);
            if g.is_finite() { g } else { 0.0 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimise(&f, &[-1.2, 1.0]);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4,
            "{:?}",
            m.x
        );
    }
}
