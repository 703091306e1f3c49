//! `kvsim import --modelservice F [--configmap F] [--scenario S] [--out FILE]`:
//! writes the scenario an llm-d deployment imports to, with the import's
//! warnings and recognised fields as comments, so it can be read and varied.
//! Also the glue `kvsim run --modelservice` uses ([`load_for_run`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::scenario::k8s::Origin;
use crate::scenario::modelservice::{self, default_workload};
use crate::scenario::resolve::{self, Overrides, Resolved};
use crate::scenario::{DeploymentRef, Scenario};

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// ModelService YAML (llm-d.ai/v1alpha1).
    #[arg(long)]
    modelservice: PathBuf,
    /// The ConfigMap its baseConfigMapRef names (BaseConfig, EndpointPickerConfig or EPP env list).
    #[arg(long)]
    configmap: Option<PathBuf>,
    /// Scenario supplying the workload and everything but pods, router and pd
    /// (default: llm-d-benchmark's shared-prefix workload at 10 QPS for 100 s).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Output scenario file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not list the warnings on standard error.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn run(a: &ImportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let imported = modelservice::import_files(&a.modelservice, a.configmap.as_deref())?;
    let recognised = imported.recognised.clone();
    let mut base = match &a.scenario {
        Some(p) => read_scenario(p)?,
        None => Scenario {
            workload: default_workload(),
            ..Default::default()
        },
    };
    let at = Origin {
        file: a.modelservice.clone(),
        line: None,
        field: String::new(),
    };
    let warnings = modelservice::apply_to(&mut base, imported, &at);
    let out_name = a
        .out
        .as_ref()
        .map_or_else(|| "scenario.yaml".to_string(), |p| p.display().to_string());
    let header = format!(
        "Scenario imported by `kvsim import` (kvsim {}) from {}.\nEdit freely; run it with: kvsim run {out_name}",
        env!("CARGO_PKG_VERSION"),
        modelservice::describe_sources(&a.modelservice, a.configmap.as_deref()),
    );
    let text = modelservice::render_yaml(&base, &warnings, &recognised, &header)
        .context("writing the imported scenario as YAML")?;
    // The file must run as written.
    let out_path = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("scenario.yaml"));
    let dir = out_path.parent().map(Path::to_path_buf).unwrap_or_default();
    resolve::resolve_text(&out_path, &text, &dir, "imported", &Overrides::default())
        .context("the imported scenario does not resolve")?;
    match &a.out {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    if !a.quiet {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        eprintln!(
            "imported {} pod groups; {} warnings, {} fields recognised",
            base.pods.len(),
            warnings.len(),
            recognised.len()
        );
    }
    Ok(())
}

/// A scenario file parsed (not resolved), its relative trace path made absolute.
fn read_scenario(p: &Path) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let mut sc: Scenario =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    if let Some(t) = sc.workload.trace.as_mut() {
        if t.path.is_relative() {
            t.path = std::path::absolute(p.parent().unwrap_or(Path::new("")).join(&t.path))?;
        }
    }
    Ok(sc)
}

/// `--modelservice` / `--configmap` as a deployment reference with absolute paths.
pub(crate) fn deployment_ref(
    ms: Option<&Path>,
    cm: Option<&Path>,
) -> anyhow::Result<Option<DeploymentRef>> {
    let abs = |p: &Path| -> anyhow::Result<String> {
        Ok(std::path::absolute(p)?.to_string_lossy().into_owned())
    };
    match (ms, cm) {
        (None, None) => Ok(None),
        (None, Some(_)) => anyhow::bail!("--configmap needs --modelservice"),
        (Some(m), c) => Ok(Some(DeploymentRef {
            modelservice: abs(m)?,
            configmap: c.map(abs).transpose()?,
        })),
    }
}

/// The scenario `kvsim run` simulates: the scenario file (with the deployment
/// of `overrides`, if any) or, without one, the deployment with the default workload.
pub(crate) fn load_for_run(
    scenario: Option<&Path>,
    overrides: &Overrides,
) -> anyhow::Result<Resolved> {
    match (scenario, &overrides.deployment) {
        (Some(s), _) => Ok(resolve::load(s, overrides)?),
        (None, Some(d)) => {
            let sc = Scenario {
                workload: default_workload(),
                ..Default::default()
            };
            let text = modelservice::scenario_yaml(&sc)?;
            let ms = PathBuf::from(&d.modelservice);
            let stem = ms
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(resolve::resolve_text(
                &ms,
                &text,
                Path::new(""),
                &stem,
                overrides,
            )?)
        }
        (None, None) => anyhow::bail!("give a SCENARIO file or --modelservice FILE"),
    }
}
