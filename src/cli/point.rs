//! One configuration point of `kvsim sweep` or `kvsim plan`: a scenario with
//! `--set` overrides, simulated and reduced to the numbers the two compare.
//!
//! A point's seed never depends on the thread or the order it runs in: a
//! sweep derives it from the base seed and the point's canonical `key=value`
//! list ([`point_seed`]); a plan runs every point with the base seed itself
//! (common random numbers: every configuration sees the same workload).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::metrics::percentile::Dist;
use crate::metrics::summary::Summary;
use crate::scenario::resolve::{Overrides, Resolved};
use crate::scenario::set::resolve_with_sets;

/// The metric columns of a sweep row, in order (see [`PointMetrics::cells`]).
pub(crate) const METRIC_COLUMNS: &[&str] = &[
    "n_gpus",
    "hit_rate",
    "ttft_p50_ms",
    "ttft_p90_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "tpot_p90_ms",
    "e2e_p90_ms",
    "throughput_req_s",
    "throughput_out_tok_s",
    "requests_completed",
    "requests_rejected",
    "requests_unfinished",
    "preemptions",
];

/// How a point's seed is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeedRule {
    /// Derived from the base seed (this one, else the scenario's after the
    /// overrides) and the point's canonical `key=value` list.
    PerPoint(Option<u64>),
    /// The base seed itself (this one, else the scenario's) for every point.
    Common(Option<u64>),
}

/// A simulated point.
pub(crate) struct Evaluated {
    /// The seed the point ran with.
    pub(crate) seed: u64,
    /// Σ count × tensor_parallel_size over the pod groups.
    pub(crate) n_gpus: u32,
    /// The run's summary.
    pub(crate) summary: Summary,
}

/// The key numbers of a point, in [`METRIC_COLUMNS`] order.
pub(crate) fn metric_cells(e: &Evaluated) -> Vec<String> {
    let s = &e.summary;
    let l = &s.latency;
    vec![
        e.n_gpus.to_string(),
        num(s.hit_rate),
        stat_ms(&l.ttft_ms, l.ttft_ms.p50),
        stat_ms(&l.ttft_ms, l.ttft_ms.p90),
        stat_ms(&l.ttft_ms, l.ttft_ms.p99),
        stat_ms(&l.tpot_ms, l.tpot_ms.mean),
        stat_ms(&l.tpot_ms, l.tpot_ms.p90),
        stat_ms(&l.e2e_ms, l.e2e_ms.p90),
        num(s.throughput.requests_per_s),
        num(s.throughput.output_tokens_per_s),
        s.requests_completed.to_string(),
        s.requests_rejected.to_string(),
        s.requests_unfinished.to_string(),
        s.preemptions.to_string(),
    ]
}

/// A statistic of a latency distribution as a cell: empty when the
/// distribution has no sample, whose statistics summarize as 0 and would read
/// as an ideal latency (`kvsim report` treats an empty cell as no point).
pub(crate) fn stat_ms(d: &Dist, x: f64) -> String {
    if d.count == 0 {
        String::new()
    } else {
        num_ms(x)
    }
}

/// Shortest round-trip decimal of a float (deterministic across platforms).
pub(crate) fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

/// A latency in ms, rounded to the ns the simulator counts in (drops the
/// `…699999` noise of the ns → ms conversion).
pub(crate) fn num_ms(x: f64) -> String {
    num((x * 1e6).round() / 1e6)
}

/// Σ count × tensor_parallel_size.
pub(crate) fn n_gpus(r: &Resolved) -> u32 {
    r.pod_groups
        .iter()
        .map(|g| g.count * g.tensor_parallel_size)
        .sum()
}

/// `k=v` pairs sorted by key and joined with commas: the point's identity,
/// independent of the order the `--set` flags were given in.
pub(crate) fn canonical(sets: &[(String, String)]) -> String {
    let mut kv: Vec<String> = sets
        .iter()
        .map(|(k, v)| format!("{}={}", k.trim(), v.trim()))
        .collect();
    kv.sort();
    kv.join(",")
}

/// The seed of a sweep point: xxh3 of its canonical list, seeded with the base seed.
pub(crate) fn point_seed(base_seed: u64, sets: &[(String, String)]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(canonical(sets).as_bytes(), base_seed)
}

/// `out/<scenario stem>-<suffix>`: where `kvsim sweep` and `kvsim plan`
/// write when `--out` is not given (stem `scenario` when the path has none).
pub(crate) fn default_out_dir(scenario: &Path, suffix: &str) -> PathBuf {
    let stem = scenario
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    Path::new("out").join(format!("{stem}-{suffix}"))
}

/// Resolves the point (without simulating it) and fixes its seed.
pub(crate) fn resolve_point(
    scenario: &Path,
    sets: &[(String, String)],
    rule: SeedRule,
) -> anyhow::Result<Resolved> {
    let mut resolved = resolve_with_sets(scenario, sets, &Overrides::default())?;
    resolved.seed = match rule {
        SeedRule::PerPoint(base) => point_seed(base.unwrap_or(resolved.seed), sets),
        SeedRule::Common(base) => base.unwrap_or(resolved.seed),
    };
    Ok(resolved)
}

/// Resolves and simulates one point; `keep_dir` also writes its run outputs there.
pub(crate) fn evaluate(
    scenario: &Path,
    sets: &[(String, String)],
    rule: SeedRule,
    keep_dir: Option<&Path>,
) -> anyhow::Result<Evaluated> {
    let resolved = resolve_point(scenario, sets, rule)?;
    let seed = resolved.seed;
    let n_gpus = n_gpus(&resolved);
    let done = super::run_cmd::simulate(resolved, false, 1)?;
    if let Some(dir) = keep_dir {
        super::run_cmd::write_outputs(dir, &done)
            .with_context(|| format!("writing the point's run to {}", dir.display()))?;
    }
    Ok(Evaluated {
        seed,
        n_gpus,
        summary: done.summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn point_seed_depends_on_the_point_not_the_flag_order() {
        let a = sets(&[("decode", "2"), ("rate", "10")]);
        let b = sets(&[("rate", "10"), ("decode", "2")]);
        assert_eq!(canonical(&a), "decode=2,rate=10");
        assert_eq!(point_seed(42, &a), point_seed(42, &b));
        assert_ne!(point_seed(42, &a), point_seed(43, &a));
        assert_ne!(
            point_seed(42, &a),
            point_seed(42, &sets(&[("decode", "3"), ("rate", "10")]))
        );
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(f64::NAN), "");
        assert_eq!(num_ms(111.20159699999999), "111.201597");
    }

    #[test]
    fn default_out_dir_uses_the_scenario_stem() {
        let d = default_out_dir(Path::new("scenarios/pd.yaml"), "sweep");
        assert_eq!(d, Path::new("out").join("pd-sweep"));
        let d = default_out_dir(Path::new(""), "plan");
        assert_eq!(d, Path::new("out").join("scenario-plan"));
    }
}
