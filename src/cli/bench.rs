//! `kvsim bench`: simulator speed on a synthetic single-pod workload.
//!
//! The workload: `--requests` requests arriving at a constant rate the pod
//! sustains, prompts of 1024 tokens as hash ids whose first half is one of 64
//! shared prefixes, 64 output tokens, one H100 pod with Llama-3.1-8B, the
//! roofline step-time model and fast block keys. Reports simulated requests
//! per wall-clock second.

use std::io::Write;
use std::time::Instant;

use clap::Args;

use crate::cluster::router::Router;
use crate::cluster::{Routing, Simulation};
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
    anyhow::ensure!(a.rate > 0.0, "--rate must be > 0, got {}", a.rate);
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
    Ok(())
}
