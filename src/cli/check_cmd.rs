//! `kvsim check SCENARIO... --baseline DIR [--tolerance SPEC] [--update]`:
//! the regression gate. Runs each scenario, compares its metrics with the
//! committed baseline, prints a diff table for every metric outside its
//! tolerance. Exit 0 when all pass, 1 when any fails, 2 on errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rayon::prelude::*;

use super::run_cmd;
use crate::metrics::baseline::{self, Baseline, BASELINE_SCHEMA_VERSION};
use crate::scenario::resolve::{self, Overrides};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Scenario files to run.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Directory of baselines (`<scenario name>.json`).
    #[arg(long, default_value = "results/baselines")]
    baseline: PathBuf,
    /// Tolerances on top of the defaults, e.g. `hit_rate=0.005,ttft_p90=5%`
    /// (absolute, or relative with `%`). Defaults: hit_rate 0.005, latencies
    /// 5%, throughput 2%, requests_completed and preemptions exact.
    #[arg(long, default_value = "")]
    tolerance: String,
    /// Rewrite the baselines from these runs instead of comparing.
    #[arg(long)]
    update: bool,
}

/// The gate found metrics outside tolerance (exit code 1).
#[derive(Debug)]
pub(crate) struct CheckFailed(pub(crate) usize);

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} scenario(s) outside tolerance", self.0)
    }
}

impl std::error::Error for CheckFailed {}

pub(crate) fn run(a: &CheckArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let tol = baseline::parse_tolerances(&a.tolerance)
        .map_err(|e| anyhow::anyhow!("--tolerance: {e}"))?;
    // Run every scenario (in parallel; each run is deterministic on its own).
    let runs: Vec<anyhow::Result<(String, Baseline)>> = a
        .scenarios
        .par_iter()
        .map(|path| {
            let resolved = resolve::load(path, &Overrides::default())?;
            let name = resolved.name.clone();
            let seed = resolved.seed;
            let done = run_cmd::simulate(resolved, false, 1)?;
            let b = Baseline {
                schema_version: BASELINE_SCHEMA_VERSION,
                scenario: path.display().to_string(),
                seed,
                kvsim_version: env!("CARGO_PKG_VERSION").to_string(),
                metrics: baseline::metrics_of(&done.summary),
            };
            Ok((name, b))
        })
        .collect();
    let mut n_failed = 0;
    for (path, res) in a.scenarios.iter().zip(runs) {
        let (name, current) = res.with_context(|| format!("running {}", path.display()))?;
        let file = a.baseline.join(format!("{name}.json"));
        if a.update {
            write_baseline(&file, &current)?;
            writeln!(out, "updated {}", file.display())?;
            continue;
        }
        let old = read_baseline(&file)?;
        let v = baseline::compare(&old.metrics, &current.metrics, &tol);
        if v.is_empty() {
            writeln!(out, "ok    {name} ({})", path.display())?;
        } else {
            n_failed += 1;
            writeln!(out, "FAIL  {}", baseline::diff_table(&name, &v))?;
        }
    }
    if n_failed > 0 {
        return Err(CheckFailed(n_failed).into());
    }
    Ok(())
}

fn read_baseline(file: &Path) -> anyhow::Result<Baseline> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "reading baseline {} (create it with --update)",
            file.display()
        )
    })?;
    let b: Baseline = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid baseline", file.display()))?;
    anyhow::ensure!(
        b.schema_version == BASELINE_SCHEMA_VERSION,
        "{}: schema_version {} (this kvsim reads {BASELINE_SCHEMA_VERSION})",
        file.display(),
        b.schema_version
    );
    Ok(b)
}

fn write_baseline(file: &Path, b: &Baseline) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
    );
    crate::report::write::json(&mut w, b)?;
    w.flush()?;
    Ok(())
}
