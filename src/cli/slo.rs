//! Latency SLOs for `kvsim plan`: `--slo ttft_p90=500ms,tpot_p90=50ms,e2e_p99=8s`.
//!
//! A metric name is `<latency>_<statistic>` with latency one of `ttft`,
//! `tpot`, `itl`, `e2e`, `queue_wait` and statistic one of `mean`, `p50`,
//! `p90`, `p99`, `max` (the `summary.json` distributions, `docs/metrics.md`).
//! A bound is a number with a unit: `us` (or `µs`), `ms` or `s`. A point
//! meets an SLO when the metric is at most the bound.

use std::fmt;

use crate::metrics::percentile::Dist;
use crate::metrics::summary::Summary;
use crate::scenario::error::nearest;

const LATENCIES: &[&str] = &["ttft", "tpot", "itl", "e2e", "queue_wait"];
const STATISTICS: &[&str] = &["mean", "p50", "p90", "p99", "max"];

/// Every metric name an SLO may bound.
pub(crate) fn metric_names() -> Vec<String> {
    LATENCIES
        .iter()
        .flat_map(|l| STATISTICS.iter().map(move |s| format!("{l}_{s}")))
        .collect()
}

/// Why an `--slo` list cannot be parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SloError {
    /// An item without `=`.
    #[error("--slo: `{item}`: expected metric=value with a unit, e.g. ttft_p90=500ms")]
    Malformed {
        /// The item.
        item: String,
    },
    /// An unknown metric name.
    #[error("--slo: unknown metric `{name}`{hint} (valid: {valid})")]
    UnknownMetric {
        /// The name as given.
        name: String,
        /// "; did you mean `x`?" or empty.
        hint: String,
        /// The valid names.
        valid: String,
    },
    /// A bound without a number, or a negative one.
    #[error("--slo: {metric}: `{value}` is not a non-negative number with a unit (us, ms, s)")]
    BadNumber {
        /// The metric.
        metric: String,
        /// The value as given.
        value: String,
    },
    /// A bound without a unit or with an unknown one.
    #[error("--slo: {metric}: `{value}` needs a unit: us, ms or s (e.g. {metric}=500ms)")]
    BadUnit {
        /// The metric.
        metric: String,
        /// The value as given.
        value: String,
    },
    /// The same metric twice.
    #[error("--slo: {metric} is given twice")]
    Duplicate {
        /// The metric.
        metric: String,
    },
    /// No SLO at all.
    #[error("--slo: empty; give at least one metric=value")]
    Empty,
}

/// One SLO: `metric ≤ bound_ms`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slo {
    /// Metric name, e.g. `ttft_p90`.
    pub(crate) metric: String,
    /// The bound, ms.
    pub(crate) bound_ms: f64,
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ≤ {} ms", self.metric, self.bound_ms)
    }
}

/// Parses `metric=value[,metric=value...]`.
pub(crate) fn parse_slos(s: &str) -> Result<Vec<Slo>, SloError> {
    let names = metric_names();
    let mut out: Vec<Slo> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((metric, value)) = item.split_once('=') else {
            return Err(SloError::Malformed { item: item.into() });
        };
        let metric = metric.trim();
        let value = value.trim();
        if !names.iter().any(|n| n == metric) {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(SloError::UnknownMetric {
                name: metric.into(),
                hint: nearest(metric, &refs)
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default(),
                valid: names.join(", "),
            });
        }
        if out.iter().any(|o| o.metric == metric) {
            return Err(SloError::Duplicate {
                metric: metric.into(),
            });
        }
        out.push(Slo {
            metric: metric.into(),
            bound_ms: parse_duration_ms(metric, value)?,
        });
    }
    if out.is_empty() {
        return Err(SloError::Empty);
    }
    Ok(out)
}

/// `500ms` → 500, `2s` → 2000, `750us` → 0.75, `1e3ms` → 1000. The unit is
/// the suffix, so an exponent or `nan` is judged as the number it tries to be.
fn parse_duration_ms(metric: &str, value: &str) -> Result<f64, SloError> {
    let v = value.trim();
    let Some((num, scale)) = [("us", 1e-3), ("µs", 1e-3), ("ms", 1.0), ("s", 1e3)]
        .iter()
        .find_map(|&(unit, scale)| v.strip_suffix(unit).map(|num| (num, scale)))
    else {
        return Err(SloError::BadUnit {
            metric: metric.into(),
            value: value.into(),
        });
    };
    match num.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && (x * scale).is_finite() => Ok(x * scale),
        _ => Err(SloError::BadNumber {
            metric: metric.into(),
            value: value.into(),
        }),
    }
}

/// The distribution a metric (a name from [`metric_names`]) reads and its
/// value there, ms; `None` for a name that is not a metric.
pub(crate) fn metric_stat<'a>(s: &'a Summary, metric: &str) -> Option<(&'a Dist, f64)> {
    let l = &s.latency;
    let (lat, stat) = metric.rsplit_once('_')?;
    let d: &Dist = match lat {
        "ttft" => &l.ttft_ms,
        "tpot" => &l.tpot_ms,
        "itl" => &l.itl_ms,
        "e2e" => &l.e2e_ms,
        "queue_wait" => &l.queue_wait_ms,
        _ => return None,
    };
    let x = match stat {
        "mean" => d.mean,
        "p50" => d.p50,
        "p90" => d.p90,
        "p99" => d.p99,
        "max" => d.max,
        _ => return None,
    };
    Some((d, x))
}

/// The value of a metric in a summary, ms (NaN for a name that is not one).
pub(crate) fn metric_ms(s: &Summary, metric: &str) -> f64 {
    metric_stat(s, metric).map_or(f64::NAN, |(_, x)| x)
}

/// What is violated at a point: one entry per failed SLO, plus rejected or
/// unfinished requests (a run that did not finish the requests that arrived
/// never passes: latencies of the few requests that were served say nothing
/// about the ones turned away; those arriving after a horizon do not count).
pub(crate) fn violations(s: &Summary, slos: &[Slo]) -> Vec<String> {
    let mut v: Vec<String> = slos
        .iter()
        .filter_map(|slo| {
            let x = metric_ms(s, &slo.metric);
            (!(x <= slo.bound_ms))
                .then(|| format!("{} {x:.1} ms > {} ms", slo.metric, slo.bound_ms))
        })
        .collect();
    if s.requests_rejected > 0 {
        v.push(format!("rejected={}", s.requests_rejected));
    }
    if s.requests_unfinished > 0 {
        v.push(format!("unfinished={}", s.requests_unfinished));
    }
    if s.requests_completed == 0 {
        v.push("no request completed".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_lists() {
        let s = parse_slos("ttft_p90=500ms, tpot_p90=50ms,e2e_p99=2.5s,itl_max=750us").unwrap();
        let got: Vec<(&str, f64)> = s.iter().map(|s| (s.metric.as_str(), s.bound_ms)).collect();
        assert_eq!(
            got,
            vec![
                ("ttft_p90", 500.0),
                ("tpot_p90", 50.0),
                ("e2e_p99", 2500.0),
                ("itl_max", 0.75)
            ]
        );
        assert_eq!(
            parse_slos("queue_wait_mean=1 s").unwrap()[0].bound_ms,
            1000.0
        );
    }

    #[test]
    fn errors_name_the_problem_and_suggest() {
        let e = parse_slos("ttf_p90=500ms").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--slo: unknown metric `ttf_p90`; did you mean `ttft_p90`?"),
            "{e}"
        );
        let e = parse_slos("tpot90=50ms").unwrap_err();
        assert!(e.to_string().contains("did you mean `tpot_p90`?"), "{e}");
        assert_eq!(
            parse_slos("ttft_p90=500").unwrap_err(),
            SloError::BadUnit {
                metric: "ttft_p90".into(),
                value: "500".into()
            }
        );
        assert!(matches!(
            parse_slos("ttft_p90=500min").unwrap_err(),
            SloError::BadUnit { .. }
        ));
        assert!(matches!(
            parse_slos("ttft_p90=-5ms").unwrap_err(),
            SloError::BadNumber { .. }
        ));
        assert!(matches!(
            parse_slos("ttft_p90=fast ms").unwrap_err(),
            SloError::BadNumber { .. }
        ));
        // The unit is the suffix: exponents parse, `nan` and overflow are bad numbers.
        assert_eq!(parse_slos("ttft_p90=1e3ms").unwrap()[0].bound_ms, 1000.0);
        for v in ["nanms", "1e400s", "infs", "ms"] {
            assert!(
                matches!(
                    parse_slos(&format!("ttft_p90={v}")).unwrap_err(),
                    SloError::BadNumber { .. }
                ),
                "{v}"
            );
        }
        assert!(matches!(
            parse_slos("ttft_p90").unwrap_err(),
            SloError::Malformed { .. }
        ));
        assert!(matches!(
            parse_slos("ttft_p90=1ms,ttft_p90=2ms").unwrap_err(),
            SloError::Duplicate { .. }
        ));
        assert_eq!(parse_slos(" , ").unwrap_err(), SloError::Empty);
    }
}
