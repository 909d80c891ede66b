//! Mirrored ends: extrema reflected beyond both ends of the signal, so that the
//! envelope splines are pinned down at the edges instead of swinging freely.
//!
//! At each end the signal is reflected about a symmetry point: the end extremum
//! when the end sample lies inside the swing of the first (last) two extrema,
//! otherwise the end sample itself, which then also counts as an extremum of the
//! kind that continues the alternation. `NBSYM` extrema of each kind are
//! reflected; if a reflected extremum would still land inside the signal, the
//! end sample becomes the symmetry point. This is Rilling's boundary rule, also
//! PyEMD's default (`nbsym = 2`), which the fixtures check against.

use super::extrema::Extrema;
use crate::error::ScalingError;

/// Extrema of each kind reflected beyond each end.
const NBSYM: usize = 2;

/// Knots for one envelope: positions (may lie beyond the signal) and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Knots {
    /// Positions, increasing.
    pub(crate) at: Vec<f64>,
    /// Values of the signal at the extrema the knots come from.
    pub(crate) value: Vec<f64>,
}

/// Knots for the upper (maxima) and the lower (minima) envelope of `s`, whose
/// extrema are `ext` (at least one maximum and one minimum).
pub(crate) fn knots(s: &[f64], ext: &Extrema) -> Result<(Knots, Knots), ScalingError> {
    let (max, min) = (&ext.maxima, &ext.minima);
    let (Some(&max_first), Some(&min_first), Some(&max_last), Some(&min_last)) =
        (max.first(), min.first(), max.last(), min.last())
    else {
        return Err(ScalingError::Series(
            "envelopes need at least one maximum and one minimum".into(),
        ));
    };
    let n = s.len();
    let last = n - 1;
    let (em, en) = (max.len(), min.len());

    // Left end: which extrema to reflect (nearest last), and about which index.
    let (mut lmax, mut lmin, mut lsym);
    if max_first < min_first {
        if s[0] > s[min_first] {
            lmax = rev(&max[1.min(em)..em.min(NBSYM + 1)]);
            lmin = rev(&min[..en.min(NBSYM)]);
            lsym = max_first;
        } else {
            lmax = rev(&max[..em.min(NBSYM)]);
            lmin = rev(&min[..en.min(NBSYM - 1)]);
            lmin.push(0);
            lsym = 0;
        }
    } else if s[0] < s[max_first] {
        lmax = rev(&max[..em.min(NBSYM)]);
        lmin = rev(&min[1.min(en)..en.min(NBSYM + 1)]);
        lsym = min_first;
    } else {
        lmax = rev(&max[..em.min(NBSYM - 1)]);
        lmax.push(0);
        lmin = rev(&min[..en.min(NBSYM)]);
        lsym = 0;
    }

    // Right end, symmetrically.
    let (mut rmax, mut rmin, mut rsym);
    if max_last < min_last {
        if s[last] < s[max_last] {
            rmax = rev(&max[em.saturating_sub(NBSYM)..]);
            rmin = rev(&min[en.saturating_sub(NBSYM + 1)..en - 1]);
            rsym = min_last;
        } else {
            let mut m = max[em.saturating_sub(NBSYM - 1)..].to_vec();
            m.push(last);
            rmax = rev(&m);
            rmin = rev(&min[en.saturating_sub(NBSYM)..]);
            rsym = last;
        }
    } else if s[last] > s[min_last] {
        rmax = rev(&max[em.saturating_sub(NBSYM + 1)..em - 1]);
        rmin = rev(&min[en.saturating_sub(NBSYM)..]);
        rsym = max_last;
    } else {
        rmax = rev(&max[em.saturating_sub(NBSYM)..]);
        let mut m = min[en.saturating_sub(NBSYM - 1)..].to_vec();
        m.push(last);
        rmin = rev(&m);
        rsym = last;
    }

    // With too few extrema a side may have none to reflect: reflect them all.
    for (side, all) in [
        (&mut lmin, min),
        (&mut rmin, min),
        (&mut lmax, max),
        (&mut rmax, max),
    ] {
        if side.is_empty() {
            side.clone_from(all);
        }
    }

    let reflect = |about: usize, idx: &[usize]| -> Vec<f64> {
        idx.iter().map(|&i| 2.0 * about as f64 - i as f64).collect()
    };
    let (mut tlmin, mut tlmax) = (reflect(lsym, &lmin), reflect(lsym, &lmax));
    let (mut trmin, mut trmax) = (reflect(rsym, &rmin), reflect(rsym, &rmax));

    // A reflection that stays inside the signal: reflect about the end instead.
    if tlmin[0] > 0.0 || tlmax[0] > 0.0 {
        if lsym == 0 {
            return Err(ScalingError::Series(
                "left end reflection inside the signal".into(),
            ));
        }
        if lsym == max_first {
            lmax = rev(&max[..em.min(NBSYM)]);
        } else {
            lmin = rev(&min[..en.min(NBSYM)]);
        }
        lsym = 0;
        tlmin = reflect(lsym, &lmin);
        tlmax = reflect(lsym, &lmax);
    }
    let end = last as f64;
    if trmin.last().is_some_and(|&t| t < end) || trmax.last().is_some_and(|&t| t < end) {
        if rsym == last {
            return Err(ScalingError::Series(
                "right end reflection inside the signal".into(),
            ));
        }
        if rsym == max_last {
            rmax = rev(&max[em.saturating_sub(NBSYM)..]);
        } else {
            rmin = rev(&min[en.saturating_sub(NBSYM)..]);
        }
        rsym = last;
        trmin = reflect(rsym, &rmin);
        trmax = reflect(rsym, &rmax);
    }

    let assemble =
        |left_t: Vec<f64>, left: &[usize], mid: &[usize], right_t: Vec<f64>, right: &[usize]| {
            let mut k = Knots::default();
            k.at.extend(left_t);
            k.value.extend(left.iter().map(|&i| s[i]));
            k.at.extend(mid.iter().map(|&i| i as f64));
            k.value.extend(mid.iter().map(|&i| s[i]));
            k.at.extend(right_t);
            k.value.extend(right.iter().map(|&i| s[i]));
            dedup_positions(&mut k);
            k
        };
    let upper = assemble(tlmax, &lmax, max, trmax, &rmax);
    let lower = assemble(tlmin, &lmin, min, trmin, &rmin);
    Ok((upper, lower))
}

/// The indices in reverse order (nearest the end first after reflection).
fn rev(idx: &[usize]) -> Vec<usize> {
    idx.iter().rev().copied().collect()
}

/// Of knots at the same position one after the other, keeps the last: a
/// reflection about an end sample that is itself a knot lands on it.
fn dedup_positions(k: &mut Knots) {
    let mut i = 0;
    while i + 1 < k.at.len() {
        if k.at[i + 1] == k.at[i] {
            k.at.remove(i);
            k.value.remove(i);
        } else {
            i += 1;
        }
    }
}
