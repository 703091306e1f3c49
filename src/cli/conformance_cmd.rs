//! `kvsim conformance vllm CASE.json [--async] [--vllm-version V] [--python-hash-seed S] --out OUT.json`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::compat::VllmVersion;
use crate::conformance::vllm::{self, RunOptions, Workload};

#[derive(Debug, Subcommand)]
pub(crate) enum ConformanceCommand {
    /// Run a workload recorded with vLLM's own V1 scheduler through the pod model.
    Vllm(VllmArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VllmArgs {
    /// Workload file (`NAME.json`).
    case: PathBuf,
    /// Use the AsyncScheduler (batch queue of 2) instead of the sync Scheduler.
    #[arg(long = "async")]
    async_scheduling: bool,
    /// vLLM release semantics: 0.33 or 0.11.
    #[arg(long, default_value = "0.33")]
    vllm_version: VllmVersion,
    /// PYTHONHASHSEED for NONE_HASH (overrides the workload's).
    #[arg(long)]
    python_hash_seed: Option<String>,
    /// Output file (the oracle's schema); `-` for stdout.
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

pub(crate) fn run(cmd: &ConformanceCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let ConformanceCommand::Vllm(a) = cmd;
    let text = std::fs::read_to_string(&a.case)
        .with_context(|| format!("reading {}", a.case.display()))?;
    let w: Workload = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid workload", a.case.display()))?;
    let opts = RunOptions {
        async_scheduling: a.async_scheduling,
        version: a.vllm_version,
        python_hash_seed: a.python_hash_seed.clone(),
    };
    let res = vllm::run(&w, &opts).with_context(|| format!("{}", a.case.display()))?;
    if a.out.as_os_str() == "-" {
        crate::report::write::json(out, &res)?;
    } else {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?,
        );
        crate::report::write::json(&mut f, &res)?;
        f.flush()?;
    }
    Ok(())
}
