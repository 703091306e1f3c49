//! `kvsim bench`: simulator speed on a synthetic single-pod workload, or on a
//! scenario.
//!
//! The synthetic workload: `--requests` requests arriving at a constant rate
//! the pod sustains, prompts of 1024 tokens as hash ids whose first half is one
//! of 64 shared prefixes, 64 output tokens, one H100 pod with Llama-3.1-8B,
//! the roofline step-time model and fast block keys. Reports simulated
//! requests per wall-clock second.
//!
//! `--scenario FILE` times that scenario end to end instead (resolve, read the
//! trace, simulate, summarise; no files written) `--repeat` times and reports
//! every run, the best and the median: the number to quote for "how long does
//! this scenario take". The best run's wall time is split into the parts of
//! the simulation loop (pods, merging their outputs, index ingestion,
//! routing) and the rest, to show where an optimisation would pay.
//!
//! Both report the process's peak resident memory where the OS tells it
//! (Linux `VmHWM`), so memory targets are measured by the same command.

use std::io::Write;
use std::time::Instant;

use clap::Args;

use crate::cluster::router::Router;
use crate::cluster::{PhaseTimes, Routing, Simulation};
use crate::engine::rng::RngStreams;
use crate::engine::time::SimDuration;
use crate::scenario::resolve::{resolve_text, Overrides};
use crate::trace::request::{Prompt, TraceRequest};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Requests to simulate.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Arrival rate, requests per simulated second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Time this scenario end to end instead of the synthetic workload.
    #[arg(long, value_name = "FILE")]
    scenario: Option<std::path::PathBuf>,
    /// Runs of `--scenario`.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Threads for the pods of `--scenario` (as `kvsim run --threads`).
    #[arg(long, default_value_t = super::run_cmd::default_threads(), value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
}

const BENCH_SCENARIO: &str = "
name: bench
pods:
  - gpu: H100
    model: Llama-3.1-8B
workload:
  trace: {format: native, path: unused.jsonl}
";

pub(crate) fn run(a: &BenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(path) = &a.scenario {
        return run_scenario(path, a.repeat, a.threads as usize, out);
    }
    anyhow::ensure!(a.rate > 0.0, "--rate must be > 0, got {}", a.rate);
    anyhow::ensure!(a.requests > 0, "--requests must be at least 1");
    let resolved = resolve_text(
        std::path::Path::new("<bench>"),
        BENCH_SCENARIO,
        std::path::Path::new("."),
        "bench",
        &Overrides::default(),
    )?;
    let rng = RngStreams::new(0);
    let pods = resolved.build_pods(&rng);
    let gap_ns = (1e9 / a.rate) as u64;
    let n = a.requests;
    anyhow::ensure!(
        gap_ns.checked_mul(n).is_some(),
        "--requests {n} at --rate {:e} req/s span more simulated time than u64 ns hold",
        a.rate
    );
    let workload = (0..n).map(move |i| {
        let mut ids: Vec<u64> = vec![(i % 64) + 1, (i % 64) + 1001];
        ids.extend([1_000_000 + 2 * i, 1_000_001 + 2 * i]);
        TraceRequest {
            id: i,
            arrival_ns: i * gap_ns,
            prompt: Prompt::HashIds {
                ids,
                tokens_per_id: 256,
                n_tokens: 1024,
            },
            output_len: 64,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        }
    });
    let sim = Simulation::new(
        pods,
        Routing::Simple(Router::RoundRobin { next: 0 }),
        workload,
        SimDuration::ZERO,
    );
    let t0 = Instant::now();
    let res = sim.run(&mut ());
    let wall = t0.elapsed().as_secs_f64();
    let (summary, _) = crate::metrics::summary::summarize(&res);
    writeln!(
        out,
        "simulated {} requests ({} completed, {} events, {:.1} s simulated) in {:.3} s wall: {:.0} requests/s, {:.2} M events/s; hit rate {:.3}",
        n,
        summary.requests_completed,
        res.n_events,
        res.end_time.as_secs_f64(),
        wall,
        n as f64 / wall,
        res.n_events as f64 / wall / 1e6,
        summary.hit_rate,
    )?;
    writeln!(out, "{}", peak_memory_line())?;
    Ok(())
}

/// Times `path` end to end `repeat` times.
fn run_scenario(
    path: &std::path::Path,
    repeat: u32,
    threads: usize,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    anyhow::ensure!(repeat >= 1, "--repeat must be at least 1, got {repeat}");
    let mut runs = Vec::with_capacity(repeat as usize);
    for i in 1..=repeat {
        let t0 = Instant::now();
        let resolved = super::import_cmd::load_for_run(Some(path), &Overrides::default())?;
        let done = super::run_cmd::simulate_timed(resolved, threads)?;
        let wall = t0.elapsed().as_secs_f64();
        writeln!(
            out,
            "run {i}: {:.3} s wall ({} requests, {} events, {:.2} M events/s)",
            wall,
            done.summary.requests_total,
            done.run.n_events,
            done.run.n_events as f64 / wall / 1e6,
        )?;
        runs.push((wall, done.run.phase_times.unwrap_or_default()));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    writeln!(
        out,
        "{}: best {:.3} s, median {:.3} s over {repeat} runs",
        path.display(),
        runs[0].0,
        runs[runs.len() / 2].0,
    )?;
    writeln!(out, "{}", phase_line(runs[0].0, &runs[0].1))?;
    writeln!(out, "{}", peak_memory_line())?;
    Ok(())
}

/// Where the best run's wall time went: the parts of the simulation loop,
/// and the rest (resolving the scenario, reading the trace, summarising).
fn phase_line(wall_s: f64, t: &PhaseTimes) -> String {
    let parts = [
        ("pods", t.pods),
        ("pod outputs", t.pod_outputs),
        ("index", t.index),
        ("routing", t.routing),
    ];
    let measured: f64 = parts.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let mut line = String::from("best run:");
    for (name, d) in &parts {
        line += &format!(" {name} {:.3} s,", d.as_secs_f64());
    }
    line += &format!(" other {:.3} s", (wall_s - measured).max(0.0));
    line
}

/// `peak RSS … MiB` from `/proc/self/status`, or why it is unknown.
fn peak_memory_line() -> String {
    match std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(peak_rss_bytes)
    {
        Some(b) => format!("peak RSS {:.1} MiB", b as f64 / (1u64 << 20) as f64),
        None => "peak RSS unknown (no /proc/self/status VmHWM on this OS)".into(),
    }
}

/// The `VmHWM` (peak resident set) of a `/proc/<pid>/status` text, in bytes.
fn peak_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next()? {
        "kB" => Some(n * 1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_from_vm_hwm_in_kib() {
        let status = "Name:\tkvsim\nVmPeak:\t  900 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(peak_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(peak_rss_bytes("VmRSS:\t 1000 kB\n"), None);
        assert_eq!(peak_rss_bytes("VmHWM:\t lots kB\n"), None);
        assert_eq!(peak_rss_bytes("VmHWM:\t 12 MB\n"), None);
    }
}
