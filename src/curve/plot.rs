//! Hit rate vs capacity plot (PNG and SVG) with named capacities marked.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::CapacityMark;
use super::output::CurvePoint;
use crate::report::font::register_fonts;

/// What the x axis shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityAxis {
    /// Blocks.
    Blocks,
    /// GiB (needs `capacity_gib` on every point).
    Gib,
}

/// Plot inputs.
pub struct CurvePlot<'a> {
    /// Title line.
    pub title: &'a str,
    /// Curve samples (capacity 0 is skipped on the log axis).
    pub points: &'a [CurvePoint],
    /// Vertical marks (capacities in blocks).
    pub marks: &'a [CapacityMark],
    /// Tokens per block, to convert marks to GiB.
    pub block_size: u32,
    /// KV bytes per token, when known (x axis in GiB).
    pub kv_bytes_per_token: Option<u64>,
}

/// Writes `stem.png` and `stem.svg`.
pub fn write_plots(
    plot: &CurvePlot,
    dir: &Path,
    stem: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    register_fonts();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        plot,
        BitMapBackend::new(&png, (1000, 640)).into_drawing_area(),
    )?;
    draw(plot, SVGBackend::new(&svg, (1000, 640)).into_drawing_area())?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    plot: &CurvePlot,
    root: DrawingArea<DB, Shift>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let axis = if plot.kv_bytes_per_token.is_some()
        && plot.points.iter().all(|p| p.capacity_gib.is_some())
    {
        CapacityAxis::Gib
    } else {
        CapacityAxis::Blocks
    };
    let to_gib = |blocks: u64| -> f64 {
        let per_token = plot.kv_bytes_per_token.unwrap_or(0) as f64;
        blocks as f64 * plot.block_size as f64 * per_token / (1u64 << 30) as f64
    };
    let x_of = |p: &CurvePoint| match axis {
        CapacityAxis::Gib => p.capacity_gib.unwrap_or(0.0),
        CapacityAxis::Blocks => p.capacity_blocks as f64,
    };
    let mark_x = |m: &CapacityMark| match axis {
        CapacityAxis::Gib => to_gib(m.n_blocks),
        CapacityAxis::Blocks => m.n_blocks as f64,
    };
    let xs: Vec<f64> = plot
        .points
        .iter()
        .map(x_of)
        .chain(plot.marks.iter().map(mark_x))
        .filter(|x| *x > 0.0)
        .collect();
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_max = xs.iter().copied().fold(0.0, f64::max);
    let (x_min, x_max) = if x_min.is_finite() && x_max > x_min {
        (x_min, x_max * 1.2)
    } else {
        (1.0, 10.0)
    };
    let x_label = match axis {
        CapacityAxis::Gib => "KV cache capacity (GiB, log scale)",
        CapacityAxis::Blocks => "KV cache capacity (blocks, log scale)",
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(plot.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("prefix hit rate (single LRU cache)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let pts = |f: fn(&CurvePoint) -> f64| -> Vec<(f64, f64)> {
        plot.points
            .iter()
            .filter(|p| x_of(p) > 0.0)
            .map(|p| (x_of(p), f(p)))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            pts(|p| p.hit_rate_blocks),
            BLUE.stroke_width(2),
        ))?
        .label("block-weighted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            pts(|p| p.hit_rate_tokens),
            RED.stroke_width(2),
        ))?
        .label("token-weighted")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    for (i, m) in plot.marks.iter().enumerate() {
        let x = mark_x(m);
        if x <= 0.0 {
            continue;
        }
        chart.draw_series(DashedLineSeries::new(
            vec![(x, 0.0), (x, 1.0)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?;
        let y = 0.97 - 0.05 * (i % 4) as f64;
        chart.draw_series(std::iter::once(Text::new(
            format!(" {}", m.label),
            (x, y),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("kvsim-curve-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let points: Vec<CurvePoint> = (0..20u64)
            .map(|i| {
                let c = 1u64 << i;
                CurvePoint {
                    capacity_blocks: c,
                    capacity_tokens: c * 16,
                    capacity_gib: Some(c as f64 * 16.0 * 32768.0 / (1u64 << 30) as f64),
                    hit_rate_blocks: i as f64 / 20.0,
                    hit_rate_tokens: i as f64 / 22.0,
                }
            })
            .collect();
        let marks = vec![CapacityMark {
            label: "H100-80GB".into(),
            n_blocks: 140_000,
        }];
        let plot = CurvePlot {
            title: "test",
            points: &points,
            marks: &marks,
            block_size: 16,
            kv_bytes_per_token: Some(32768),
        };
        write_plots(&plot, &dir, "curve").unwrap();
        let png = std::fs::read(dir.join("curve.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("curve.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("H100-80GB"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
