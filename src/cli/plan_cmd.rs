//! `kvsim plan SCENARIO --slo ttft_p90=500ms,tpot_p90=50ms [--rate R] [--max-pods N]
//! [--search decode,prefill] [--saturate] [--set key=value]... [--out DIR]`.
//!
//! Without `--saturate`: the cheapest configuration (fewest GPUs, then the
//! best hit rate) whose run meets every SLO at the rate, searching pod counts
//! in `1..=max-pods` (`--search`: `decode`, `prefill` or `pods[i].count`; by
//! default the prefill and decode groups of a P/D scenario, else its single
//! pod group) with the searches of [`super::plan_search`]. With `--saturate`:
//! the highest rate the configuration sustains under the SLOs.
//!
//! Every point runs with the scenario's seed (or `--seed`), so all of them see
//! the same workload. A point passes when every SLO holds and every request
//! completed (none rejected or unfinished). The evidence (every evaluated point, its metrics and pass/fail)
//! is printed and written to `DIR/plan.csv`. An answer that does not exist
//! (infeasible at `--max-pods`, or no rate sustained) exits with code 1.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::plan_search::{search_counts, search_rate, Probe};
use super::point::{self, num, stat_ms, Evaluated, SeedRule};
use super::slo::{metric_ms, metric_stat, parse_slos, violations, Slo};
use crate::scenario::resolve::Resolved;
use crate::trace::gen::arrival::ArrivalSpec;

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Scenario file (YAML).
    scenario: PathBuf,
    /// SLOs: metric=bound with a unit (us, ms, s), comma-separated; metrics
    /// are ttft, tpot, itl, e2e, queue_wait with _mean, _p50, _p90, _p99, _max.
    #[arg(long, value_name = "METRIC=VALUE,...")]
    slo: String,
    /// Arrival rate, req/s (the `rate` alias; default: the scenario's). With
    /// --saturate: where the rate search starts.
    #[arg(long)]
    rate: Option<f64>,
    /// Largest pod count tried per searched group.
    #[arg(long, default_value_t = 16)]
    max_pods: u32,
    /// Counts to search: decode, prefill or pods[i].count (one or two).
    #[arg(long, value_delimiter = ',')]
    search: Vec<String>,
    /// Find the highest rate the configuration sustains instead.
    #[arg(long)]
    saturate: bool,
    /// Relative width of the final rate bracket with --saturate.
    #[arg(long, default_value_t = 0.02)]
    rel_tol: f64,
    /// `key=value` applied to the scenario first (see `kvsim sweep --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Seed of every run (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory for plan.csv (default: out/<scenario stem>-plan).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only the answer.
    #[arg(long, short)]
    quiet: bool,
}

/// No configuration meets the SLOs: exit code 1, not an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Infeasible(pub(crate) String);

/// A plan to compute.
#[derive(Clone, Debug)]
pub(crate) struct PlanSpec {
    /// Scenario file.
    pub(crate) scenario: PathBuf,
    /// SLOs.
    pub(crate) slos: Vec<Slo>,
    /// `--rate`.
    pub(crate) rate: Option<f64>,
    /// `--max-pods`.
    pub(crate) max_pods: u32,
    /// `--search` (empty: the default).
    pub(crate) search: Vec<String>,
    /// `--set` pairs applied first.
    pub(crate) base_sets: Vec<(String, String)>,
    /// `--seed`.
    pub(crate) seed: Option<u64>,
}

/// The answer and its evidence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlanResult {
    /// What was found; `None` when nothing passes.
    pub(crate) answer: Option<Answer>,
    /// `plan.csv` header.
    pub(crate) header: Vec<String>,
    /// One row per evaluated point, in evaluation order.
    pub(crate) rows: Vec<Vec<String>>,
    /// Notes on the search (fallbacks, monotonicity).
    pub(crate) notes: Vec<String>,
}

/// A found configuration or rate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// The cheapest passing counts.
    Counts {
        /// `key=count` per searched dimension.
        sets: Vec<(String, String)>,
        /// Σ count × TP of the whole configuration.
        n_gpus: u32,
        /// Its hit rate.
        hit_rate: f64,
    },
    /// The highest passing rate, and the lowest failing one when found.
    Rate {
        /// Passes, req/s.
        passing: f64,
        /// Fails, req/s (`None`: nothing failed up to the search limit).
        failing: Option<f64>,
    },
}

pub(crate) fn run(a: &PlanArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let slos = parse_slos(&a.slo)?;
    let base_sets = a
        .sets
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("--set {s}: expected key=value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = PlanSpec {
        scenario: a.scenario.clone(),
        slos,
        rate: a.rate,
        max_pods: a.max_pods,
        search: a.search.clone(),
        base_sets,
        seed: a.seed,
    };
    let res = if a.saturate {
        plan_saturation(&spec, a.rel_tol)?
    } else {
        plan_counts(&spec)?
    };
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| point::default_out_dir(&a.scenario, "plan"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv_path = dir.join("plan.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("creating {}", csv_path.display()))?;
    w.write_record(&res.header)?;
    for r in &res.rows {
        w.write_record(r)?;
    }
    w.flush()?;
    let slo_text: Vec<String> = spec.slos.iter().map(ToString::to_string).collect();
    if !a.quiet {
        writeln!(
            out,
            "plan: {}{}, SLOs {}",
            a.scenario.display(),
            a.rate.map(|r| format!(" at {r} req/s")).unwrap_or_default(),
            slo_text.join(", ")
        )?;
        writeln!(out, "{}", render_table(&res.header, &res.rows))?;
        for n in &res.notes {
            writeln!(out, "note: {n}")?;
        }
        writeln!(out, "evidence written to {}", csv_path.display())?;
    }
    match &res.answer {
        Some(Answer::Counts {
            sets,
            n_gpus,
            hit_rate,
        }) => {
            let kv: Vec<String> = sets.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                out,
                "answer: {} ({n_gpus} GPUs, hit rate {hit_rate:.4}) meets {} ({} points evaluated)",
                kv.join(" "),
                slo_text.join(", "),
                res.rows.len()
            )?;
            Ok(())
        }
        Some(Answer::Rate { passing, failing }) => {
            let bound = failing
                .map(|f| format!(", fails at {f:.4} req/s"))
                .unwrap_or_else(|| ", no failing rate found".into());
            writeln!(
                out,
                "answer: sustains {passing:.4} req/s under {}{bound} ({} points evaluated)",
                slo_text.join(", "),
                res.rows.len()
            )?;
            Ok(())
        }
        None if a.saturate => {
            let lowest = res
                .rows
                .iter()
                .filter_map(|r| r.first()?.parse::<f64>().ok())
                .fold(f64::INFINITY, f64::min);
            Err(Infeasible(format!(
                "no rate meets {} with this configuration (the lowest tried, {lowest:.3e} req/s, fails)",
                slo_text.join(", ")
            ))
            .into())
        }
        None => Err(Infeasible(format!(
            "no configuration meets {} even at --max-pods {} per searched group",
            slo_text.join(", "),
            spec.max_pods
        ))
        .into()),
    }
}

/// A searched count: its `--set` key and the GPUs one more pod costs.
#[derive(Clone, Debug, PartialEq)]
struct Dim {
    key: String,
    gpus_per_pod: u64,
}

/// The counts to search, from `--search` or the scenario's pod groups.
fn dims(spec: &PlanSpec, base: &Resolved) -> anyhow::Result<Vec<Dim>> {
    let groups = &base.pod_groups;
    let by_role = |role: &str| -> anyhow::Result<Dim> {
        let hits: Vec<_> = groups.iter().filter(|g| g.role == role).collect();
        match hits.as_slice() {
            [g] => Ok(Dim {
                key: role.to_string(),
                gpus_per_pod: g.tensor_parallel_size as u64,
            }),
            _ => bail!(
                "--search {role}: the scenario has {} pod groups with role {role} (need exactly one)",
                hits.len()
            ),
        }
    };
    let keys: Vec<String> = if spec.search.is_empty() {
        let has = |r: &str| groups.iter().filter(|g| g.role == r).count() == 1;
        if has("prefill") && has("decode") {
            vec!["prefill".into(), "decode".into()]
        } else if groups.len() == 1 {
            vec!["pods[0].count".into()]
        } else {
            bail!("the scenario has {} pod groups: say which counts to search with --search (decode, prefill or pods[i].count)", groups.len());
        }
    } else {
        spec.search.iter().map(|s| s.trim().to_string()).collect()
    };
    if !(1..=2).contains(&keys.len()) {
        bail!("--search takes one or two counts, got {}", keys.len());
    }
    keys.iter()
        .map(|k| match k.as_str() {
            "decode" | "prefill" => by_role(k),
            _ => {
                let idx = k
                    .strip_prefix("pods[")
                    .and_then(|r| r.strip_suffix("].count"))
                    .and_then(|i| i.parse::<usize>().ok())
                    .with_context(|| {
                        format!("--search {k}: expected decode, prefill or pods[i].count")
                    })?;
                let g = groups.get(idx).with_context(|| {
                    format!("--search {k}: the scenario has {} pod groups", groups.len())
                })?;
                Ok(Dim {
                    key: k.clone(),
                    gpus_per_pod: g.tensor_parallel_size as u64,
                })
            }
        })
        .collect()
}

fn with_rate(spec: &PlanSpec, rate: Option<f64>) -> Vec<(String, String)> {
    let mut sets = spec.base_sets.clone();
    if let Some(r) = rate {
        sets.push(("rate".into(), format!("{r}")));
    }
    sets
}

fn probe_of(e: &Evaluated, slos: &[Slo]) -> (Probe, Vec<String>) {
    let v = violations(&e.summary, slos);
    let probe = Probe {
        pass: v.is_empty(),
        hit_rate: e.summary.hit_rate,
        metrics: slos
            .iter()
            .map(|s| metric_ms(&e.summary, &s.metric))
            .collect(),
    };
    (probe, v)
}

/// Evidence columns after the point's own (`n_gpus`, the SLO metrics, ...).
fn evidence_header(first: &[String], slos: &[Slo]) -> Vec<String> {
    let mut h = first.to_vec();
    h.extend(["n_gpus", "hit_rate"].map(String::from));
    h.extend(slos.iter().map(|s| format!("{}_ms", s.metric)));
    h.extend(
        [
            "throughput_req_s",
            "requests_completed",
            "requests_rejected",
            "requests_unfinished",
            "pass",
            "violations",
        ]
        .map(String::from),
    );
    h
}

fn evidence_row(first: Vec<String>, e: &Evaluated, slos: &[Slo], v: &[String]) -> Vec<String> {
    let mut r = first;
    r.push(e.n_gpus.to_string());
    r.push(num(e.summary.hit_rate));
    r.extend(slos.iter().map(|s| {
        metric_stat(&e.summary, &s.metric).map_or_else(String::new, |(d, x)| stat_ms(d, x))
    }));
    r.push(num(e.summary.throughput.requests_per_s));
    r.push(e.summary.requests_completed.to_string());
    r.push(e.summary.requests_rejected.to_string());
    r.push(e.summary.requests_unfinished.to_string());
    r.push(if v.is_empty() { "pass" } else { "fail" }.into());
    r.push(v.join("; "));
    r
}

/// The cheapest passing pod counts.
pub(crate) fn plan_counts(spec: &PlanSpec) -> anyhow::Result<PlanResult> {
    if spec.max_pods == 0 {
        bail!("--max-pods must be at least 1");
    }
    let base_sets = with_rate(spec, spec.rate);
    let rule = SeedRule::Common(spec.seed);
    let base = point::resolve_point(&spec.scenario, &base_sets, rule)?;
    let dims = dims(spec, &base)?;
    let units: Vec<u64> = dims.iter().map(|d| d.gpus_per_pod).collect();
    let keys: Vec<String> = dims.iter().map(|d| d.key.clone()).collect();
    let header = evidence_header(&keys, &spec.slos);
    let mut rows = Vec::new();
    let mut found: std::collections::BTreeMap<Vec<u32>, (u32, f64)> = Default::default();
    let mut eval = |x: &[u32]| -> anyhow::Result<Probe> {
        let mut sets = base_sets.clone();
        sets.extend(keys.iter().zip(x).map(|(k, n)| (k.clone(), n.to_string())));
        let e = point::evaluate(&spec.scenario, &sets, rule, None)
            .with_context(|| format!("evaluating {}", point::canonical(&sets)))?;
        let (probe, v) = probe_of(&e, &spec.slos);
        rows.push(evidence_row(
            x.iter().map(u32::to_string).collect(),
            &e,
            &spec.slos,
            &v,
        ));
        found.insert(x.to_vec(), (e.n_gpus, e.summary.hit_rate));
        Ok(probe)
    };
    let s = search_counts(spec.max_pods, &units, &mut eval)?;
    let mut notes = Vec::new();
    if s.fell_back {
        notes.push(
            "an SLO metric rose with more pods on the evaluated points: bisection is not safe here, so every configuration was scanned in order of GPU count".into(),
        );
    } else {
        notes.push(format!(
            "assumed more pods never hurt latency; the {} evaluated points agree (no SLO metric rose by more than {}% with more pods)",
            s.evaluated.len(),
            super::plan_search::MONOTONE_REL_TOL * 100.0
        ));
    }
    let answer = s.best.map(|x| {
        let (n_gpus, hit_rate) = found[&x];
        Answer::Counts {
            sets: keys
                .iter()
                .zip(&x)
                .map(|(k, n)| (k.clone(), n.to_string()))
                .collect(),
            n_gpus,
            hit_rate,
        }
    });
    Ok(PlanResult {
        answer,
        header,
        rows,
        notes,
    })
}

/// The workload's arrival rate, when it has one.
pub(crate) fn scenario_rate(r: &Resolved) -> Option<f64> {
    match r.workload.arrivals.as_ref()? {
        ArrivalSpec::Constant { rate_per_s }
        | ArrivalSpec::Poisson { rate_per_s }
        | ArrivalSpec::Gamma { rate_per_s, .. } => Some(*rate_per_s),
        ArrivalSpec::Stages { stages, .. } if stages.len() == 1 => Some(stages[0].rate_per_s),
        _ => None,
    }
}

/// The highest rate the configuration sustains.
pub(crate) fn plan_saturation(spec: &PlanSpec, rel_tol: f64) -> anyhow::Result<PlanResult> {
    if !(rel_tol > 0.0 && rel_tol < 1.0) {
        bail!("--rel-tol must be in (0, 1), got {rel_tol}");
    }
    let rule = SeedRule::Common(spec.seed);
    let base = point::resolve_point(&spec.scenario, &spec.base_sets, rule)?;
    let start = match spec.rate {
        Some(r) if r > 0.0 && r.is_finite() => r,
        Some(r) => bail!("--rate must be positive, got {r}"),
        None => scenario_rate(&base)
            .context("the workload has no single arrival rate to start from: give --rate")?,
    };
    let header = evidence_header(&["rate".to_string()], &spec.slos);
    let mut rows = Vec::new();
    let mut eval = |r: f64| -> anyhow::Result<Probe> {
        let sets = with_rate(spec, Some(r));
        let e = point::evaluate(&spec.scenario, &sets, rule, None)
            .with_context(|| format!("evaluating rate {r}"))?;
        let (probe, v) = probe_of(&e, &spec.slos);
        rows.push(evidence_row(vec![num(r)], &e, &spec.slos, &v));
        Ok(probe)
    };
    let s = search_rate(start, rel_tol, &mut eval)?;
    let mut notes = Vec::new();
    if s.non_monotone {
        notes.push("an SLO metric fell as the rate rose on the evaluated points: the bracket may not be the only one".into());
    }
    let answer = s.passing.map(|passing| Answer::Rate {
        passing,
        failing: s.failing,
    });
    Ok(PlanResult {
        answer,
        header,
        rows,
        notes,
    })
}

/// A plain aligned table.
fn render_table(header: &[String], rows: &[Vec<String>]) -> String {
    let short = |c: &str| -> String {
        match c.parse::<f64>() {
            Ok(x) if c.contains('.') => format!("{x:.4}"),
            _ => c.to_string(),
        }
    };
    let cells: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(rows.iter().map(|r| r.iter().map(|c| short(c)).collect()))
        .collect();
    let n = header.len();
    let widths: Vec<usize> = (0..n)
        .map(|j| {
            cells
                .iter()
                .map(|r| r.get(j).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    cells
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, c)| format!("{c:<w$}", w = widths[j]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 ms steps, one request at a time per pod, 10 steps per request: a pod
    /// serves exactly 100 req/s (`tests/data/plan/constant_step.yaml`).
    fn spec(rate: Option<f64>, max_pods: u32, slo: &str) -> PlanSpec {
        PlanSpec {
            scenario: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/plan/constant_step.yaml"),
            slos: parse_slos(slo).unwrap(),
            rate,
            max_pods,
            search: Vec::new(),
            base_sets: Vec::new(),
            seed: None,
        }
    }

    fn counts(res: &PlanResult) -> (Vec<(String, String)>, u32) {
        match &res.answer {
            Some(Answer::Counts { sets, n_gpus, .. }) => (sets.clone(), *n_gpus),
            other => panic!("expected counts, got {other:?}"),
        }
    }

    #[test]
    fn finds_the_hand_computed_pod_count() {
        // Evenly spaced arrivals at λ split round-robin over n pods give each
        // pod one request per n/λ s; it needs 10 ms per request, so the queue
        // stays empty (TTFT = one 1 ms step) iff n ≥ λ / 100, and grows by
        // 10 − 1000·n/λ ms per request otherwise (p90 far above 5 ms for 400
        // requests). Minimal n = ⌈λ / 100⌉.
        for (rate, want) in [(350.0, 4u32), (730.0, 8), (90.0, 1)] {
            let res = plan_counts(&spec(Some(rate), 16, "ttft_p90=5ms")).unwrap();
            let (sets, n_gpus) = counts(&res);
            assert_eq!(
                sets,
                vec![("pods[0].count".to_string(), want.to_string())],
                "{rate}"
            );
            assert_eq!(n_gpus, want);
            // Bisection, not brute force: at most 1 + ⌈log2 16⌉ points.
            assert!(res.rows.len() <= 5, "{} points at {rate}", res.rows.len());
            // The evidence: the answer passes, one pod fewer fails.
            let row = |n: u32| res.rows.iter().find(|r| r[0] == n.to_string());
            assert_eq!(row(want).unwrap()[res.header.len() - 2], "pass");
            if want > 1 {
                let below = row(want - 1).expect("bisection evaluates n − 1");
                assert_eq!(below[res.header.len() - 2], "fail");
                assert!(below.last().unwrap().contains("ttft_p90"), "{below:?}");
            }
        }
    }

    #[test]
    fn infeasible_at_max_pods_has_no_answer() {
        let res = plan_counts(&spec(Some(350.0), 3, "ttft_p90=5ms")).unwrap();
        assert_eq!(res.answer, None);
        assert_eq!(res.rows.len(), 1, "only --max-pods is tried");
        // And an SLO below one step is never met.
        let res = plan_counts(&spec(Some(50.0), 4, "ttft_p90=500us")).unwrap();
        assert_eq!(res.answer, None);
    }

    #[test]
    fn rejected_requests_fail_a_point_however_fast_the_rest_are() {
        // Prompts of 16..256 tokens against max_model_len 128: about half
        // the requests are rejected at admission; the rest meet a loose SLO.
        let mut s = spec(None, 2, "ttft_p90=10s");
        s.scenario =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sweep/poisson.yaml");
        s.base_sets = vec![("pods[0].vllm.max_model_len".into(), "128".into())];
        let res = plan_counts(&s).unwrap();
        assert_eq!(res.answer, None, "{:?}", res.rows);
        let col = |name: &str| res.header.iter().position(|h| h == name).unwrap();
        for r in &res.rows {
            let rejected: u64 = r[col("requests_rejected")].parse().unwrap();
            assert!(rejected > 0 && r[col("requests_completed")] != "0", "{r:?}");
            assert_eq!(r[col("pass")], "fail");
            assert_eq!(r[col("violations")], format!("rejected={rejected}"));
        }
    }

    #[test]
    fn saturation_rate_matches_the_analytic_capacity() {
        // Two pods: 200 req/s. Above it, request k waits ≈ k·(10 − 2000/λ) ms
        // at its pod, so the 5 ms bound breaks within 0.3% of 200 req/s.
        let mut s = spec(None, 16, "ttft_p90=5ms");
        s.base_sets = vec![("pods[0].count".into(), "2".into())];
        let tol = 0.01;
        let res = plan_saturation(&s, tol).unwrap();
        let Some(Answer::Rate { passing, failing }) = res.answer else {
            panic!("{:?}", res.answer)
        };
        let failing = failing.unwrap();
        assert!(
            passing <= 200.0 * 1.003 && failing > 200.0,
            "{passing} {failing}"
        );
        assert!((passing - 200.0).abs() / 200.0 <= tol + 0.003, "{passing}");
        assert!((failing - passing) / passing <= tol);
        // Started from the scenario's 50 req/s: doubled to 100, 200, 400.
        let rates: Vec<&str> = res.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(rates[..4], ["50", "100", "200", "400"]);
    }

    #[test]
    fn search_dimensions_default_and_validate() {
        let s = spec(None, 4, "ttft_p90=5ms");
        let base = point::resolve_point(&s.scenario, &[], SeedRule::Common(None)).unwrap();
        let d = dims(&s, &base).unwrap();
        assert_eq!(
            d,
            vec![Dim {
                key: "pods[0].count".into(),
                gpus_per_pod: 1
            }]
        );
        let mut bad = s.clone();
        bad.search = vec!["decode".into()];
        let e = dims(&bad, &base).unwrap_err();
        assert!(
            e.to_string().contains("0 pod groups with role decode"),
            "{e}"
        );
        bad.search = vec!["pods[3].count".into()];
        assert!(dims(&bad, &base).is_err());
        bad.search = vec!["gpu".into()];
        assert!(dims(&bad, &base)
            .unwrap_err()
            .to_string()
            .contains("expected decode, prefill"));
    }
}
