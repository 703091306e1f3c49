//! `kvsim run [SCENARIO.yaml] [--modelservice F [--configmap F]] [--seed N] [--out DIR] [--trace FILE]`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::epp_router::{EppRouter, IndexOptions};
use crate::cluster::kv_lag::{EventPipeline, KvEventLag};
use crate::cluster::router::Router;
use crate::cluster::{Progress, Routing, RunOutput, Simulation};
use crate::engine::rng::RngStreams;
use crate::engine::time::{SimDuration, SimTime};
use crate::metrics::summary::{summarize, RequestRecord, Summary};
use crate::report::{table, write};
use crate::scenario::resolve::{self, Overrides, Resolved};
use crate::scenario::RouterSpec;
use crate::trace::error::TraceError;
use crate::trace::request::TraceRequest;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Scenario file (YAML); optional with --modelservice.
    scenario: Option<PathBuf>,
    /// llm-d ModelService YAML whose pods, router and P/D replace the scenario's.
    #[arg(long)]
    modelservice: Option<PathBuf>,
    /// The ConfigMap the ModelService's baseConfigMapRef names.
    #[arg(long)]
    configmap: Option<PathBuf>,
    /// Master seed (overrides the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: out/<scenario name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Trace file replacing the workload's trace (relative to the current directory).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    quiet: bool,
    /// Threads for the pods (at most 2 are used; 1 with P/D). Outputs are
    /// the same for any value.
    #[arg(long, default_value_t = default_threads(), value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
}

/// What `--threads` defaults to: 2 when the machine has two cores or more.
pub(crate) fn default_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
}

/// A finished run with everything needed to write it out.
pub(crate) struct Finished {
    pub(crate) resolved: Resolved,
    pub(crate) summary: Summary,
    pub(crate) records: Vec<RequestRecord>,
    pub(crate) run: RunOutput,
}

pub(crate) fn run(a: &RunArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    // A command-line path is relative to the current directory, not to the
    // scenario's (where the workload's own `trace.path` resolves).
    let trace = a
        .trace
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("--trace")?;
    let overrides = Overrides {
        seed: a.seed,
        trace,
        deployment: super::import_cmd::deployment_ref(
            a.modelservice.as_deref(),
            a.configmap.as_deref(),
        )?,
    };
    let resolved = super::import_cmd::load_for_run(a.scenario.as_deref(), &overrides)?;
    if !a.quiet {
        for w in &resolved.import_warnings {
            eprintln!("warning: import: {w}");
        }
    }
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new("out").join(&resolved.name));
    let done = simulate(resolved, !a.quiet, a.threads as usize)?;
    write_outputs(&dir, &done)?;
    if !a.quiet {
        let s = &done.summary;
        if !s.idle_pods.is_empty() {
            eprintln!(
                "warning: {} of {} pods received no request: {} (the router never picked them; \
                 idle_pods in summary.json)",
                s.idle_pods.len(),
                s.pods.len(),
                s.idle_pods.join(", ")
            );
        }
        writeln!(out, "{}", table::render(&done.resolved.name, &done.summary))?;
        writeln!(out, "results written to {}", dir.display())?;
    }
    Ok(())
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn on_progress(&mut self, n_done: u64) {
        self.0.set_position(n_done);
    }
}

/// Runs `resolved` with its pods on `threads` threads (see [`Simulation::with_threads`]).
pub(crate) fn simulate(
    resolved: Resolved,
    show_progress: bool,
    threads: usize,
) -> anyhow::Result<Finished> {
    simulate_with(resolved, show_progress, threads, false)
}

/// [`simulate`] without progress, measuring where the wall time goes
/// ([`crate::cluster::RunOutput::phase_times`]).
pub(crate) fn simulate_timed(resolved: Resolved, threads: usize) -> anyhow::Result<Finished> {
    simulate_with(resolved, false, threads, true)
}

fn simulate_with(
    resolved: Resolved,
    show_progress: bool,
    threads: usize,
    phase_times: bool,
) -> anyhow::Result<Finished> {
    let rng = RngStreams::new(resolved.seed);
    let stream = crate::trace::spec::open_workload(&resolved.workload, &resolved.base_dir, &rng)
        .with_context(|| format!("opening the workload of scenario {}", resolved.name))?;
    // Shared with the thread that may read the workload ahead.
    let first_error: Arc<Mutex<Option<TraceError>>> = Arc::default();
    let err_slot = first_error.clone();
    let workload = stream.map_while(move |r: Result<TraceRequest, TraceError>| match r {
        Ok(r) => Some(r),
        Err(e) => {
            *err_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            None
        }
    });
    let pods = resolved.build_pods(&rng);
    let routing = match &resolved.router {
        RouterSpec::RoundRobin => Routing::Simple(Router::RoundRobin { next: 0 }),
        RouterSpec::Random => Routing::Simple(Router::Random {
            rng: rng.stream("router"),
        }),
        RouterSpec::Epp(spec) => {
            let loaded = resolve::load_epp_config(spec, &resolved.base_dir)
                .map_err(|(f, m)| anyhow::anyhow!("{f}: {m}"))?;
            let redis = loaded
                .precise_prefix
                .iter()
                .any(|(_, s)| s.redis_address.is_some());
            let lag = spec
                .kv_events
                .clone()
                .unwrap_or_else(|| KvEventLag::defaults_for(redis));
            let model = spec
                .model_name
                .clone()
                .unwrap_or_else(|| resolved.pod_groups[0].model.clone());
            let router = EppRouter::new(
                loaded,
                &pods,
                model,
                rng.stream("epp.picker"),
                spec.decision_log,
                IndexOptions {
                    source: spec.kv_index.unwrap_or_default(),
                    keys: spec.index_keys.unwrap_or_default(),
                },
            );
            if show_progress {
                for w in router.warnings() {
                    eprintln!("warning: router: {w}");
                }
            }
            let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
            Routing::Epp {
                router: Box::new(router),
                pipeline: EventPipeline::new(lag, &names),
                refresh: SimDuration::from_us_f64_ceil(
                    spec.metrics_refresh_ms.unwrap_or(50.0) * 1e3,
                ),
            }
        }
    };
    let pd = resolved.build_pd();
    let has_pd = pd.is_some();
    let mut sim = Simulation::new(
        pods,
        routing,
        workload,
        SimDuration::from_us(resolved.routing_latency_us),
    )
    .with_pd(pd)
    .with_threads(threads)
    .with_horizon(
        resolved
            .horizon_s
            .map(|h| SimTime(SimDuration::from_secs_f64_ceil(h).as_ns())),
    );
    if phase_times {
        sim = sim.with_phase_times();
    }
    let bar = if show_progress {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos} requests done [{elapsed_precise}, {per_sec}]",
            )
            .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut progress = Bar(bar.clone());
    let run = sim.run(&mut progress);
    bar.finish_and_clear();
    let first_error = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = first_error {
        return Err(e)
            .with_context(|| format!("reading the workload of scenario {}", resolved.name));
    }
    let n_stalled = run.not_finished.iter().filter(|r| r.stalled).count();
    if n_stalled > 0 {
        eprintln!("warning: {}", stall_warning(n_stalled, has_pd));
    }
    let (summary, records) = summarize(&run);
    Ok(Finished {
        resolved,
        summary,
        records,
        run,
    })
}

/// Removes an output file this run did not write; a missing one is fine.
fn remove_stale(p: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing the stale {}", p.display()))
        }
        _ => Ok(()),
    }
}

/// The warning for requests stalled on their pods; the P/D cause is named
/// only when the run has P/D, where it is the usual one.
fn stall_warning(n_stalled: usize, has_pd: bool) -> String {
    let hint = if has_pd {
        "typically too few KV blocks for P/D pulls plus a preempted request"
    } else {
        "check the pods' KV blocks (num_gpu_blocks_override, gpu_memory_utilization) \
         and vllm.watermark against the longest request"
    };
    format!(
        "{n_stalled} requests stalled on their pods (counted as unfinished): \
         the pod's scheduler could make no progress, as vLLM would hang; {hint}"
    )
}

fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let p = dir.join(name);
    Ok(BufWriter::new(
        File::create(&p).with_context(|| format!("creating {}", p.display()))?,
    ))
}

/// Writes `summary.json`, `requests.csv`, `unfinished.csv`, `pods.csv`,
/// `timeseries.csv`, `config.json` and, with a decision log, `routing.csv` (else removes it).
pub(crate) fn write_outputs(dir: &Path, f: &Finished) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut w = create(dir, "summary.json")?;
    write::json(&mut w, &f.summary)?;
    w.flush()?;
    let mut w = create(dir, "requests.csv")?;
    write::requests_csv(&mut w, &f.records)?;
    w.flush()?;
    let mut w = create(dir, "unfinished.csv")?;
    let names: Vec<&str> = f.run.pods.iter().map(|p| p.name.as_str()).collect();
    write::unfinished_csv(&mut w, &f.run.not_finished, &names)?;
    w.flush()?;
    let mut w = create(dir, "pods.csv")?;
    write::pods_csv(&mut w, &f.summary)?;
    w.flush()?;
    let mut w = create(dir, "timeseries.csv")?;
    write::timeseries_csv(&mut w, &f.run.pods)?;
    w.flush()?;
    if f.run.decision_log.is_empty() {
        // A reused directory may hold an earlier run's decision log, which
        // `kvsim report` would attribute to this run.
        remove_stale(&dir.join("routing.csv"))?;
    } else {
        let mut w = create(dir, "routing.csv")?;
        write::routing_csv(&mut w, &f.run.decision_log)?;
        w.flush()?;
    }
    let mut w = create(dir, "config.json")?;
    write::json(&mut w, &f.resolved)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_hint_names_pd_only_when_the_run_has_pd() {
        assert!(stall_warning(3, true).contains("P/D pulls"));
        let w = stall_warning(3, false);
        assert!(w.starts_with("3 requests stalled"), "{w}");
        assert!(!w.contains("P/D"), "{w}");
    }
}
