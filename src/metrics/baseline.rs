//! Regression baselines: the metrics a CI gate compares, their tolerances,
//! and the comparison itself (pure; the CLI reads and writes the files).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::summary::Summary;

/// Version of the baseline file schema.
pub const BASELINE_SCHEMA_VERSION: u32 = 1;

/// The metrics a baseline holds, with their names in files and on the command line.
pub const METRICS: &[&str] = &[
    "hit_rate",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "tpot_mean",
    "tpot_p90",
    "e2e_p90",
    "throughput_rps",
    "output_tps",
    "requests_completed",
    "preemptions",
];

/// A committed baseline (`results/baselines/<scenario>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Schema version.
    pub schema_version: u32,
    /// Scenario file, relative to the repository root.
    pub scenario: String,
    /// Seed the run used.
    pub seed: u64,
    /// kvsim version that wrote it.
    pub kvsim_version: String,
    /// Metric name → value (latencies in ms, rates per second).
    pub metrics: BTreeMap<String, f64>,
}

/// The metrics of a run, by name.
pub fn metrics_of(s: &Summary) -> BTreeMap<String, f64> {
    let l = &s.latency;
    let values = [
        s.hit_rate,
        l.ttft_ms.p50,
        l.ttft_ms.p90,
        l.ttft_ms.p99,
        l.tpot_ms.mean,
        l.tpot_ms.p90,
        l.e2e_ms.p90,
        s.throughput.requests_per_s,
        s.throughput.output_tokens_per_s,
        s.requests_completed as f64,
        s.preemptions as f64,
    ];
    METRICS
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// How far a metric may move before the gate fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// |new − old| ≤ x.
    Absolute(f64),
    /// |new − old| ≤ x · |old|.
    Relative(f64),
}

impl Tolerance {
    fn allows(self, old: f64, new: f64) -> bool {
        let d = (new - old).abs();
        match self {
            Tolerance::Absolute(x) => d <= x,
            Tolerance::Relative(x) => d <= x * old.abs(),
        }
    }
}

/// The defaults: hit rate ±0.005 absolute, latencies ±5%, throughput ±2%,
/// completed requests and preemptions exact.
pub fn default_tolerances() -> BTreeMap<String, Tolerance> {
    METRICS
        .iter()
        .map(|&m| {
            let t = match m {
                "hit_rate" => Tolerance::Absolute(0.005),
                "throughput_rps" | "output_tps" => Tolerance::Relative(0.02),
                "requests_completed" | "preemptions" => Tolerance::Absolute(0.0),
                _ => Tolerance::Relative(0.05),
            };
            (m.to_string(), t)
        })
        .collect()
}

/// Parses `hit_rate=0.005,ttft_p90=5%` on top of the defaults. Errors name
/// the offending item and suggest the nearest metric name.
pub fn parse_tolerances(spec: &str) -> Result<BTreeMap<String, Tolerance>, String> {
    let mut t = default_tolerances();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("tolerance \"{item}\": expected metric=value"))?;
        let k = k.trim();
        if !METRICS.contains(&k) {
            let near = METRICS
                .iter()
                .map(|m| (strsim::jaro_winkler(k, m), *m))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(s, _)| *s > 0.7)
                .map(|(_, m)| format!("; did you mean \"{m}\"?"))
                .unwrap_or_default();
            return Err(format!(
                "unknown metric \"{k}\" (valid: {}){near}",
                METRICS.join(", ")
            ));
        }
        let v = v.trim();
        let tol = match v.strip_suffix('%') {
            Some(p) => Tolerance::Relative(
                p.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("tolerance \"{item}\": \"{v}\" is not a percentage"))?
                    / 100.0,
            ),
            None => Tolerance::Absolute(
                v.parse::<f64>()
                    .map_err(|_| format!("tolerance \"{item}\": \"{v}\" is not a number"))?,
            ),
        };
        match tol {
            Tolerance::Absolute(x) | Tolerance::Relative(x) if !(x >= 0.0) => {
                return Err(format!("tolerance \"{item}\": must be ≥ 0"));
            }
            _ => {}
        }
        t.insert(k.to_string(), tol);
    }
    Ok(t)
}

/// One metric outside its tolerance.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Metric name.
    pub metric: String,
    /// Baseline value.
    pub baseline: f64,
    /// New value.
    pub current: f64,
    /// Allowed movement.
    pub tolerance: Tolerance,
}

/// Metrics of `current` that moved beyond `tol` from `baseline` (a metric
/// missing on either side is a violation with NaN for the missing value).
pub fn compare(
    baseline: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
    tol: &BTreeMap<String, Tolerance>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for m in METRICS {
        let (old, new) = (baseline.get(*m).copied(), current.get(*m).copied());
        let t = tol[*m];
        let ok = matches!((old, new), (Some(o), Some(n)) if t.allows(o, n));
        if !ok {
            out.push(Violation {
                metric: m.to_string(),
                baseline: old.unwrap_or(f64::NAN),
                current: new.unwrap_or(f64::NAN),
                tolerance: t,
            });
        }
    }
    out
}

/// A readable table of violations.
pub fn diff_table(scenario: &str, v: &[Violation]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{scenario}: {} metric(s) outside tolerance", v.len());
    let _ = writeln!(
        o,
        "  {:<20}{:>14}{:>14}{:>12}{:>14}",
        "metric", "baseline", "current", "change", "tolerance"
    );
    for x in v {
        let change = if x.baseline != 0.0 {
            format!(
                "{:+.2}%",
                100.0 * (x.current - x.baseline) / x.baseline.abs()
            )
        } else {
            "-".into()
        };
        let tol = match x.tolerance {
            Tolerance::Absolute(a) => format!("±{a}"),
            Tolerance::Relative(r) => format!("±{}%", r * 100.0),
        };
        let _ = writeln!(
            o,
            "  {:<20}{:>14.6}{:>14.6}{:>12}{:>14}",
            x.metric, x.baseline, x.current, change, tol
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(hit: f64, ttft: f64) -> BTreeMap<String, f64> {
        METRICS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    match *k {
                        "hit_rate" => hit,
                        "ttft_p90" => ttft,
                        _ => 1.0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn tolerances_absolute_and_relative() {
        let t = parse_tolerances("hit_rate=0.01,ttft_p90=10%").unwrap();
        assert!(compare(&m(0.80, 100.0), &m(0.809, 109.0), &t).is_empty());
        let v = compare(&m(0.80, 100.0), &m(0.795, 111.0), &t);
        let names: Vec<&str> = v.iter().map(|x| x.metric.as_str()).collect();
        assert_eq!(names, vec!["ttft_p90"]);
        let v = compare(&m(0.80, 100.0), &m(0.789, 100.0), &t);
        assert_eq!(v[0].metric, "hit_rate");
        assert!(diff_table("s", &v).contains("hit_rate"));
    }

    #[test]
    fn bad_tolerances_are_named() {
        let e = parse_tolerances("tpot_mea=5%").unwrap_err();
        assert!(e.contains("did you mean \"tpot_mean\""), "{e}");
        assert!(parse_tolerances("hit_rate")
            .unwrap_err()
            .contains("metric=value"));
        assert!(parse_tolerances("hit_rate=x")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_tolerances("hit_rate=-1").unwrap_err().contains("≥ 0"));
    }
}
