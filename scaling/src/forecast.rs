//! EMD-ARIMA: decompose the load series, forecast every component with its own
//! ARIMA model, and sum.
//!
//! The components of an EMD are close to uncorrelated by construction, so the
//! forecast's variance is taken as the sum of the components' variances; the
//! interval is normal around the summed mean. That assumption is an
//! approximation (components share the end of the window, where EMD is least
//! certain) and the interval is best read as a guide, which is how the
//! recommender uses it: it sizes for the upper end, not for the mean.

use serde::{Deserialize, Serialize};

use crate::arima::{self, ArimaFit, Forecast, Order, SelectionLimits};
use crate::emd::Emd;
use crate::error::ScalingError;

/// Fewest samples a forecast needs: below it neither EMD nor ARIMA order
/// selection has anything to work with.
pub const MIN_SAMPLES: usize = 24;

/// How forecasts are made.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Predictor {
    /// The decomposition.
    pub emd: Emd,
    /// The ARIMA orders tried for each component.
    pub orders: SelectionLimits,
    /// Normal quantile of the interval (1.96: 95 %).
    pub z: f64,
}

impl Default for Predictor {
    fn default() -> Self {
        Self {
            emd: Emd::default(),
            orders: SelectionLimits::default(),
            z: arima::Z95,
        }
    }
}

/// One component's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentModel {
    /// The order chosen for it; `None` when no ARIMA could be fitted and the
    /// component was carried forward at its last value.
    pub order: Option<Order>,
    /// Its forecast at the last step of the horizon.
    pub last_mean: f64,
}

/// A forecast `horizon` steps ahead of the series' last sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadForecast {
    /// Expected load 1 … horizon steps ahead.
    pub mean: Vec<f64>,
    /// Lower end of the interval at each step.
    pub lower: Vec<f64>,
    /// Upper end of the interval at each step.
    pub upper: Vec<f64>,
    /// The components (IMFs, fastest first, then the residue) and their models.
    pub components: Vec<ComponentModel>,
}

impl LoadForecast {
    /// The highest upper end over the horizon: the load to provision for.
    pub fn peak_upper(&self) -> f64 {
        self.upper.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

impl Predictor {
    /// Forecasts `series` (oldest first, evenly spaced) `horizon` steps ahead.
    pub fn forecast(&self, series: &[f64], horizon: usize) -> Result<LoadForecast, ScalingError> {
        check(series, horizon)?;
        let decomposition = self.emd.decompose(series)?;
        let parts = decomposition
            .components()
            .map(|c| {
                let fitted = arima::select(c, self.orders).ok().map(|s| s.best);
                component_forecast(c, fitted.as_ref(), horizon)
            })
            .collect();
        Ok(sum(parts, self.z))
    }
}

/// A [`Predictor`] that remembers each component's model between forecasts of
/// a sliding window: orders are selected again every `reselect_every`
/// forecasts (or when the number of components changes), and in between each
/// component's model is refitted from its previous estimates, which costs one
/// optimisation instead of a grid of them.
#[derive(Debug, Clone)]
pub struct Forecaster {
    /// How forecasts are made.
    pub predictor: Predictor,
    /// Forecasts between two order selections (1: select every time).
    pub reselect_every: u32,
    /// Each component's last model, fastest first.
    models: Vec<Option<ArimaFit>>,
    /// Forecasts since the last selection.
    since_select: u32,
}

impl Forecaster {
    /// A forecaster that has not forecast yet.
    pub fn new(predictor: Predictor, reselect_every: u32) -> Self {
        Self {
            predictor,
            reselect_every: reselect_every.max(1),
            models: Vec::new(),
            since_select: 0,
        }
    }

    /// Forecasts `series` `horizon` steps ahead, like [`Predictor::forecast`].
    pub fn forecast(
        &mut self,
        series: &[f64],
        horizon: usize,
    ) -> Result<LoadForecast, ScalingError> {
        check(series, horizon)?;
        let decomposition = self.predictor.emd.decompose(series)?;
        let count = decomposition.imfs.len() + 1;
        let reselect = self.since_select == 0 || self.models.len() != count;
        if reselect {
            self.models = vec![None; count];
        }
        let mut parts = Vec::with_capacity(count);
        for (component, model) in decomposition.components().zip(self.models.iter_mut()) {
            let refitted = match model.as_ref() {
                Some(previous) if !reselect => arima::refit(component, previous).ok(),
                _ => None,
            };
            let fitted = match refitted {
                Some(f) => Some(f),
                None => arima::select(component, self.predictor.orders)
                    .ok()
                    .map(|s| s.best),
            };
            parts.push(component_forecast(component, fitted.as_ref(), horizon));
            *model = fitted;
        }
        self.since_select = (self.since_select + 1) % self.reselect_every;
        Ok(sum(parts, self.predictor.z))
    }
}

fn check(series: &[f64], horizon: usize) -> Result<(), ScalingError> {
    if series.len() < MIN_SAMPLES {
        return Err(ScalingError::Series(format!(
            "{} samples; a forecast needs at least {MIN_SAMPLES}",
            series.len()
        )));
    }
    if horizon == 0 {
        return Err(ScalingError::Settings(
            "the horizon is at least one step".into(),
        ));
    }
    Ok(())
}

/// Sums the components' forecasts (variances too: the components are taken
/// as independent).
fn sum(parts: Vec<(Option<Order>, Forecast)>, z: f64) -> LoadForecast {
    let horizon = parts.first().map_or(0, |(_, f)| f.mean.len());
    let mut total = Forecast {
        mean: vec![0.0; horizon],
        variance: vec![0.0; horizon],
    };
    let mut components = Vec::with_capacity(parts.len());
    for (order, fc) in parts {
        for (t, c) in total.mean.iter_mut().zip(&fc.mean) {
            *t += c;
        }
        for (t, c) in total.variance.iter_mut().zip(&fc.variance) {
            *t += c;
        }
        components.push(ComponentModel {
            order,
            last_mean: fc.mean.last().copied().unwrap_or(0.0),
        });
    }
    LoadForecast {
        lower: total.lower(z),
        upper: total.upper(z),
        mean: total.mean,
        components,
    }
}

/// One component's forecast: from its fitted model, or, when none could be
/// fitted, the last value carried forward with the variance of a random walk of
/// the component's steps.
fn component_forecast(
    component: &[f64],
    fitted: Option<&ArimaFit>,
    horizon: usize,
) -> (Option<Order>, Forecast) {
    if let Some(f) = fitted {
        return (Some(f.order), f.forecast(horizon));
    }
    let last = component.last().copied().unwrap_or(0.0);
    let steps = arima::difference(component, 1);
    let step_var = if steps.is_empty() {
        0.0
    } else {
        steps.iter().map(|s| s * s).sum::<f64>() / steps.len() as f64
    };
    let forecast = Forecast {
        mean: vec![last; horizon],
        variance: (1..=horizon).map(|k| k as f64 * step_var).collect(),
    };
    (None, forecast)
}
