//! The SVG latency plot: one chart above the other, each with labelled axes — the
//! latency percentile distribution (x: percentile on a "nines" scale, y: ms on a log
//! scale) and, where the scenario has them, latency and other quantities (a rate, the
//! node's memory) over time.

use std::path::Path;

use plotters::prelude::*;

use crate::error::LoadError;

/// A named line: `(x, y)` points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// What a chart's x axis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Percentile, as `-log10(1 - p)`: 0 = 0 %, 1 = 90 %, 2 = 99 %, ...
    Percentile,
    /// Seconds since the measured traffic (or the ramp) started.
    Seconds,
    /// Minutes since a replayed trace started (the scaling simulator).
    Minutes,
}

/// One chart: a quantity against its x axis — latency in ms on a log scale against
/// the percentile, anything on a linear scale against time.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Caption.
    pub caption: String,
    /// The x axis.
    pub x: Axis,
    /// What the y axis shows, with its unit.
    pub y_desc: String,
    /// Lines to draw.
    pub series: Vec<Series>,
}

impl Chart {
    /// A percentile distribution chart.
    pub fn distribution(series: Vec<Series>) -> Self {
        Self {
            caption: "latency by percentile".into(),
            x: Axis::Percentile,
            y_desc: "latency (ms)".into(),
            series,
        }
    }

    /// A latency-over-time chart.
    pub fn timeline(series: Vec<Series>) -> Self {
        Self {
            caption: "latency over time (by intended send second)".into(),
            x: Axis::Seconds,
            y_desc: "latency (ms)".into(),
            series,
        }
    }

    /// Any quantity over time, on a linear axis from zero (`y_desc` names it and its
    /// unit).
    pub fn over_time(caption: &str, y_desc: &str, series: Vec<Series>) -> Self {
        Self {
            caption: caption.into(),
            x: Axis::Seconds,
            y_desc: y_desc.into(),
            series,
        }
    }

    /// Like [`Chart::over_time`], with x in minutes of a replayed trace.
    pub fn over_minutes(caption: &str, y_desc: &str, series: Vec<Series>) -> Self {
        Self {
            x: Axis::Minutes,
            ..Self::over_time(caption, y_desc, series)
        }
    }
}

/// A scenario's plot: a title and its charts, stacked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plot {
    /// Title above the charts.
    pub title: String,
    /// Charts, top to bottom.
    pub charts: Vec<Chart>,
}

const WIDTH: u32 = 1000;
const CHART_HEIGHT: u32 = 420;
const TITLE_HEIGHT: u32 = 40;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl Plot {
    /// Writes the plot as an SVG file.
    pub fn write_svg(&self, path: &Path) -> Result<(), LoadError> {
        std::fs::write(path, self.to_svg()?)?;
        Ok(())
    }

    /// The plot as SVG text.
    pub fn to_svg(&self) -> Result<String, LoadError> {
        let mut svg = String::new();
        let charts = u32::try_from(self.charts.len().max(1)).unwrap_or(1);
        let height = TITLE_HEIGHT + CHART_HEIGHT * charts;
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            let (title, body) = root.split_vertically(TITLE_HEIGHT);
            title
                .titled(&self.title, ("sans-serif", 22))
                .map_err(plot_error)?;
            let areas = body.split_evenly((self.charts.len().max(1), 1));
            for (chart, area) in self.charts.iter().zip(areas.iter()) {
                draw_chart(chart, area)?;
            }
            root.present().map_err(plot_error)?;
        }
        Ok(svg)
    }
}

fn draw_chart<DB: DrawingBackend>(
    chart: &Chart,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), LoadError>
where
    DB::ErrorType: 'static,
{
    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (0.0f64, f64::MAX, 0.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        if y > 0.0 {
            y_min = y_min.min(y);
        }
        y_max = y_max.max(y);
    }
    // A log axis needs a positive range with some height.
    let y_min = if y_min == f64::MAX {
        0.01
    } else {
        (y_min * 0.8).max(0.001)
    };
    let linear_max = (y_max * 1.1).max(0.01);
    let y_max = (y_max * 1.25).max(y_min * 10.0);
    let x_max = match chart.x {
        Axis::Percentile => x_max.ceil().max(2.0),
        Axis::Seconds | Axis::Minutes => x_max.ceil().max(1.0),
    };
    let x_desc = match chart.x {
        Axis::Percentile => "percentile",
        Axis::Seconds => "seconds since the traffic started",
        Axis::Minutes => "minutes since the trace started",
    };
    let percentile = |x: &f64| percentile_label(*x);
    let seconds = |x: &f64| format_number(*x);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&chart.caption, ("sans-serif", 18))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(70);
    // The two y axes have different types, so the drawing is spelled out for each.
    macro_rules! draw {
        ($ctx:expr, $floor:expr, $x_labels:expr, $x_format:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(x_desc)
                .y_desc(chart.y_desc.as_str())
                .y_label_formatter(&|y| format_value(*y))
                .x_labels($x_labels)
                .x_label_formatter($x_format)
                .draw()
                .map_err(plot_error)?;
            for (i, series) in chart.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let points = series.points.iter().map(|&(x, y)| (x, y.max($floor)));
                ctx.draw_series(LineSeries::new(points, color.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            if !chart.series.is_empty() {
                ctx.configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(plot_error)?;
            }
        }};
    }
    match chart.x {
        // Percentile curves span decades of latency: a log axis.
        Axis::Percentile => draw!(
            builder
                .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
                .map_err(plot_error)?,
            y_min,
            x_max as usize + 1,
            &percentile
        ),
        // Over time, a linear axis from zero shows stalls as they are.
        Axis::Seconds | Axis::Minutes => draw!(
            builder
                .build_cartesian_2d(0f64..x_max, 0f64..linear_max)
                .map_err(plot_error)?,
            0.0,
            (x_max as usize + 1).min(11),
            &seconds
        ),
    }
    Ok(())
}

/// `x = -log10(1 - p)` as a percentage: 0 → "0%", 1 → "90%", 2 → "99%", 3 → "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as i64 - 2).clamp(0, 6) as usize;
    format!("{p:.decimals$}%")
}

/// Whole numbers from 1 up, a few decimals below.
fn format_value(y: f64) -> String {
    if y >= 1.0 {
        format!("{y:.0}")
    } else {
        format_number(y)
    }
}

/// Up to three decimals, without trailing zeros: 2 → "2", 0.25 → "0.25".
fn format_number(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn plot_error(e: impl std::fmt::Display) -> LoadError {
    LoadError::Plot(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_count_nines() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
        assert_eq!(format_value(12.4), "12");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(3.0), "3");
    }

    #[test]
    fn plots_render_to_svg_with_labelled_axes() {
        let series = |name: &str| Series {
            name: name.into(),
            points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 5.0), (3.0, 40.0)],
        };
        let plot = Plot {
            title: "test run".into(),
            charts: vec![
                Chart::distribution(vec![series("send→ack"), series("send→delivery")]),
                Chart::timeline(vec![series("p99")]),
                Chart::timeline(Vec::new()),
                Chart::over_time("memory", "node RSS (MB)", vec![series("rss")]),
            ],
        };
        let svg = plot.to_svg().expect("renders");
        assert!(svg.starts_with("<svg"));
        for text in [
            "test run",
            "percentile",
            "latency (ms)",
            "seconds since the traffic started",
            "99%",
            "send→ack",
            "node RSS (MB)",
        ] {
            assert!(svg.contains(text), "the plot shows {text:?}");
        }
    }
}
