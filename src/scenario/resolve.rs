//! Scenario → validated cluster description → pods.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{did_you_mean, ErrorCtx, ScenarioError};
use super::{EppSpec, PodGroup, RouterSpec, Scenario};
use crate::catalog::{gpu::GpuSpec, model::ModelSpec};
use crate::compat::VllmVersion;
use crate::engine::rng::RngStreams;
use crate::engine::time::SimDuration;
use crate::epp::config::LoadedConfig;
use crate::kv::hash::{HashAlgo, VllmBlockHasher};
use crate::kv::hasher::BlockHasher;
use crate::pod::capacity::{self, CapacityInput};
use crate::pod::engine::{Pod, Role};
use crate::pod::latency::{build_step_time_model, StepTimeSpec};
use crate::pod::scheduler::{Policy, Scheduler, SchedulerConfig};
use crate::trace::spec::WorkloadSpec;

/// Longest `max_model_len` kvsim picks by default (Llama 3.x context).
const DEFAULT_MAX_MODEL_LEN_CAP: u32 = 131_072;

/// How block keys are computed in a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hashing {
    /// xxh3 chained keys.
    Fast,
    /// Each pod's vLLM algorithm.
    Vllm,
}

/// One validated pod group.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedGroup {
    /// Group name.
    pub name: String,
    /// Pods in the group.
    pub count: u32,
    /// Role.
    pub role: String,
    /// GPU catalog name.
    pub gpu: String,
    /// Model name.
    pub model: String,
    /// GPUs per pod.
    pub tensor_parallel_size: u32,
    /// KV blocks per pod (vLLM `num_gpu_blocks`, null block included).
    pub num_gpu_blocks: u32,
    /// KV capacity per pod in tokens (`(num_gpu_blocks − 1) × block_size`).
    pub kv_capacity_tokens: u64,
    /// Tokens per block.
    pub block_size: u32,
    /// Token budget per step.
    pub max_num_batched_tokens: u32,
    /// Most running requests.
    pub max_num_seqs: u32,
    /// Longest prompt + output.
    pub max_model_len: u32,
    /// GPU memory fraction.
    pub gpu_memory_utilization: f64,
    /// Prefix caching.
    pub enable_prefix_caching: bool,
    /// Hash algorithm (used when `block_hashing: vllm`).
    pub prefix_caching_hash_algo: String,
    /// PYTHONHASHSEED.
    pub python_hash_seed: Option<String>,
    /// Async scheduling.
    pub async_scheduling: bool,
    /// Chunked prefill.
    pub enable_chunked_prefill: bool,
    /// Prefill cap per request per step.
    pub long_prefill_token_threshold: u32,
    /// Watermark fraction.
    pub watermark: f64,
    /// Full-prompt admission reserve.
    pub scheduler_reserve_full_isl: bool,
    /// `fcfs` or `priority`.
    pub scheduling_policy: String,
    /// Step-time model.
    pub step_time: StepTimeSpec,
    #[serde(skip)]
    gpu_spec: Option<&'static GpuSpec>,
    #[serde(skip)]
    model_spec: Option<ModelSpec>,
}

/// A validated scenario: everything `kvsim run` needs, with every default filled in.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    /// kvsim version that resolved it.
    pub kvsim_version: String,
    /// Scenario name.
    pub name: String,
    /// Master seed.
    pub seed: u64,
    /// vLLM semantics.
    pub vllm_version: String,
    /// Block keys.
    pub block_hashing: Hashing,
    /// Pod groups.
    pub pod_groups: Vec<ResolvedGroup>,
    /// Router.
    pub router: RouterSpec,
    /// Workload.
    pub workload: WorkloadSpec,
    /// Routing latency, µs.
    pub routing_latency_us: u64,
    /// Sampling interval, ms.
    pub sample_interval_ms: u64,
    /// Horizon, s.
    pub horizon_s: Option<f64>,
    /// Whether pods publish KV events (a precise-prefix index consumes them).
    pub kv_events_enabled: bool,
    /// What the `deployment:` import could not model or had to assume.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub import_warnings: Vec<String>,
    /// P/D settings as given or imported (`pd:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd: Option<super::PdSpec>,
    /// NIXL transfer network (P/D).
    pub transfer: crate::transfer::spec::TransferSpec,
    /// Prefill-side hold timeout, s (`None`: lease renewed while the decode pod waits).
    pub prefill_hold_timeout_s: Option<f64>,
    /// Directory relative paths resolve against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    version: VllmVersion,
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--trace FILE`: replaces the workload's trace path; a relative path
    /// resolves against the scenario's directory, so the CLI passes it absolute.
    pub trace: Option<PathBuf>,
    /// `--modelservice F [--configmap F]`: replaces the scenario's `deployment`.
    pub deployment: Option<super::DeploymentRef>,
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Resolved, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    resolve_text(path, &text, &base_dir, &default_name, overrides)
}

/// Parses and validates scenario YAML `text` (from `path`, for messages).
pub fn resolve_text(
    path: &Path,
    text: &str,
    base_dir: &Path,
    default_name: &str,
    overrides: &Overrides,
) -> Result<Resolved, ScenarioError> {
    let ctx = ErrorCtx { file: path, text };
    let mut sc: Scenario =
        serde_yaml_ng::from_str(text).map_err(|e| super::error::from_serde(path, text, &e))?;
    if let Some(seed) = overrides.seed {
        sc.seed = seed;
    }
    if let Some(trace) = &overrides.trace {
        sc.workload.override_trace_path(trace.clone());
    }
    // Deployment import (scenario/modelservice.rs): pods, router and pd from llm-d YAML.
    if let Some(d) = &overrides.deployment {
        sc.deployment = Some(d.clone());
    }
    let from_file = overrides.deployment.is_none();
    let import_warnings: Vec<String> = super::modelservice::expand_deployment(&mut sc, base_dir)
        .map_err(|e| match (&sc.deployment, e.line) {
            // A file the scenario names but that cannot be read: say which field named it.
            (Some(d), None) if from_file && e.message.starts_with("cannot read") => {
                let (field, value) = if e.file == base_dir.join(&d.modelservice) {
                    ("deployment.modelservice", d.modelservice.as_str())
                } else {
                    ("deployment.configmap", d.configmap.as_deref().unwrap_or(""))
                };
                ctx.err(
                    field,
                    Some(value),
                    format!("{}: {}", e.file.display(), e.message),
                )
            }
            _ => e,
        })?
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some((field, m)) = super::modelservice::check_pd(&sc) {
        return Err(ctx.err(&field, None, m));
    }
    // End of deployment import.
    let version: VllmVersion = match sc.vllm_version.as_deref() {
        None => VllmVersion::V0_33,
        Some(v) => v
            .parse()
            .map_err(|m: String| ctx.err("vllm_version", Some(v), m))?,
    };
    let hashing = match sc.block_hashing.as_deref() {
        None | Some("fast") => Hashing::Fast,
        Some("vllm") => Hashing::Vllm,
        Some(other) => {
            let hint = did_you_mean(other, &["fast", "vllm"]);
            return Err(ctx.err(
                "block_hashing",
                Some(other),
                format!("unknown value \"{other}\" (valid: fast, vllm){hint}"),
            ));
        }
    };
    if sc.pods.is_empty() {
        return Err(ctx.err("pods", None, "at least one pod group is required"));
    }
    let default_step = sc.step_time.clone().unwrap_or_default();
    let mut groups = Vec::new();
    for (i, g) in sc.pods.iter().enumerate() {
        groups.push(resolve_group(&ctx, i, g, version, &default_step, base_dir)?);
    }
    let mut names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ctx.err(
            "pods.name",
            Some(w[0]),
            format!("two pod groups are named \"{}\"", w[0]),
        ));
    }
    if let Some(h) = sc.horizon_s {
        if !(h > 0.0) {
            return Err(ctx.err("horizon_s", None, format!("must be > 0, got {h}")));
        }
    }
    let router = sc.router.clone().unwrap_or(RouterSpec::RoundRobin);
    let mut kv_events_enabled = false;
    if let RouterSpec::Epp(e) = &router {
        let loaded = load_epp_config(e, base_dir).map_err(|(field, m)| ctx.err(&field, None, m))?;
        kv_events_enabled = !loaded.precise_prefix.is_empty();
        if let Some(lag) = &e.kv_events {
            lag.check()
                .map_err(|(field, m)| ctx.err(&format!("router.kv_events.{field}"), None, m))?;
        }
        if let Some(ms) = e.metrics_refresh_ms {
            if !(ms > 0.0 && ms.is_finite()) {
                return Err(ctx.err(
                    "router.metrics_refresh_ms",
                    None,
                    format!("must be a finite number of ms > 0, got {ms}"),
                ));
            }
        }
    }
    let transfer = sc.transfer.clone().unwrap_or_default();
    transfer
        .resolve()
        .map_err(|e| ctx.err("transfer", None, e.to_string()))?;
    let prefill_hold_timeout_s = match sc.prefill_hold_timeout_s {
        Some(t) if !(t > 0.0) => {
            return Err(ctx.err(
                "prefill_hold_timeout_s",
                None,
                format!("must be > 0, got {t}"),
            ))
        }
        Some(t) => Some(t),
        None => (version == VllmVersion::V0_11).then_some(120.0),
    };
    let has_prefill = groups.iter().any(|g| g.role == "prefill");
    let has_decode = groups.iter().any(|g| g.role != "prefill");
    if has_prefill && !has_decode {
        return Err(ctx.err(
            "pods",
            None,
            "every pod group is a prefill pool: add a decode (or both) pool to serve requests",
        ));
    }
    Ok(Resolved {
        kvsim_version: env!("CARGO_PKG_VERSION").to_string(),
        name: sc.name.clone().unwrap_or_else(|| default_name.to_string()),
        seed: sc.seed,
        vllm_version: version.to_string(),
        block_hashing: hashing,
        pod_groups: groups,
        router,
        kv_events_enabled,
        import_warnings,
        pd: sc.pd.clone(),
        transfer,
        prefill_hold_timeout_s,
        workload: sc.workload.clone(),
        routing_latency_us: sc.routing_latency_us.unwrap_or(0),
        sample_interval_ms: sc.sample_interval_ms.unwrap_or(1000).max(1),
        horizon_s: sc.horizon_s,
        base_dir: base_dir.to_path_buf(),
        version,
    })
}

/// Builds the EPP configuration an [`EppSpec`] names; errors are `(field, message)`.
pub fn load_epp_config(spec: &EppSpec, base_dir: &Path) -> Result<LoadedConfig, (String, String)> {
    let n_sources = [
        spec.config_file.is_some(),
        spec.config.is_some(),
        spec.env_file.is_some(),
        spec.env.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if n_sources > 1 {
        return Err((
            "router".into(),
            "give one of config_file, config, env_file, env".into(),
        ));
    }
    let read = |field: &str, p: &str| {
        let path = base_dir.join(p);
        std::fs::read_to_string(&path).map_err(|e| {
            (
                format!("router.{field}"),
                format!("cannot read {}: {e}", path.display()),
            )
        })
    };
    if let Some(p) = &spec.config_file {
        let text = read("config_file", p)?;
        return crate::epp::config::load_yaml(&text).map_err(|e| {
            (
                "router.config_file".into(),
                format!("{}: {e}", base_dir.join(p).display()),
            )
        });
    }
    if let Some(v) = &spec.config {
        let text = serde_yaml_ng::to_string(v)
            .map_err(|e| ("router.config".to_string(), e.to_string()))?;
        return crate::epp::config::load_yaml(&text)
            .map_err(|e| ("router.config".into(), e.to_string()));
    }
    if let Some(p) = &spec.env_file {
        let text = read("env_file", p)?;
        return crate::epp::config::from_env_yaml(&text).map_err(|e| {
            (
                "router.env_file".into(),
                format!("{}: {e}", base_dir.join(p).display()),
            )
        });
    }
    if let Some(vars) = &spec.env {
        let pairs: Vec<(String, String)> = vars
            .iter()
            .filter_map(|v| v.value.clone().map(|val| (v.name.clone(), val)))
            .collect();
        return crate::epp::config::from_env(&pairs)
            .map_err(|e| ("router.env".into(), e.to_string()));
    }
    crate::epp::config::load_yaml("").map_err(|e| ("router".into(), e.to_string()))
}

fn resolve_group(
    ctx: &ErrorCtx,
    i: usize,
    g: &PodGroup,
    version: VllmVersion,
    default_step: &StepTimeSpec,
    base_dir: &Path,
) -> Result<ResolvedGroup, ScenarioError> {
    let f = |name: &str| format!("pods[{i}].{name}");
    let role = match g.role.as_deref().unwrap_or("both") {
        r @ ("both" | "prefill" | "decode") => r.to_string(),
        other => {
            let hint = did_you_mean(other, &["both", "prefill", "decode"]);
            return Err(ctx.err(
                &f("role"),
                Some(other),
                format!("unknown role \"{other}\" (valid: both, prefill, decode){hint}"),
            ));
        }
    };
    let count = g.count.unwrap_or(1);
    if count == 0 {
        return Err(ctx.err(&f("count"), Some("0"), "a pod group needs at least one pod"));
    }
    let gpu = crate::catalog::gpu::gpu(&g.gpu)
        .map_err(|e| ctx.err(&f("gpu"), Some(&g.gpu), e.to_string()))?;
    let model: ModelSpec = match (&g.model, &g.model_config) {
        (Some(m), None) => crate::catalog::model::model(m)
            .map_err(|e| ctx.err(&f("model"), Some(m), e.to_string()))?
            .clone(),
        (None, Some(p)) => {
            let path = base_dir.join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.err(
                    &f("model_config"),
                    Some(p),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            ModelSpec::from_hf_config_json(&text, &path.display().to_string())
                .map_err(|e| ctx.err(&f("model_config"), Some(p), e.to_string()))?
        }
        (Some(_), Some(_)) => {
            return Err(ctx.err(
                &f("model_config"),
                None,
                "give either `model` or `model_config`, not both",
            ))
        }
        (None, None) => {
            return Err(ctx.err(
                &f("model"),
                None,
                "missing: name a catalog model or give `model_config`",
            ))
        }
    };
    let tp = g.tensor_parallel_size.unwrap_or(1);
    if tp == 0 {
        return Err(ctx.err(&f("tensor_parallel_size"), Some("0"), "must be at least 1"));
    }
    let v = &g.vllm;
    let (def_mnbt, def_seqs) = capacity::vllm_batch_defaults(gpu, version);
    let block_size = v.block_size.unwrap_or(16);
    if block_size == 0 || block_size > 4096 {
        return Err(ctx.err(
            &f("vllm.block_size"),
            Some(&block_size.to_string()),
            format!("must be in 1..=4096, got {block_size}"),
        ));
    }
    let mnbt = v.max_num_batched_tokens.unwrap_or(def_mnbt);
    if mnbt == 0 {
        return Err(ctx.err(
            &f("vllm.max_num_batched_tokens"),
            Some("0"),
            "must be at least 1",
        ));
    }
    let seqs = v.max_num_seqs.unwrap_or(def_seqs);
    if seqs == 0 {
        return Err(ctx.err(&f("vllm.max_num_seqs"), Some("0"), "must be at least 1"));
    }
    let util = v
        .gpu_memory_utilization
        .unwrap_or(capacity::default_gpu_memory_utilization(version));
    if !(util > 0.0 && util <= 1.0) {
        return Err(ctx.err(
            &f("vllm.gpu_memory_utilization"),
            Some(&util.to_string()),
            format!("must be in (0, 1], got {util}"),
        ));
    }
    let algo_name = v
        .prefix_caching_hash_algo
        .clone()
        .unwrap_or_else(|| "sha256".to_string());
    let algo: HashAlgo = algo_name.parse().map_err(|e| {
        ctx.err(
            &f("vllm.prefix_caching_hash_algo"),
            Some(&algo_name),
            format!("{e}"),
        )
    })?;
    algo.check_version(version).map_err(|e| {
        ctx.err(
            &f("vllm.prefix_caching_hash_algo"),
            Some(&algo_name),
            format!("{e}"),
        )
    })?;
    let num_gpu_blocks = match v.num_gpu_blocks_override {
        Some(n) => n,
        None => {
            let mut input = CapacityInput::vllm_defaults(gpu, &model, version);
            input.tp = tp;
            input.block_size = block_size;
            input.gpu_memory_utilization = util;
            input.max_num_batched_tokens = mnbt;
            input.max_num_seqs = seqs;
            capacity::num_gpu_blocks(&input)
                .map_err(|e| ctx.err(&f("gpu"), Some(&g.gpu), e.to_string()))?
        }
    };
    if num_gpu_blocks < 2 {
        return Err(ctx.err(
            &f("vllm.num_gpu_blocks_override"),
            None,
            format!("{num_gpu_blocks} KV blocks leave none usable (block 0 is vLLM's null block); need at least 2"),
        ));
    }
    let num_gpu_blocks = u32::try_from(num_gpu_blocks)
        .ok()
        .filter(|&n| n <= crate::kv::block_pool::MAX_BLOCKS)
        .ok_or_else(|| {
            ctx.err(
                &f("vllm.num_gpu_blocks_override"),
                None,
                format!(
                    "{num_gpu_blocks} blocks is more than kvsim supports ({})",
                    crate::kv::block_pool::MAX_BLOCKS
                ),
            )
        })?;
    let capacity_tokens = (num_gpu_blocks as u64 - 1) * block_size as u64;
    let max_model_len = match v.max_model_len {
        Some(m) if m as u64 > capacity_tokens => {
            return Err(ctx.err(
                &f("vllm.max_model_len"),
                Some(&m.to_string()),
                format!("{m} tokens exceed the KV cache capacity of {capacity_tokens} tokens ({} usable blocks × {block_size}); vLLM refuses to start", num_gpu_blocks - 1),
            ))
        }
        Some(0) => return Err(ctx.err(&f("vllm.max_model_len"), Some("0"), "must be at least 1")),
        Some(m) => m,
        None => capacity_tokens.min(DEFAULT_MAX_MODEL_LEN_CAP as u64) as u32,
    };
    check_scheduler_config(ctx, &f, v, mnbt, seqs, max_model_len)?;
    let policy = match v.scheduling_policy.as_deref().unwrap_or("fcfs") {
        p @ ("fcfs" | "priority") => p.to_string(),
        other => {
            let hint = did_you_mean(other, &["fcfs", "priority"]);
            return Err(ctx.err(
                &f("vllm.scheduling_policy"),
                Some(other),
                format!("unknown policy \"{other}\" (valid: fcfs, priority){hint}"),
            ));
        }
    };
    let watermark = v.watermark.unwrap_or(0.0);
    if !(0.0..1.0).contains(&watermark) {
        return Err(ctx.err(
            &f("vllm.watermark"),
            Some(&watermark.to_string()),
            format!("must be in [0, 1), got {watermark}"),
        ));
    }
    let async_scheduling = v.async_scheduling.unwrap_or(version == VllmVersion::V0_33);
    let step_time = g.step_time.clone().unwrap_or_else(|| default_step.clone());
    // Build once here so bad parameters fail at load time, naming the field.
    build_step_time_model(&step_time, gpu, &model, tp, async_scheduling)
        .map_err(|e| step_time_err(ctx, i, g.step_time.is_some(), &e))?;
    Ok(ResolvedGroup {
        name: g.name.clone().unwrap_or_else(|| role.clone()),
        count,
        role,
        gpu: gpu.name.to_string(),
        model: model.name.to_string(),
        tensor_parallel_size: tp,
        num_gpu_blocks,
        kv_capacity_tokens: capacity_tokens,
        block_size,
        max_num_batched_tokens: mnbt,
        max_num_seqs: seqs,
        max_model_len,
        gpu_memory_utilization: util,
        enable_prefix_caching: v.enable_prefix_caching.unwrap_or(true),
        prefix_caching_hash_algo: algo.name().to_string(),
        python_hash_seed: v.python_hash_seed.clone(),
        async_scheduling,
        enable_chunked_prefill: v.enable_chunked_prefill.unwrap_or(true),
        long_prefill_token_threshold: v.long_prefill_token_threshold.unwrap_or(0),
        watermark,
        scheduler_reserve_full_isl: v.scheduler_reserve_full_isl.unwrap_or(true),
        scheduling_policy: policy,
        step_time,
        gpu_spec: Some(gpu),
        model_spec: Some(model),
    })
}

/// A step-time error at the field it is about: inside the group's own
/// `step_time` or, when the group inherits it, the top-level one.
fn step_time_err(
    ctx: &ErrorCtx<'_>,
    i: usize,
    own: bool,
    e: &crate::pod::latency::StepTimeError,
) -> ScenarioError {
    use crate::pod::latency::StepTimeError as E;
    let base = if own {
        format!("pods[{i}].step_time")
    } else {
        "step_time".to_string()
    };
    let (field, value) = match e {
        E::InvalidParameter { field, value, .. } => {
            (format!("{base}.{field}"), Some(value.to_string()))
        }
        E::UnknownCoefficients { name, .. } => (format!("{base}.coefficients"), Some(name.clone())),
        E::MissingCoefficient { .. } => (base, None),
        E::InvalidTp { tp, .. } => (
            format!("pods[{i}].tensor_parallel_size"),
            Some(tp.to_string()),
        ),
    };
    ctx.err(&field, value.as_deref(), e.to_string())
}

/// vLLM's `SchedulerConfig.verify_max_model_len` (`config/scheduler.py`):
/// configurations vLLM refuses at start-up, which would otherwise stall the
/// simulated pod. The error names the field the user set (else the default
/// that clashes with it).
fn check_scheduler_config(
    ctx: &ErrorCtx<'_>,
    f: &dyn Fn(&str) -> String,
    v: &super::VllmArgs,
    mnbt: u32,
    seqs: u32,
    max_model_len: u32,
) -> Result<(), ScenarioError> {
    let given = |set: bool| if set { "" } else { ", the default" };
    let mnbt_text = format!("{mnbt}{}", given(v.max_num_batched_tokens.is_some()));
    if !v.enable_chunked_prefill.unwrap_or(true) && mnbt < max_model_len {
        let (field, value) = if v.max_num_batched_tokens.is_some() {
            ("vllm.max_num_batched_tokens", mnbt.to_string())
        } else if v.max_model_len.is_some() {
            ("vllm.max_model_len", max_model_len.to_string())
        } else {
            ("vllm.enable_chunked_prefill", "false".to_string())
        };
        return Err(ctx.err(
            &f(field),
            Some(&value),
            format!(
                "with enable_chunked_prefill false, max_num_batched_tokens ({mnbt_text}) must be at least \
                 max_model_len ({max_model_len}{}): vLLM refuses to start; raise max_num_batched_tokens, \
                 lower max_model_len or enable chunked prefill",
                given(v.max_model_len.is_some())
            ),
        ));
    }
    if mnbt < seqs {
        let (field, value) = if v.max_num_batched_tokens.is_some() {
            ("vllm.max_num_batched_tokens", mnbt)
        } else {
            ("vllm.max_num_seqs", seqs)
        };
        return Err(ctx.err(
            &f(field),
            Some(&value.to_string()),
            format!(
                "max_num_batched_tokens ({mnbt_text}) must be at least max_num_seqs ({seqs}{}): \
                 vLLM refuses to start; raise max_num_batched_tokens or lower max_num_seqs",
                given(v.max_num_seqs.is_some())
            ),
        ));
    }
    Ok(())
}

impl Resolved {
    /// vLLM semantics in force.
    pub fn version(&self) -> VllmVersion {
        self.version
    }

    /// The P/D transfer setup, when some pod group is a prefill pool.
    pub fn build_pd(&self) -> Option<crate::cluster::PdSetup> {
        if !self.pod_groups.iter().any(|g| g.role == "prefill") {
            return None;
        }
        let mut tps = Vec::new();
        let mut shapes = Vec::new();
        for g in &self.pod_groups {
            let model = g.model_spec.as_ref().expect("resolved group has its model");
            for _ in 0..g.count {
                tps.push(g.tensor_parallel_size);
                shapes.push(crate::transfer::KvShape::for_pod(
                    model,
                    g.block_size,
                    g.tensor_parallel_size,
                ));
            }
        }
        let cfg = self.transfer.resolve().expect("validated at load");
        let net = crate::transfer::net::TransferNet::new(cfg, &tps).expect("validated at load");
        Some(crate::cluster::PdSetup {
            net,
            shapes,
            hold_timeout: self
                .prefill_hold_timeout_s
                .map(SimDuration::from_secs_f64_ceil),
        })
    }

    /// Total pods.
    pub fn n_pods(&self) -> u32 {
        self.pod_groups.iter().map(|g| g.count).sum()
    }

    /// Builds every pod, idle with empty caches.
    pub fn build_pods(&self, rng: &RngStreams) -> Vec<Pod> {
        let mut pods = Vec::new();
        for g in &self.pod_groups {
            let gpu = g.gpu_spec.expect("resolved group has its GPU");
            let model = g.model_spec.as_ref().expect("resolved group has its model");
            for k in 0..g.count {
                let idx = pods.len() as u32;
                let hasher = match self.block_hashing {
                    Hashing::Fast => BlockHasher::Fast,
                    Hashing::Vllm => {
                        let algo: HashAlgo = g.prefix_caching_hash_algo.parse().expect("validated");
                        // Without PYTHONHASHSEED, vLLM seeds NONE_HASH per process
                        // where the algorithm needs it: derive one per pod.
                        let seed = g.python_hash_seed.clone();
                        let h = VllmBlockHasher::new(algo, self.version, seed.as_deref())
                            .unwrap_or_else(|_| {
                                let s = format!(
                                    "{:016x}",
                                    rng.indexed_stream("pod.none_hash", idx as u64)
                                        .next_u64_once()
                                );
                                VllmBlockHasher::new(algo, self.version, Some(&s))
                                    .expect("seeded hasher")
                            });
                        BlockHasher::Vllm(Box::new(h))
                    }
                };
                let cfg = SchedulerConfig {
                    block_size: g.block_size,
                    num_gpu_blocks: g.num_gpu_blocks,
                    max_num_batched_tokens: g.max_num_batched_tokens,
                    max_num_seqs: g.max_num_seqs,
                    max_model_len: g.max_model_len,
                    enable_prefix_caching: g.enable_prefix_caching,
                    enable_chunked_prefill: g.enable_chunked_prefill,
                    long_prefill_token_threshold: g.long_prefill_token_threshold,
                    watermark: g.watermark,
                    scheduler_reserve_full_isl: g.scheduler_reserve_full_isl,
                    policy: if g.scheduling_policy == "priority" {
                        Policy::Priority
                    } else {
                        Policy::Fcfs
                    },
                    async_scheduling: g.async_scheduling,
                    version: self.version,
                    emit_kv_events: self.kv_events_enabled,
                };
                let step = build_step_time_model(
                    &g.step_time,
                    gpu,
                    model,
                    g.tensor_parallel_size,
                    g.async_scheduling,
                )
                .expect("validated at load");
                let role = match g.role.as_str() {
                    "prefill" => Role::Prefill,
                    "decode" => Role::Decode,
                    _ => Role::Both,
                };
                pods.push(Pod::new(
                    idx,
                    format!("{}-{k}", g.name),
                    role,
                    Scheduler::new(cfg, hasher),
                    step,
                    SimDuration::from_ms(self.sample_interval_ms),
                ));
            }
        }
        pods
    }
}

/// One draw from a fresh stream.
trait NextOnce {
    fn next_u64_once(self) -> u64;
}

impl NextOnce for crate::engine::rng::StreamRng {
    fn next_u64_once(mut self) -> u64 {
        rand::RngCore::next_u64(&mut self)
    }
}
