//! Drawing a [`Figure`] on any plotters backend: title, panels stacked
//! vertically, and a legend column right of each plot.

use std::fmt::Display;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::palette::{color, is_dashed};
use super::{Axis, Bars, Body, Figure, Panel};

/// Height of the title strip, px.
pub(super) const TITLE_HEIGHT_PX: u32 = 48;

const FONT: &str = "sans-serif";
const TITLE_PT: u32 = 26;
const SUBTITLE_PT: u32 = 19;
const TICK_PT: u32 = 16;
const AXIS_DESC_PT: u32 = 17;
const LEGEND_PT: u32 = 16;
const LEGEND_DETAIL_PT: u32 = 14;
const LEGEND_DETAIL_PX: i32 = 18;
const LEGEND_ROW_PX: i32 = 24;
const LEGEND_SAMPLE_PX: i32 = 28;
const LEGEND_MIN_PX: u32 = 130;
const LEGEND_MAX_PX: u32 = 340;
/// Series with at most this many points also get a dot per point.
const MARKER_MAX_POINTS: usize = 60;

fn err(e: impl Display) -> String {
    e.to_string()
}

/// Draws `fig` on `root`.
pub(super) fn figure<DB: DrawingBackend>(
    fig: &Figure,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let (title, body) = root.split_vertically(TITLE_HEIGHT_PX);
    title
        .draw_text(
            &fig.title,
            &(FONT, TITLE_PT)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, TITLE_HEIGHT_PX as i32 / 2),
        )
        .map_err(err)?;
    match &fig.body {
        Body::Lines(panels) => {
            let legend_w = legend_width(panels.iter().flat_map(|p| {
                p.series
                    .iter()
                    .map(|s| (s.label.as_str(), s.detail.as_deref()))
            }));
            let areas = body.split_evenly((panels.len().max(1), 1));
            for (p, a) in panels.iter().zip(&areas) {
                line_panel(p, a, legend_w)?;
            }
            Ok(())
        }
        Body::Bars(b) => {
            let legend_w = legend_width(
                b.groups
                    .iter()
                    .map(|g| (g.label.as_str(), g.detail.as_deref())),
            );
            bar_panel(b, &body, legend_w)
        }
    }
}

fn text_width(s: &str, pt: u32) -> u32 {
    (FONT, pt)
        .into_font()
        .box_size(s)
        .map_or(s.chars().count() as u32 * pt * 6 / 10, |(w, _)| w)
}

fn legend_width<'a>(labels: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> u32 {
    let widest = labels
        .map(|(l, d)| {
            let dw = d.map_or(0, |d| text_width(d, LEGEND_DETAIL_PT));
            text_width(l, LEGEND_PT).max(dw)
        })
        .max()
        .unwrap_or(0);
    (widest + LEGEND_SAMPLE_PX as u32 + 40).clamp(LEGEND_MIN_PX, LEGEND_MAX_PX)
}

/// Shortens `label` with an ellipsis until it fits `max_px`.
fn fit(label: &str, pt: u32, max_px: u32) -> String {
    if text_width(label, pt) <= max_px {
        return label.to_string();
    }
    let mut chars: Vec<char> = label.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if text_width(&s, pt) <= max_px {
            return s;
        }
    }
    "…".into()
}

struct LegendEntry {
    label: String,
    detail: Option<String>,
    color_idx: usize,
    filled: bool,
}

/// Legend rows top-down from `top_px`; rows that do not fit become "+N more".
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    top_px: i32,
) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let bottom = h as i32 - 8;
    let height = |e: &LegendEntry| {
        LEGEND_ROW_PX
            + if e.detail.is_some() {
                LEGEND_DETAIL_PX
            } else {
                0
            }
    };
    let text_x = 8 + LEGEND_SAMPLE_PX + 8;
    let max_text = w.saturating_sub(text_x as u32 + 4);
    let font = (FONT, LEGEND_PT)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let detail_font = (FONT, LEGEND_DETAIL_PT)
        .into_font()
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut top = top_px;
    for (i, e) in entries.iter().enumerate() {
        let rest = entries.len() - i;
        let need = height(e) + if rest > 1 { LEGEND_ROW_PX } else { 0 };
        if top + need > bottom {
            let y = top + LEGEND_ROW_PX / 2;
            area.draw_text(&format!("+{rest} more"), &font, (text_x, y))
                .map_err(err)?;
            break;
        }
        let y = top + LEGEND_ROW_PX / 2;
        let c = color(e.color_idx);
        if e.filled {
            area.draw(&Rectangle::new(
                [(8, y - 7), (8 + LEGEND_SAMPLE_PX, y + 7)],
                c.filled(),
            ))
            .map_err(err)?;
        } else if is_dashed(e.color_idx) {
            for (a, b) in [(0, 8), (13, 21), (26, LEGEND_SAMPLE_PX)] {
                area.draw(&PathElement::new(
                    vec![(8 + a, y), (8 + b, y)],
                    c.stroke_width(3),
                ))
                .map_err(err)?;
            }
        } else {
            area.draw(&PathElement::new(
                vec![(8, y), (8 + LEGEND_SAMPLE_PX, y)],
                c.stroke_width(3),
            ))
            .map_err(err)?;
        }
        area.draw_text(&fit(&e.label, LEGEND_PT, max_text), &font, (text_x, y))
            .map_err(err)?;
        if let Some(d) = &e.detail {
            area.draw_text(
                &fit(d, LEGEND_DETAIL_PT, max_text),
                &detail_font,
                (text_x, y + LEGEND_DETAIL_PX),
            )
            .map_err(err)?;
        }
        top += height(e);
    }
    Ok(())
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    subtitle: Option<&'b str>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.margin_top(6)
        .margin_right(18)
        .margin_left(6)
        .margin_bottom(2)
        .x_label_area_size(50)
        .y_label_area_size(86);
    if let Some(s) = subtitle {
        b.caption(s, (FONT, SUBTITLE_PT));
    }
    b
}

/// Where the legend starts: level with the top of the plot.
fn legend_top(subtitle: bool) -> i32 {
    if subtitle {
        6 + SUBTITLE_PT as i32 + 12
    } else {
        10
    }
}

fn line_panel<DB: DrawingBackend>(
    p: &Panel,
    area: &DrawingArea<DB, Shift>,
    legend_w: u32,
) -> Result<(), String> {
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(legend_w));
    let mut chart = chart_builder(&plot_area, p.subtitle.as_deref())
        .build_cartesian_2d(
            Ticked::new(p.x.draw_range(), p.x.ticks()),
            Ticked::new(p.y.draw_range(), p.y.ticks()),
        )
        .map_err(err)?;
    mesh(&mut chart, &p.x, &p.y)?;
    let mut any = false;
    for s in &p.series {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|&(x, y)| Some((p.x.to_draw(x)?, p.y.to_draw(y)?)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        any = true;
        let c = color(s.color_idx);
        if is_dashed(s.color_idx) {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?;
        }
        if pts.len() <= MARKER_MAX_POINTS {
            chart
                .draw_series(pts.iter().map(|&q| Circle::new(q, 3, c.filled())))
                .map_err(err)?;
        }
    }
    if !any {
        no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    let entries: Vec<LegendEntry> = p
        .series
        .iter()
        .map(|s| LegendEntry {
            label: s.label.clone(),
            detail: s.detail.clone(),
            color_idx: s.color_idx,
            filled: false,
        })
        .collect();
    legend(&legend_area, &entries, legend_top(p.subtitle.is_some()))
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    area.draw_text(
        "no data",
        &(FONT, 18)
            .into_font()
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Center)),
        (w as i32 / 2, h as i32 / 2),
    )
    .map_err(err)
}

/// A linear f64 axis whose grid lines and labels sit exactly at the ticks
/// [`Axis::ticks`] chose (no light grid), with the default formatter hook so
/// `x_label_formatter` can print our labels.
#[derive(Clone)]
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new((lo, hi): (f64, f64), ticks: Vec<f64>) -> Ticked {
        Ticked { lo, hi, ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if !(span > 0.0) {
            return (limit.0 + limit.1) / 2;
        }
        let frac = ((v - self.lo) / span).clamp(-1.0, 2.0);
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

type Coord2 = Cartesian2d<Ticked, Ticked>;

fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coord2>,
    x: &Axis,
    y: &Axis,
) -> Result<(), String> {
    let xf = |v: &f64| x.tick_label(*v);
    let yf = |v: &f64| y.tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(x.label.as_str())
        .y_desc(y.label.as_str())
        .label_style((FONT, TICK_PT))
        .axis_desc_style((FONT, AXIS_DESC_PT))
        .bold_line_style(RGBColor(222, 222, 222))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .draw()
        .map_err(err)
}

fn bar_panel<DB: DrawingBackend>(
    b: &Bars,
    area: &DrawingArea<DB, Shift>,
    legend_w: u32,
) -> Result<(), String> {
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(legend_w));
    let n = b.categories.len().max(1);
    // Label every k-th category so names never overlap.
    let plot_w = plot_area.dim_in_pixel().0.saturating_sub(110).max(1);
    let widest = b
        .categories
        .iter()
        .map(|c| text_width(c, TICK_PT) + 10)
        .max()
        .unwrap_or(1);
    let every = (widest as usize * n).div_ceil(plot_w as usize).max(1);
    let ticks: Vec<f64> = (0..n).step_by(every).map(|i| i as f64).collect();
    let x = Axis::linear(&b.x_label, -0.5, n as f64 - 0.5);
    let mut chart = chart_builder(&plot_area, None)
        .build_cartesian_2d(
            Ticked::new((-0.5, n as f64 - 0.5), ticks),
            Ticked::new(b.y.draw_range(), b.y.ticks()),
        )
        .map_err(err)?;
    let cats = &b.categories;
    let xf = |v: &f64| {
        let i = v.round();
        if i >= 0.0 {
            cats.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let yf = |v: &f64| b.y.tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(x.label.as_str())
        .y_desc(b.y.label.as_str())
        .label_style((FONT, TICK_PT))
        .axis_desc_style((FONT, AXIS_DESC_PT))
        .bold_line_style(RGBColor(222, 222, 222))
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .draw()
        .map_err(err)?;
    let g = b.groups.len().max(1) as f64;
    let slot = 0.8 / g;
    let value_labels = b.groups.len() * n <= 40;
    let label_font = (FONT, 12)
        .into_font()
        .color(&RGBColor(60, 60, 60))
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (gi, grp) in b.groups.iter().enumerate() {
        let c = color(grp.color_idx);
        for (ci, v) in grp.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let x0 = ci as f64 - 0.4 + gi as f64 * slot;
            let x1 = x0 + slot * 0.9;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, v)],
                    c.filled(),
                )))
                .map_err(err)?;
            if value_labels {
                let text = if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                };
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at(((x0 + x1) / 2.0, v))
                            + Text::new(text, (0, -3), label_font.clone()),
                    ))
                    .map_err(err)?;
            }
        }
    }
    if b.groups
        .iter()
        .all(|g| g.values.iter().all(Option::is_none))
    {
        no_data(&chart.plotting_area().strip_coord_spec())?;
    }
    let entries: Vec<LegendEntry> = b
        .groups
        .iter()
        .map(|g| LegendEntry {
            label: g.label.clone(),
            detail: g.detail.clone(),
            color_idx: g.color_idx,
            filled: true,
        })
        .collect();
    legend(&legend_area, &entries, legend_top(false))
}
