//! TTFT and TPOT distributions as empirical CDFs, one line per run.

use super::{Axis, Body, Figure, Format, Panel, Series};
use crate::metrics::percentile::Dist;
use crate::report::html::num;
use crate::report::results::RunResults;
use crate::report::series::cdf_points;

/// Most vertices per CDF line (keeps SVGs small; ≤ 0.1% vertical error).
const CDF_MAX_POINTS: usize = 1000;
/// Use a log x axis when the largest value exceeds the smallest this much.
const LOG_RATIO: f64 = 50.0;

/// Time-to-first-token CDF.
pub fn ttft_cdf(runs: &[RunResults]) -> Figure {
    cdf_figure(
        runs,
        "ttft_cdf",
        "Time to first token (TTFT), CDF",
        "TTFT (ms)",
        |r| r.requests.iter().map(|q| q.ttft_ms).collect(),
        |r| r.summary.latency.ttft_ms,
        "TTFT = first token − arrival at the router, per completed request \
         (requests.csv ttft_ms). Each line is one run: the share of requests whose \
         TTFT is at most x.",
        "docs/metrics.md → Per request → ttft_ms",
    )
}

/// Time-per-output-token CDF (requests with one output token have none).
pub fn tpot_cdf(runs: &[RunResults]) -> Figure {
    cdf_figure(
        runs,
        "tpot_cdf",
        "Time per output token (TPOT), CDF",
        "TPOT (ms per token)",
        |r| r.requests.iter().filter_map(|q| q.tpot_ms).collect(),
        |r| r.summary.latency.tpot_ms,
        "TPOT = (finish − first token) / (output tokens − 1), per completed request \
         with more than one output token (requests.csv tpot_ms). Each line is one run: \
         the share of requests whose TPOT is at most x.",
        "docs/metrics.md → Per request → tpot_ms",
    )
}

#[allow(clippy::too_many_arguments)]
fn cdf_figure(
    runs: &[RunResults],
    stem: &str,
    title: &str,
    x_label: &str,
    values: impl Fn(&RunResults) -> Vec<f64>,
    dist: impl Fn(&RunResults) -> Dist,
    caption: &str,
    reference: &str,
) -> Figure {
    let per_run: Vec<Vec<f64>> = runs.iter().map(&values).collect();
    let series = runs
        .iter()
        .zip(&per_run)
        .enumerate()
        .map(|(i, (r, v))| {
            let d = dist(r);
            Series {
                label: r.label.clone(),
                detail: Some(if v.is_empty() {
                    "no values".to_string()
                } else {
                    format!("p50 {} ms, p90 {} ms", num(d.p50), num(d.p90))
                }),
                color_idx: i,
                points: cdf_points(v, CDF_MAX_POINTS),
            }
        })
        .collect();
    Figure {
        stem: stem.into(),
        title: title.into(),
        caption: caption.into(),
        reference: reference.into(),
        body: Body::Lines(vec![Panel {
            subtitle: None,
            x: Axis::spanning(x_label, per_run.iter().flatten().copied(), LOG_RATIO),
            y: Axis::linear("requests with value ≤ x (%)", 0.0, 1.0).with_format(Format::Percent),
            series,
        }]),
    }
}
