//! Sweep charts: each metric against the swept parameter, one line per
//! series (the `--sweep` CSV contract of [`crate::report::sweep`]).

use super::{Axis, Body, Figure, Format, Panel, Series};
use crate::report::results::ordered_unique;
use crate::report::sweep::SweepTable;

/// A numeric parameter spanning this ratio or more gets a log axis (pod
/// counts 1, 2, 4, … 64 read better that way).
const LOG_RATIO: f64 = 16.0;

/// One figure per metric column; stems are `{stem_prefix}_{metric}`.
pub fn sweep_figures(t: &SweepTable, stem_prefix: &str, source: &str) -> Vec<Figure> {
    let numeric = t
        .rows
        .iter()
        .all(|r| r.x.parse::<f64>().is_ok_and(f64::is_finite));
    let categories = ordered_unique(t.rows.iter().map(|r| r.x.as_str()));
    let x_of = |x: &str| -> f64 {
        if numeric {
            x.parse().unwrap_or(f64::NAN)
        } else {
            categories.iter().position(|c| c == x).unwrap_or(0) as f64
        }
    };
    let x_label = humanize(&t.x_name);
    let x_axis = if numeric {
        let xs: Vec<f64> = t.rows.iter().map(|r| x_of(&r.x)).collect();
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let axis = if lo > 0.0 && hi / lo >= LOG_RATIO {
            let pad = (hi / lo).powf(0.04);
            Axis::log(&format!("{x_label}, log scale"), lo / pad, hi * pad)
        } else {
            let pad = ((hi - lo) * 0.04).max(hi.abs() * 0.02).max(1e-9);
            Axis::linear(&x_label, lo - pad, hi + pad)
        };
        axis.with_ticks_at(xs)
    } else {
        Axis::categorical(&x_label, categories.clone())
    };
    let series_names = ordered_unique(t.rows.iter().map(|r| r.series.as_str()));
    t.metrics
        .iter()
        .enumerate()
        .map(|(m, metric)| {
            let series: Vec<Series> = series_names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut points: Vec<(f64, f64)> = t
                        .rows
                        .iter()
                        .filter(|r| r.series == *name)
                        .filter_map(|r| Some((x_of(&r.x), r.values.get(m).copied().flatten()?)))
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        label: if name.is_empty() {
                            "(unnamed)".into()
                        } else {
                            name.clone()
                        },
                        detail: None,
                        color_idx: i,
                        points,
                    }
                })
                .collect();
            let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
            let is_rate = is_fraction(metric);
            let y = if is_rate {
                let a = Axis::from_zero(&humanize(metric), values, 0.01);
                Axis::linear(&a.label, a.lo, a.hi.min(1.0)).with_format(Format::Percent)
            } else {
                Axis::from_zero(&humanize(metric), values, 1e-9)
            };
            Figure {
                stem: format!("{stem_prefix}_{}", sanitize(metric)),
                title: capitalize(&format!(
                    "{} vs {}",
                    humanize_bare(metric),
                    humanize_bare(&t.x_name)
                )),
                caption: format!(
                    "Sweep {source}: {metric} at each value of {} (one line per series). \
                     The metric is defined in docs/metrics.md under the same name.",
                    t.x_name
                ),
                reference: "docs/metrics.md → Report charts → sweep CSV".into(),
                body: Body::Lines(vec![Panel {
                    subtitle: None,
                    x: x_axis.clone(),
                    y,
                    series,
                }]),
            }
        })
        .collect()
}

fn is_fraction(name: &str) -> bool {
    name.contains("hit_rate") || name.ends_with("_fraction") || name.ends_with("_usage")
}

const UNITS: [(&str, &str); 7] = [
    ("_per_s", "/s"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_gib", "GiB"),
    ("_tokens", "tokens"),
    ("_blocks", "blocks"),
    ("_pct", "%"),
];

/// Words printed in capitals.
const ACRONYMS: [&str; 8] = ["ttft", "tpot", "itl", "e2e", "kv", "gpu", "qps", "slo"];

/// `ttft_p90_ms` → `TTFT p90`, without the unit.
fn humanize_bare(name: &str) -> String {
    let stem = UNITS
        .iter()
        .find_map(|(suf, _)| name.strip_suffix(suf))
        .unwrap_or(name);
    stem.split(['_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            if ACRONYMS.contains(&w.to_ascii_lowercase().as_str()) {
                w.to_ascii_uppercase()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ttft_p90_ms` → `ttft p90 (ms)`; fractions get `(%)`.
pub fn humanize(name: &str) -> String {
    let unit = UNITS
        .iter()
        .find(|(suf, _)| name.ends_with(suf))
        .map(|u| u.1);
    match unit {
        Some(u) => format!("{} ({u})", humanize_bare(name)),
        None if is_fraction(name) => format!("{} (%)", humanize_bare(name)),
        None => humanize_bare(name),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sweep::parse_sweep_csv;

    #[test]
    fn one_figure_per_metric_and_sorted_numeric_points() {
        let csv = "series,decode_pods,ttft_p90_ms,hit_rate\na,4,400,0.5\na,2,800,0.6\nb,2,900,\n";
        let t = parse_sweep_csv(csv.as_bytes(), "s.csv").unwrap();
        let f = sweep_figures(&t, "sweep", "s.csv");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].stem, "sweep_ttft_p90_ms");
        assert_eq!(f[0].title, "TTFT p90 vs decode pods");
        let Body::Lines(p) = &f[0].body else {
            panic!("lines")
        };
        assert_eq!(p[0].series[0].points, vec![(2.0, 800.0), (4.0, 400.0)]);
        assert_eq!(p[0].y.label, "TTFT p90 (ms)");
        assert_eq!(p[0].x.ticks(), vec![2.0, 4.0]);
        let Body::Lines(p) = &f[1].body else {
            panic!("lines")
        };
        assert_eq!(p[0].y.format, Format::Percent);
        assert!(p[0].series[1].points.is_empty());
    }

    #[test]
    fn text_parameters_make_a_categorical_axis() {
        let csv = "series,gpu,tok_per_s\na,H100,10\na,A100,7\n";
        let t = parse_sweep_csv(csv.as_bytes(), "s.csv").unwrap();
        let f = sweep_figures(&t, "sweep", "s.csv");
        let Body::Lines(p) = &f[0].body else {
            panic!("lines")
        };
        assert_eq!(p[0].x.tick_label(1.0), "A100");
        assert_eq!(p[0].series[0].points, vec![(0.0, 10.0), (1.0, 7.0)]);
    }
}
