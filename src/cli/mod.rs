//! The `kvsim` command line. Only this module does file IO and uses
//! `anyhow`; exit codes: 0 ok, 1 a check failed, 2 an error.

mod bench;
mod check_cmd;
mod conformance_cmd;
pub mod curve_cmd;
pub mod hash_cmd;
mod import_cmd;
#[cfg(test)]
mod input_fuzz;
mod plan_cmd;
mod plan_search;
mod point;
mod report_cmd;
mod run_cmd;
mod slo;
mod sweep_cmd;
pub mod trace_cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deterministic simulator of KV-cache-aware routing in llm-d style clusters.
#[derive(Debug, Parser)]
#[command(name = "kvsim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario end to end and write its results.
    Run(run_cmd::RunArgs),
    /// Import an llm-d ModelService (+ ConfigMap) as a scenario file.
    Import(import_cmd::ImportArgs),
    /// Replay recorded reference runs through kvsim's models.
    #[command(subcommand)]
    Conformance(conformance_cmd::ConformanceCommand),
    /// Print vLLM prefix-cache block hashes of a token sequence.
    Hash(hash_cmd::HashArgs),
    /// Inspect, generate and convert workload traces.
    Trace(trace_cmd::TraceArgs),
    /// Prefix hit rate of one LRU cache at every capacity (Mattson curve).
    Curve(curve_cmd::CurveArgs),
    /// Regression gate: run scenarios and compare their metrics with baselines.
    Check(check_cmd::CheckArgs),
    /// Charts and an HTML page from one or more results directories.
    Report(report_cmd::ReportArgs),
    /// Measure simulator speed on a synthetic single-pod workload.
    Bench(bench::BenchArgs),
    /// Run a scenario over a grid of --set values in parallel (sweep.csv).
    Sweep(sweep_cmd::SweepArgs),
    /// Cheapest pod counts meeting latency SLOs, or the highest sustained rate.
    Plan(plan_cmd::PlanArgs),
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = match &cli.command {
        Command::Run(a) => run_cmd::run(a, &mut out),
        Command::Import(a) => import_cmd::run(a, &mut out),
        Command::Conformance(c) => conformance_cmd::run(c, &mut out),
        Command::Hash(a) => hash_cmd::run(a, &mut out),
        Command::Trace(c) => trace_cmd::run(c, &mut out),
        Command::Curve(a) => curve_cmd::run(a, &mut out),
        Command::Bench(a) => bench::run(a, &mut out),
        Command::Check(a) => check_cmd::run(a, &mut out),
        Command::Report(a) => report_cmd::run(a, &mut out),
        Command::Sweep(a) => sweep_cmd::run(a, &mut out),
        Command::Plan(a) => plan_cmd::run(a, &mut out),
    };
    let _ = out.flush();
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<check_cmd::CheckFailed>().is_some() => {
            eprintln!("check failed: {e}");
            ExitCode::from(1)
        }
        Err(e) if e.downcast_ref::<plan_cmd::Infeasible>().is_some() => {
            eprintln!("plan: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
