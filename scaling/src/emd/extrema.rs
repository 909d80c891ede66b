//! Local extrema and zero crossings of a sampled signal, the two counts every
//! sifting step looks at.
//!
//! A point is a maximum when the signal rises into it and falls after it, a
//! minimum the other way round. A flat run (equal samples) that the signal
//! enters rising and leaves falling is one maximum at its middle (and the same
//! for minima). The first and last samples are never extrema: the mirrored ends
//! (`mirror`) decide what happens beyond them.

/// The extrema of a signal, as sample indices in increasing order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extrema {
    /// Indices of local maxima.
    pub(crate) maxima: Vec<usize>,
    /// Indices of local minima.
    pub(crate) minima: Vec<usize>,
    /// How many times the signal crosses or touches zero (a run of zeros
    /// counts once).
    pub(crate) zero_crossings: usize,
}

impl Extrema {
    /// Maxima and minima together.
    pub(crate) fn count(&self) -> usize {
        self.maxima.len() + self.minima.len()
    }

    /// Whether the numbers of extrema and zero crossings differ by at most one:
    /// the shape condition of an intrinsic mode function.
    pub(crate) fn imf_shaped(&self) -> bool {
        self.count().abs_diff(self.zero_crossings) < 2
    }
}

/// The extrema and zero crossings of `s`.
pub(crate) fn find(s: &[f64]) -> Extrema {
    let n = s.len();
    if n < 3 {
        return Extrema {
            zero_crossings: zero_crossings(s),
            ..Extrema::default()
        };
    }
    let d: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
    let mut maxima = Vec::new();
    let mut minima = Vec::new();
    for i in 1..n - 1 {
        let (before, after) = (d[i - 1], d[i]);
        if before * after < 0.0 {
            if before > 0.0 {
                maxima.push(i);
            } else {
                minima.push(i);
            }
        }
    }
    let (plateau_max, plateau_min) = plateaus(&d);
    if !plateau_max.is_empty() {
        maxima.extend(plateau_max);
        maxima.sort_unstable();
    }
    if !plateau_min.is_empty() {
        minima.extend(plateau_min);
        minima.sort_unstable();
    }
    Extrema {
        maxima,
        minima,
        zero_crossings: zero_crossings(s),
    }
}

/// Extrema at the middle of flat runs, from the differences `d` of the signal.
///
/// A run of equal samples from index `start` to `end` is a maximum at
/// `round((start + end) / 2)` (ties to even) when the signal rises into it and
/// falls out of it. Runs that touch either end of the signal, or that start at
/// the second sample, are not counted: the PyEMD reference counts neither, and
/// an extremum that close to an edge would only be mirrored onto itself.
fn plateaus(d: &[f64]) -> (Vec<usize>, Vec<usize>) {
    // Runs of zero differences as [first, past_last) in difference indices.
    let mut runs = Vec::new();
    let mut i = 0;
    while i < d.len() {
        if d[i] == 0.0 {
            let start = i;
            while i < d.len() && d[i] == 0.0 {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    if runs.first().is_some_and(|&(start, _)| start <= 1) {
        runs.remove(0);
    }
    if runs.last().is_some_and(|&(_, end)| end == d.len()) {
        runs.pop();
    }
    let mut maxima = Vec::new();
    let mut minima = Vec::new();
    for (start, end) in runs {
        // `start >= 1` and `end < d.len()` after the trimming above.
        let (before, after) = (d[start - 1], d[end]);
        let middle = ((start + end) as f64 / 2.0).round_ties_even() as usize;
        if before > 0.0 && after < 0.0 {
            maxima.push(middle);
        } else if before < 0.0 && after > 0.0 {
            minima.push(middle);
        }
    }
    (maxima, minima)
}

/// Sign changes between neighbours, plus the zeros of the signal (each run of
/// consecutive zeros once).
fn zero_crossings(s: &[f64]) -> usize {
    let changes = s.windows(2).filter(|w| w[0] * w[1] < 0.0).count();
    let mut zeros = 0;
    let mut in_run = false;
    for &v in s {
        if v == 0.0 {
            if !in_run {
                zeros += 1;
            }
            in_run = true;
        } else {
            in_run = false;
        }
    }
    changes + zeros
}
