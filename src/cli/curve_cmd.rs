//! `kvsim curve TRACE`: LRU prefix hit rate vs cache capacity (CSV + PNG + SVG).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};

use super::trace_cmd::TraceInput;
use crate::curve::curve_of;
use crate::curve::model::{default_gpu_marks, kv_bytes_per_token, CapacityMark};
use crate::curve::output::{capacity_grid, curve_points, write_csv};
use crate::curve::plot::{write_plots, CurvePlot};

/// `kvsim curve`.
#[derive(clap::Args, Debug)]
pub struct CurveArgs {
    /// The trace.
    #[command(flatten)]
    pub input: TraceInput,
    /// KV block size in tokens (the cache's granularity).
    #[arg(long)]
    pub block_size: u32,
    /// Model, for the GiB column and default GPU marks (e.g. meta-llama/Llama-3.1-8B-Instruct).
    #[arg(long)]
    pub model: Option<String>,
    /// KV bytes per token, overriding the model's.
    #[arg(long)]
    pub kv_bytes_per_token: Option<u64>,
    /// Mark a capacity on the plot: LABEL=N_BLOCKS (repeatable; replaces the
    /// model's default GPU marks).
    #[arg(long = "mark", value_parser = parse_mark)]
    pub marks: Vec<CapacityMark>,
    /// Number of log-spaced capacities in the CSV (at least 2; at most one per
    /// block count up to saturation).
    #[arg(long, default_value_t = 200, value_parser = parse_points)]
    pub points: usize,
    /// Output directory for curve.csv, curve.png, curve.svg.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// `--points`: a curve needs two capacities (its ends).
fn parse_points(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        Ok(n) => Err(format!("must be at least 2, got {n}")),
        Err(_) => Err(format!("expected a whole number of at least 2, got {s:?}")),
    }
}

fn parse_mark(s: &str) -> Result<CapacityMark, String> {
    let (label, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=N_BLOCKS, got {s:?}"))?;
    let n_blocks = n
        .trim()
        .parse()
        .map_err(|_| format!("expected a block count after '=', got {n:?}"))?;
    if label.trim().is_empty() {
        return Err(format!("the mark needs a label before '=', got {s:?}"));
    }
    Ok(CapacityMark {
        label: label.trim().to_string(),
        n_blocks,
    })
}

/// Computes the curve, writes `curve.csv`, `curve.png`, `curve.svg` into
/// `--out`, and a short summary to `out`.
pub fn run(args: &CurveArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.block_size == 0 {
        bail!("--block-size must be positive");
    }
    let per_token = match (args.kv_bytes_per_token, &args.model) {
        (Some(b), _) => Some(b),
        (None, Some(m)) => Some(
            kv_bytes_per_token(m)
                .map_err(|e| anyhow!("--model: {e}; or pass --kv-bytes-per-token"))?,
        ),
        (None, None) => None,
    };
    let marks = if args.marks.is_empty() {
        args.model
            .as_deref()
            .map(|m| default_gpu_marks(m, args.block_size))
            .unwrap_or_default()
    } else {
        args.marks.clone()
    };
    let (it, skipped) = args.input.open()?;
    let curve = curve_of(it, args.block_size)?;
    let caps = capacity_grid(&curve, args.points, &marks);
    let points = curve_points(&curve, &caps, per_token);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv_path = args.out.join("curve.csv");
    let mut csv = std::io::BufWriter::new(
        std::fs::File::create(&csv_path)
            .with_context(|| format!("creating {}", csv_path.display()))?,
    );
    write_csv(&points, &mut csv)?;
    csv.flush()?;
    let name = args
        .input
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = format!(
        "{name}: LRU prefix hit rate, block size {}",
        args.block_size
    );
    let plot = CurvePlot {
        title: &title,
        points: &points,
        marks: &marks,
        block_size: args.block_size,
        kv_bytes_per_token: per_token,
    };
    write_plots(&plot, &args.out, "curve").map_err(|e| anyhow!("writing plots: {e}"))?;
    writeln!(
        out,
        "requests {}, blocks {} total / {} unique (block size {})",
        curve.n_requests, curve.n_blocks_total, curve.n_blocks_unique, args.block_size
    )?;
    writeln!(
        out,
        "infinite-cache hit rate {:.4} (blocks), {:.4} (tokens), reached at {} blocks",
        curve.hit_rate_blocks(u64::MAX),
        curve.hit_rate_tokens(u64::MAX),
        curve.saturation_blocks()
    )?;
    for m in &marks {
        writeln!(
            out,
            "{:<24} {:>10} blocks: hit rate {:.4} (blocks), {:.4} (tokens)",
            m.label,
            m.n_blocks,
            curve.hit_rate_blocks(m.n_blocks),
            curve.hit_rate_tokens(m.n_blocks)
        )?;
    }
    writeln!(out, "wrote {}, curve.png, curve.svg", csv_path.display())?;
    if skipped.n_skipped() > 0 {
        writeln!(out, "warning: skipped {} bad line(s)", skipped.n_skipped())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CurveArgs,
    }

    #[test]
    fn curve_command_writes_csv_and_plots() {
        let dir = std::env::temp_dir().join(format!("kvsim-curve-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("t.jsonl");
        std::fs::write(
            &trace,
            "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 5, \"hash_ids\": [0, 1]}\n\
             {\"timestamp\": 1, \"input_length\": 1024, \"output_length\": 5, \"hash_ids\": [0, 2]}\n\
             {\"timestamp\": 2, \"input_length\": 1024, \"output_length\": 5, \"hash_ids\": [0, 1]}\n",
        )
        .unwrap();
        let out_dir = dir.join("out");
        let cli = Cli::try_parse_from([
            "curve",
            trace.to_str().unwrap(),
            "--block-size",
            "512",
            "--model",
            "Llama-3.2-1B",
            "--mark",
            "tiny=2",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        run(&cli.args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        // r1 hits block 0 (distance 1); r2 hits 0 at distance 1 and 1 at distance 3.
        assert!(
            text.contains("infinite-cache hit rate 0.5000 (blocks)"),
            "{text}"
        );
        assert!(text.contains("reached at 3 blocks"), "{text}");
        assert!(
            text.contains("tiny                              2 blocks: hit rate 0.3333"),
            "{text}"
        );
        let csv = std::fs::read_to_string(out_dir.join("curve.csv")).unwrap();
        assert!(
            csv.lines()
                .any(|l| l == "3,1536,0.046875,0.500000,0.500000"),
            "{csv}"
        );
        assert!(out_dir.join("curve.png").exists() && out_dir.join("curve.svg").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(parse_mark("x").is_err());
    }

    #[test]
    fn points_below_two_and_unknown_models_are_errors_that_say_what_is_valid() {
        let parse = |extra: &[&str]| {
            Cli::try_parse_from([&["curve", "t.jsonl", "--block-size", "16"], extra].concat())
        };
        for bad in ["0", "1"] {
            let e = parse(&["--points", bad]).err().expect(bad).to_string();
            assert!(e.contains("must be at least 2"), "{e}");
        }
        assert_eq!(parse(&["--points", "2"]).unwrap().args.points, 2);
        let cli = parse(&["--model", "Llama-3.1-8X"]).unwrap();
        let e = run(&cli.args, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("--model: unknown model \"Llama-3.1-8X\"") && e.contains("did you mean"),
            "{e}"
        );
        assert!(parse_mark(" =5").unwrap_err().contains("label"));
    }
}
