//! Report charts: a small format-independent figure model ([`Figure`]), one
//! builder per chart (from [`RunResults`] or a
//! sweep table), and rendering to SVG text or PNG bytes with plotters.
//!
//! Every figure uses the embedded DejaVu Sans font, the Okabe–Ito palette
//! (colour-blind safe; series past the eighth are dashed), axis labels with
//! units, and a legend in its own column right of the plot so it never
//! covers data.

pub mod axis;
mod draw;
pub mod hit_rate;
pub mod latency;
pub mod palette;
pub mod pod_series;
pub mod requests;
pub mod sweep;

use std::io::Write;

use plotters::prelude::*;

use crate::report::font::register_fonts;
use crate::report::results::RunResults;

pub use axis::{Axis, Format, Scale};

/// Width of every figure, px.
pub const FIGURE_WIDTH_PX: u32 = 1000;
/// Height of a one-panel figure, px.
pub const FIGURE_HEIGHT_PX: u32 = 600;
/// Height of each panel of a multi-panel figure, px.
pub const PANEL_HEIGHT_PX: u32 = 330;

/// One chart, independent of the output format.
#[derive(Clone, Debug)]
pub struct Figure {
    /// File stem (`hit_rate` → `hit_rate.png`).
    pub stem: String,
    /// Title drawn at the top.
    pub title: String,
    /// What the chart shows, for the HTML page.
    pub caption: String,
    /// Where the plotted metric is defined.
    pub reference: String,
    /// The plot body.
    pub body: Body,
}

/// The kind of plot.
#[derive(Clone, Debug)]
pub enum Body {
    /// Line panels stacked vertically (one per run, or a single overlay).
    Lines(Vec<Panel>),
    /// A grouped bar chart.
    Bars(Bars),
}

/// One line plot.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Drawn above the plot (e.g. the run label), if any.
    pub subtitle: Option<String>,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Lines, drawn in order.
    pub series: Vec<Series>,
}

/// One line: points in data units (log axes take raw values; the renderer
/// drops non-positive ones).
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Second legend line in smaller grey text (e.g. the run's overall value).
    pub detail: Option<String>,
    /// Palette index ([`palette::color`], [`palette::is_dashed`]).
    pub color_idx: usize,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A grouped bar chart: one group per category, one bar per series.
#[derive(Clone, Debug)]
pub struct Bars {
    /// Category names along x.
    pub categories: Vec<String>,
    /// What the categories are.
    pub x_label: String,
    /// Value axis.
    pub y: Axis,
    /// One bar series per run; `values[i]` belongs to `categories[i]`.
    pub groups: Vec<BarGroup>,
}

/// One bar series.
#[derive(Clone, Debug)]
pub struct BarGroup {
    /// Legend text.
    pub label: String,
    /// Second legend line in smaller grey text.
    pub detail: Option<String>,
    /// Palette index.
    pub color_idx: usize,
    /// Value per category (None: no bar).
    pub values: Vec<Option<f64>>,
}

/// A figure failed to render.
#[derive(Debug, thiserror::Error)]
#[error("drawing {stem}: {message}")]
pub struct PlotError {
    /// Figure stem.
    pub stem: String,
    /// plotters' or the encoder's message.
    pub message: String,
}

impl Figure {
    /// Pixel size: 1000×600 for one panel, 330 px per panel otherwise.
    pub fn size_px(&self) -> (u32, u32) {
        match &self.body {
            Body::Lines(p) if p.len() > 1 => (
                FIGURE_WIDTH_PX,
                draw::TITLE_HEIGHT_PX + PANEL_HEIGHT_PX * p.len() as u32,
            ),
            _ => (FIGURE_WIDTH_PX, FIGURE_HEIGHT_PX),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> PlotError {
        PlotError {
            stem: self.stem.clone(),
            message: e.to_string(),
        }
    }
}

/// The standard charts of one or more runs, in report order: aggregate and
/// per-pod hit rate, TTFT and TPOT CDFs, KV usage, queue length, requests
/// per pod.
pub fn run_figures(runs: &[RunResults]) -> Vec<Figure> {
    vec![
        hit_rate::aggregate(runs),
        hit_rate::per_pod(runs),
        latency::ttft_cdf(runs),
        latency::tpot_cdf(runs),
        pod_series::kv_usage(runs),
        pod_series::queue_length(runs),
        requests::requests_per_pod(runs),
    ]
}

/// The simulated-time axis shared by the time-series charts of `runs`.
fn time_axis(runs: &[RunResults]) -> Axis {
    let end_s = runs
        .iter()
        .flat_map(|r| r.samples.iter().map(|s| s.t_s))
        .fold(0.0, f64::max);
    Axis::linear("simulated time (s)", 0.0, (end_s * 1.01).max(1.0))
}

/// Pod names over all runs, in order of first appearance: a pod keeps its
/// colour across the per-run panels.
fn all_pods(runs: &[RunResults]) -> Vec<String> {
    let per_run: Vec<Vec<String>> = runs.iter().map(RunResults::pod_names).collect();
    crate::report::results::ordered_unique(per_run.iter().flatten().map(String::as_str))
}

/// Renders `fig` as an SVG document.
pub fn render_svg(fig: &Figure) -> Result<String, PlotError> {
    register_fonts();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, fig.size_px()).into_drawing_area();
        draw::figure(fig, &root).map_err(|e| fig.error(e))?;
        root.present().map_err(|e| fig.error(e))?;
    }
    Ok(svg)
}

/// Renders `fig` as a PNG image written to `out`.
pub fn render_png(fig: &Figure, out: &mut dyn Write) -> Result<(), PlotError> {
    register_fonts();
    let (w, h) = fig.size_px();
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw::figure(fig, &root).map_err(|e| fig.error(e))?;
        root.present().map_err(|e| fig.error(e))?;
    }
    let mut enc = png::Encoder::new(out, w, h);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    enc.set_color(png::ColorType::Rgb);
    let mut wr = enc.write_header().map_err(|e| fig.error(e))?;
    wr.write_image_data(&rgb).map_err(|e| fig.error(e))?;
    wr.finish().map_err(|e| fig.error(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(body: Body) -> Figure {
        Figure {
            stem: "t".into(),
            title: "Test figure".into(),
            caption: String::new(),
            reference: String::new(),
            body,
        }
    }

    fn panel(series: Vec<Series>) -> Panel {
        Panel {
            subtitle: Some("run".into()),
            x: Axis::linear("time (s)", 0.0, 10.0),
            y: Axis::linear("value", 0.0, 1.0).with_format(Format::Percent),
            series,
        }
    }

    #[test]
    fn renders_lines_to_png_and_svg() {
        let s = Series {
            label: "legend-entry-one".into(),
            detail: Some("detail-line".into()),
            color_idx: 9,
            points: vec![(0.0, 0.1), (5.0, 0.5), (10.0, 0.9)],
        };
        let f = fig(Body::Lines(vec![panel(vec![s.clone()]), panel(vec![s])]));
        assert_eq!(f.size_px(), (1000, draw::TITLE_HEIGHT_PX + 660));
        let svg = render_svg(&f).unwrap();
        assert!(svg.contains("<svg") && svg.contains("legend-entry-one"));
        assert!(svg.contains("detail-line"));
        assert!(svg.contains("\n40%\n"), "percent tick labels");
        let mut png = Vec::new();
        render_png(&f, &mut png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn empty_panel_says_no_data() {
        let svg = render_svg(&fig(Body::Lines(vec![panel(vec![])]))).unwrap();
        assert!(svg.contains("no data"));
    }

    #[test]
    fn renders_bars() {
        let f = fig(Body::Bars(Bars {
            categories: vec!["pod-0".into(), "pod-1".into()],
            x_label: "pod".into(),
            y: Axis::linear("requests", 0.0, 200.0),
            groups: vec![BarGroup {
                label: "a".into(),
                detail: None,
                color_idx: 0,
                values: vec![Some(150.0), None],
            }],
        }));
        let svg = render_svg(&f).unwrap();
        assert!(svg.contains("pod-1") && svg.contains("\n150\n"), "{svg}");
    }
}
