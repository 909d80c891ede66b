//! Empirical Mode Decomposition (Huang et al., 1998): a signal as a sum of
//! intrinsic mode functions (IMFs), fastest oscillation first, plus a residue
//! with at most two extrema (the trend).
//!
//! Written here because no maintained Rust crate implements Huang's EMD. One IMF
//! is found by *sifting*: take the signal's local maxima and minima
//! (`extrema`), reflect a few of them beyond both ends (`mirror`), put a
//! cubic spline through each set ([`crate::spline`]), and subtract the mean of
//! the two envelopes; repeat until the [`Stop`] rule holds. The IMF is removed
//! from the signal and the rest is sifted again, until what remains is
//! monotonic enough (two extrema or fewer) or negligible.
//!
//! The defaults follow PyEMD (`EMD-signal`), the reference the tests compare
//! against (`scaling/fixtures/`): the same boundary rule, splines, stopping
//! thresholds and end condition, so that the IMFs agree to rounding error.

mod extrema;
mod mirror;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::error::ScalingError;
use crate::spline::CubicSpline;

/// Longest signal [`Emd::decompose`] accepts. The node decomposes windows of a
/// few hundred samples; anything far longer is a mistake, and the cost of a
/// sift grows with the length.
pub const MAX_SIGNAL: usize = 1 << 20;

/// Most IMFs one decomposition yields. A signal of `n` samples has about
/// `log2(n)` of them; this bound only stops a pathological input from looping.
pub const MAX_IMFS: usize = 64;

/// When sifting one IMF stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Stop {
    /// Cauchy-type convergence (Huang's SD test, in PyEMD's form): the proto-IMF
    /// has the IMF shape (extrema and zero crossings differ by at most one), all
    /// its maxima are positive and minima negative, and the last sift changed it
    /// little — scaled variance `Σ(h_k − h_{k−1})² / range(h_{k−1})` below
    /// `svar`, or `Σ((h_k − h_{k−1}) / h_k)²` below `sd`, or the energy ratio
    /// `Σ(h_k − h_{k−1})² / Σh_{k−1}²` below `energy_ratio`.
    Cauchy {
        /// Threshold of the standard-deviation test (PyEMD: 0.2).
        sd: f64,
        /// Threshold of the scaled-variance test (PyEMD: 0.001).
        svar: f64,
        /// Threshold of the energy-ratio test (PyEMD: 0.2).
        energy_ratio: f64,
    },
    /// Huang's S-number: stop once the numbers of extrema and zero crossings
    /// have differed by at most one for this many consecutive sifts.
    SNumber {
        /// S, typically 3 to 8.
        s: u32,
    },
}

impl Stop {
    /// The Cauchy-type rule with PyEMD's default thresholds.
    pub const CAUCHY_DEFAULT: Stop = Stop::Cauchy {
        sd: 0.2,
        svar: 0.001,
        energy_ratio: 0.2,
    };
}

impl Default for Stop {
    fn default() -> Self {
        Self::CAUCHY_DEFAULT
    }
}

/// EMD settings. [`Emd::default`] is PyEMD's default configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Emd {
    /// When one IMF's sifting stops.
    pub stop: Stop,
    /// Sifts of one IMF at most; past it the proto-IMF is taken as it is.
    pub max_sifts: u32,
    /// Stop decomposing when what is left spans less than this (max − min).
    pub range_threshold: f64,
    /// Stop decomposing when what is left sums (in absolute value) to less.
    pub power_threshold: f64,
    /// IMFs at most (the rest stays in the residue); capped at [`MAX_IMFS`].
    pub max_imfs: usize,
}

impl Default for Emd {
    fn default() -> Self {
        Self {
            stop: Stop::default(),
            max_sifts: 1000,
            range_threshold: 0.001,
            power_threshold: 0.005,
            max_imfs: MAX_IMFS,
        }
    }
}

/// A signal split into IMFs (fastest first) and a residue; they sum to the
/// signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decomposition {
    /// Intrinsic mode functions, each as long as the signal, highest frequency
    /// first.
    pub imfs: Vec<Vec<f64>>,
    /// What is left: the trend.
    pub residue: Vec<f64>,
}

impl Decomposition {
    /// The IMFs and then the residue: every component a forecast sums over.
    pub fn components(&self) -> impl Iterator<Item = &[f64]> {
        self.imfs
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(self.residue.as_slice()))
    }
}

/// The two counts that make a signal IMF-shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// Local maxima and minima (flat runs count once).
    pub extrema: usize,
    /// Zero crossings (a run of zeros counts once).
    pub zero_crossings: usize,
}

impl Shape {
    /// The counts of `signal`.
    pub fn of(signal: &[f64]) -> Self {
        let e = extrema::find(signal);
        Self {
            extrema: e.count(),
            zero_crossings: e.zero_crossings,
        }
    }

    /// Whether they differ by at most one, as an IMF's must.
    pub fn is_imf(&self) -> bool {
        self.extrema.abs_diff(self.zero_crossings) <= 1
    }
}

/// How the sifting of one IMF ended.
enum Sifted {
    /// The proto-IMF had two extrema or fewer before a sift: it is a trend and
    /// the decomposition ends.
    Trend,
    /// The stop rule held (or the sifts ran out).
    Imf {
        /// The IMF.
        imf: Vec<f64>,
        /// Extrema it has after its last sift.
        extrema: usize,
    },
}

impl Emd {
    /// Decomposes `signal` (finite values, at most [`MAX_SIGNAL`] of them).
    pub fn decompose(&self, signal: &[f64]) -> Result<Decomposition, ScalingError> {
        if signal.len() > MAX_SIGNAL {
            return Err(ScalingError::Series(format!(
                "{} samples; EMD takes at most {MAX_SIGNAL}",
                signal.len()
            )));
        }
        if signal.iter().any(|v| !v.is_finite()) {
            return Err(ScalingError::Series("EMD needs finite samples".into()));
        }
        let max_imfs = self.max_imfs.min(MAX_IMFS);
        let mut imfs: Vec<Vec<f64>> = Vec::new();
        let mut rest = signal.to_vec();
        while imfs.len() < max_imfs {
            let Sifted::Imf { imf, extrema } = self.sift(&rest)? else {
                // What is left has two extrema or fewer: it is the trend.
                break;
            };
            for (r, v) in rest.iter_mut().zip(&imf) {
                *r -= v;
            }
            imfs.push(imf);
            if self.negligible(&rest) || imfs.len() == max_imfs {
                // A last IMF that ended up with two extrema or fewer is trend too.
                if extrema <= 2 {
                    imfs.pop();
                }
                break;
            }
        }
        // The residue is the signal less the IMFs, so that they sum to it.
        let mut residue = signal.to_vec();
        for imf in &imfs {
            for (r, v) in residue.iter_mut().zip(imf) {
                *r -= v;
            }
        }
        Ok(Decomposition { imfs, residue })
    }

    /// Sifts one IMF out of `s`.
    fn sift(&self, s: &[f64]) -> Result<Sifted, ScalingError> {
        let mut imf = s.to_vec();
        let mut shaped_run = 0u32;
        let mut extrema = usize::MAX;
        for n in 1..self.max_sifts.max(2) {
            let ext = extrema::find(&imf);
            extrema = ext.count();
            if extrema <= 2 {
                return Ok(Sifted::Trend);
            }
            let (upper, lower) = mirror::knots(&imf, &ext)?;
            let positions = || (0..imf.len()).map(|i| i as f64);
            let top = CubicSpline::new(&upper.at, &upper.value)?.values_at(positions());
            let bottom = CubicSpline::new(&lower.at, &lower.value)?.values_at(positions());
            let old = imf.clone();
            for ((v, t), b) in imf.iter_mut().zip(&top).zip(&bottom) {
                *v -= 0.5 * (t + b);
            }
            let now = extrema::find(&imf);
            extrema = now.count();
            let done = match self.stop {
                Stop::SNumber { s: limit } => {
                    if n == 1 {
                        false
                    } else {
                        shaped_run = if now.imf_shaped() { shaped_run + 1 } else { 0 };
                        shaped_run >= limit
                    }
                }
                Stop::Cauchy {
                    sd,
                    svar,
                    energy_ratio,
                } => {
                    now.imf_shaped()
                        && converged(
                            &imf,
                            &old,
                            &upper.value,
                            &lower.value,
                            sd,
                            svar,
                            energy_ratio,
                        )
                }
            };
            if done {
                break;
            }
        }
        Ok(Sifted::Imf { imf, extrema })
    }

    /// Whether what is left after the IMFs so far is too small to decompose.
    fn negligible(&self, rest: &[f64]) -> bool {
        let (lo, hi) = rest
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        hi - lo < self.range_threshold
            || rest.iter().map(|v| v.abs()).sum::<f64>() < self.power_threshold
    }
}

/// The Cauchy-type convergence test between two consecutive proto-IMFs; the
/// envelopes' knot values (`maxima`, `minima`, mirrored ones included) are those
/// of the proto-IMF before the sift.
fn converged(
    new: &[f64],
    old: &[f64],
    maxima: &[f64],
    minima: &[f64],
    sd: f64,
    svar: f64,
    energy_ratio: f64,
) -> bool {
    // An IMF is symmetric about zero: maxima above it, minima below.
    if maxima.iter().any(|&v| v < 0.0) || minima.iter().any(|&v| v > 0.0) {
        return false;
    }
    if new.iter().map(|v| v * v).sum::<f64>() < 1e-10 {
        return false;
    }
    let change: f64 = new.iter().zip(old).map(|(a, b)| (a - b) * (a - b)).sum();
    let (lo, hi) = old
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if change / (hi - lo) < svar {
        return true;
    }
    let relative: f64 = new
        .iter()
        .zip(old)
        .map(|(a, b)| ((a - b) / a).powi(2))
        .sum();
    if relative < sd {
        return true;
    }
    change / old.iter().map(|v| v * v).sum::<f64>() < energy_ratio
}
