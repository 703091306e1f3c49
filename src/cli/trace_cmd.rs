//! `kvsim trace stats|gen|convert|bench`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::curve::CurveBuilder;
use crate::engine::rng::RngStreams;
use crate::trace::mooncake::{MooncakeWriter, MOONCAKE_TOKENS_PER_ID};
use crate::trace::native::NativeWriter;
use crate::trace::reader::ReadOptions;
use crate::trace::stats::{StatsAccumulator, TraceStats};
use crate::trace::{
    open_trace, open_workload, OpenOptions, RequestIter, SkippedLines, TraceFormat, TraceRequest,
    WorkloadSpec,
};

/// `kvsim trace …`: inspect, generate and convert workloads.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TraceCommand,
}

/// `kvsim trace` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TraceCommand {
    /// Counts, rate, length percentiles, block reuse and ideal prefix hit rate.
    Stats(StatsArgs),
    /// Write the workload of a scenario (or bare workload) YAML as a native trace.
    Gen(GenArgs),
    /// Convert a trace to another format.
    Convert(ConvertArgs),
    /// Time parsing, block hashing and the hit-rate curve of a trace.
    Bench(BenchArgs),
}

/// A trace file to read.
#[derive(clap::Args, Debug, Clone)]
pub struct TraceInput {
    /// Trace file.
    pub file: PathBuf,
    /// Format: mooncake, azure or native (detected: .csv is azure; JSONL with
    /// a "kvsim_trace" header is native, other JSONL mooncake).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<TraceFormat>,
    /// Tokens per Mooncake hash id.
    #[arg(long, default_value_t = MOONCAKE_TOKENS_PER_ID)]
    pub tokens_per_hash_id: u32,
    /// Skip malformed lines instead of failing; report how many were skipped.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

fn parse_format(s: &str) -> Result<TraceFormat, String> {
    s.parse()
}

impl TraceInput {
    /// Opens the file; the returned counter fills as lines are skipped.
    pub fn open(&self) -> anyhow::Result<(RequestIter, SkippedLines)> {
        let skipped = SkippedLines::new();
        let opts = OpenOptions {
            format: self.format,
            tokens_per_hash_id: Some(self.tokens_per_hash_id),
            read: ReadOptions {
                file: String::new(),
                skip_bad_lines: self.skip_bad_lines,
                skipped: skipped.clone(),
            },
        };
        let it = open_trace(&self.file, &opts)
            .with_context(|| format!("opening trace {}", self.file.display()))?;
        Ok((it, skipped))
    }
}

/// `kvsim trace stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// The trace.
    #[command(flatten)]
    pub input: TraceInput,
    /// KV block size in tokens for the block statistics.
    #[arg(long, default_value_t = 16)]
    pub block_size: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `kvsim trace gen`.
#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Scenario YAML (its `workload:` section and `seed:` are used) or a bare
    /// workload YAML.
    pub yaml: PathBuf,
    /// Output native trace.
    #[arg(long)]
    pub out: PathBuf,
    /// Master seed [the YAML's top-level `seed:`, else 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Output formats of `kvsim trace convert`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertTo {
    /// kvsim native JSONL (lossless).
    Native,
    /// Mooncake JSONL (ms times, 512-token hash ids; drops sessions and output tokens).
    Mooncake,
}

/// `kvsim trace convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The input trace.
    #[command(flatten)]
    pub input: TraceInput,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ConvertTo::Native)]
    pub to: ConvertTo,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `kvsim trace bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The trace.
    #[command(flatten)]
    pub input: TraceInput,
    /// KV block size in tokens.
    #[arg(long, default_value_t = 16)]
    pub block_size: u32,
}

/// Runs a `kvsim trace` subcommand, writing its report to `out`.
pub fn run(args: &TraceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match &args.command {
        TraceCommand::Stats(a) => stats(a, out),
        TraceCommand::Gen(a) => gen(a, out),
        TraceCommand::Convert(a) => convert(a, out),
        TraceCommand::Bench(a) => {
            let b = bench_trace(&a.input, a.block_size)?;
            writeln!(out, "{b}")?;
            Ok(())
        }
    }
}

fn stats(a: &StatsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if a.block_size == 0 {
        bail!("--block-size must be positive");
    }
    let (it, skipped) = a.input.open()?;
    let mut acc = StatsAccumulator::new(a.block_size);
    for r in it {
        acc.push(&r?);
    }
    let s = acc.finish();
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        v["n_skipped_lines"] = skipped.n_skipped().into();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        write_stats_text(&a.input.file, &s, out)?;
    }
    report_skipped(&skipped, out)?;
    Ok(())
}

/// The human-readable `trace stats` report.
pub fn write_stats_text(file: &Path, s: &TraceStats, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "trace            {}", file.display())?;
    writeln!(out, "requests         {}", s.n_requests)?;
    if s.n_sessions > 0 {
        writeln!(out, "sessions         {}", s.n_sessions)?;
    }
    writeln!(out, "duration         {:.3} s", s.duration_s)?;
    writeln!(out, "arrival rate     {:.3} req/s", s.rate_per_s)?;
    writeln!(
        out,
        "                 {:>10} {:>8} {:>8} {:>8} {:>8}",
        "mean", "p50", "p90", "p99", "max"
    )?;
    for (name, l) in [
        ("input tokens", &s.input_len),
        ("output tokens", &s.output_len),
    ] {
        writeln!(
            out,
            "{name:<16} {:>10.1} {:>8} {:>8} {:>8} {:>8}",
            l.mean, l.p50, l.p90, l.p99, l.max
        )?;
    }
    writeln!(out, "block size       {} tokens", s.block_size)?;
    writeln!(
        out,
        "blocks           {} total, {} unique",
        s.n_blocks_total, s.n_blocks_unique
    )?;
    writeln!(
        out,
        "ideal hit rate   {:.4} (blocks), {:.4} (tokens)",
        s.ideal_hit_rate_blocks, s.ideal_hit_rate_tokens
    )?;
    Ok(())
}

fn report_skipped(skipped: &SkippedLines, out: &mut dyn Write) -> std::io::Result<()> {
    let n = skipped.n_skipped();
    if n > 0 {
        writeln!(out, "warning: skipped {n} bad line(s); first:")?;
        for e in skipped.first_errors() {
            writeln!(out, "  {e}")?;
        }
    }
    Ok(())
}

/// Reads a scenario or bare workload YAML: the workload spec and the
/// top-level `seed:` if any.
pub fn load_workload_yaml(path: &Path) -> anyhow::Result<(WorkloadSpec, Option<u64>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let seed = doc.get("seed").and_then(serde_yaml_ng::Value::as_u64);
    let section = match doc.get("workload") {
        Some(w) => w.clone(),
        None => doc,
    };
    let spec: WorkloadSpec = serde_yaml_ng::from_value(section)
        .with_context(|| format!("{}: workload", path.display()))?;
    Ok((spec, seed))
}

fn gen(a: &GenArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (spec, yaml_seed) = load_workload_yaml(&a.yaml)?;
    let seed = a.seed.or(yaml_seed).unwrap_or(0);
    let base = a.yaml.parent().unwrap_or(Path::new("."));
    let stream = open_workload(&spec, base, &RngStreams::new(seed))
        .with_context(|| format!("opening workload of {}", a.yaml.display()))?;
    let skipped = stream.skipped().clone();
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = NativeWriter::new(BufWriter::new(file))?;
    let mut n = 0u64;
    for r in stream {
        w.write(&r?)?;
        n += 1;
    }
    w.finish()?;
    writeln!(
        out,
        "wrote {n} requests to {} (seed {seed})",
        a.out.display()
    )?;
    report_skipped(&skipped, out)?;
    Ok(())
}

fn convert(a: &ConvertArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (it, skipped) = a.input.open()?;
    let file = File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let buf = BufWriter::new(file);
    let mut n = 0u64;
    let each = |f: &mut dyn FnMut(&TraceRequest) -> std::io::Result<()>| -> anyhow::Result<()> {
        for r in it {
            f(&r?)?;
            n += 1;
        }
        Ok(())
    };
    match a.to {
        ConvertTo::Native => {
            let mut w = NativeWriter::new(buf)?;
            each(&mut |r| w.write(r))?;
            w.finish()?;
        }
        ConvertTo::Mooncake => {
            let mut w = MooncakeWriter::new(buf, MOONCAKE_TOKENS_PER_ID);
            each(&mut |r| w.write(r))?;
            w.finish()?;
        }
    }
    writeln!(
        out,
        "wrote {n} requests to {} ({:?})",
        a.out.display(),
        a.to
    )?;
    report_skipped(&skipped, out)?;
    Ok(())
}

/// Wall-clock timings of [`bench_trace`].
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Requests parsed.
    pub n_requests: u64,
    /// Full blocks hashed.
    pub n_blocks: u64,
    /// Block size used.
    pub block_size: u32,
    /// Reading and parsing the file, seconds.
    pub parse_s: f64,
    /// Computing all block keys, seconds.
    pub block_keys_s: f64,
    /// Stack-distance pass over the keys, seconds.
    pub curve_s: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "requests     {}", self.n_requests)?;
        writeln!(
            f,
            "blocks       {} (block size {})",
            self.n_blocks, self.block_size
        )?;
        writeln!(f, "parse        {:.3} s", self.parse_s)?;
        writeln!(f, "block keys   {:.3} s", self.block_keys_s)?;
        write!(f, "curve        {:.3} s", self.curve_s)
    }
}

/// Times parsing `input`, hashing its blocks and the one-pass curve
/// (each phase separately; build with `--release` for meaningful numbers).
pub fn bench_trace(input: &TraceInput, block_size: u32) -> anyhow::Result<BenchReport> {
    let t0 = Instant::now();
    let (it, _) = input.open()?;
    let reqs: Vec<TraceRequest> = it.collect::<Result<_, _>>()?;
    let parse_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let keys: Vec<Vec<u64>> = reqs
        .iter()
        .map(|r| r.prompt.block_keys(block_size, r.cache_salt.as_deref()))
        .collect();
    let block_keys_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let mut b = CurveBuilder::new(block_size);
    for (r, k) in reqs.iter().zip(&keys) {
        b.push(k, r.prompt.n_tokens());
    }
    let curve = b.finish();
    let curve_s = t2.elapsed().as_secs_f64();
    Ok(BenchReport {
        n_requests: reqs.len() as u64,
        n_blocks: curve.n_blocks_total,
        block_size,
        parse_s,
        block_keys_s,
        curve_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: TraceCommand,
    }

    fn run_cli(argv: &[&str]) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("trace").chain(argv.iter().copied()))?;
        let mut out = Vec::new();
        run(&TraceArgs { command: cli.cmd }, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvsim-trace-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn missing_trace_names_the_file_and_the_os_reason_once() {
        let p = tmp("absent.jsonl");
        let e = run_cli(&["stats", p.to_str().unwrap()]).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("absent.jsonl: cannot read"), "{msg}");
        assert_eq!(msg.matches("os error").count(), 1, "{msg}");
    }

    #[test]
    fn stats_reports_skipped_lines() {
        let p = tmp("bad.jsonl");
        std::fs::write(
            &p,
            "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [0, 1]}\n\
             {\"timestamp\": 1, \"input_length\": \"x\", \"output_length\": 5, \"hash_ids\": [0]}\n\
             {\"timestamp\": 2, \"input_length\": 512, \"output_length\": 7, \"hash_ids\": [0]}\n",
        )
        .unwrap();
        let e = run_cli(&["stats", p.to_str().unwrap()]).unwrap_err();
        assert!(
            format!("{e:#}").contains("bad.jsonl:2: input_length: expected non-negative integer"),
            "{e:#}"
        );
        let text = run_cli(&["stats", p.to_str().unwrap(), "--skip-bad-lines"]).unwrap();
        assert!(text.contains("requests         2"), "{text}");
        assert!(text.contains("warning: skipped 1 bad line(s)"), "{text}");
        let json = run_cli(&[
            "stats",
            p.to_str().unwrap(),
            "--skip-bad-lines",
            "--json",
            "--block-size",
            "512",
        ])
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(json.split("warning").next().unwrap()).unwrap();
        assert_eq!(v["n_skipped_lines"], 1);
        assert_eq!(v["n_blocks_hit_ideal"], 1);
    }

    #[test]
    fn gen_then_convert_round_trip() {
        let y = tmp("w.yaml");
        std::fs::write(&y, "seed: 3\nworkload:\n  sglang_shared_prefix: {num_groups: 2, prompts_per_group: 3, system_prompt_len: 64, question_len: 16, output_len: 8}\n  arrivals: {type: poisson, rate_per_s: 5}\n").unwrap();
        let native = tmp("w.jsonl");
        let msg = run_cli(&[
            "gen",
            y.to_str().unwrap(),
            "--out",
            native.to_str().unwrap(),
        ])
        .unwrap();
        assert!(
            msg.starts_with("wrote 6 requests") && msg.contains("seed 3"),
            "{msg}"
        );
        let moon = tmp("w.mooncake.jsonl");
        run_cli(&[
            "convert",
            native.to_str().unwrap(),
            "--to",
            "mooncake",
            "--out",
            moon.to_str().unwrap(),
        ])
        .unwrap();
        // Native keeps token prompts: the 64-token system prompt is 4 shared
        // 16-token blocks, hit by 2 of 3 prompts per group = 16 hits. Mooncake
        // ids are 512-token prefix hashes, and an 80-token prompt is one partial
        // hash block unique to it, so sharing below 512 tokens is lost.
        let s1 = run_cli(&["stats", native.to_str().unwrap(), "--json"]).unwrap();
        let s2 = run_cli(&[
            "stats",
            moon.to_str().unwrap(),
            "--json",
            "--format",
            "mooncake",
        ])
        .unwrap();
        let (v1, v2): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&s1).unwrap(),
            serde_json::from_str(&s2).unwrap(),
        );
        assert_eq!(v1["n_requests"], 6);
        assert_eq!(v1["n_blocks_total"], 30);
        assert_eq!(v1["n_blocks_hit_ideal"], 16);
        assert_eq!(v2["n_blocks_total"], v1["n_blocks_total"]);
        assert_eq!(v2["n_blocks_hit_ideal"], 0);
        let e = run_cli(&["stats", native.to_str().unwrap(), "--format", "mooncak"]).unwrap_err();
        assert!(e.to_string().contains("did you mean \"mooncake\""), "{e}");
    }
}
