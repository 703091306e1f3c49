//! Scenario files: the YAML a user writes, validated once at the boundary
//! into a [`resolve::Resolved`] cluster description.
//!
//! Serialized types here are compatibility promises: fields keep vLLM's own
//! names (`block_size`, `max_num_batched_tokens`, ...), unknown fields are
//! errors, and every default is documented on its field.

pub mod epp_source;
pub mod error;
pub mod k8s;
pub mod modelservice;
pub mod resolve;
pub mod set;
pub mod vllm_args;

use serde::{Deserialize, Serialize};

use crate::pod::latency::StepTimeSpec;
use crate::trace::spec::WorkloadSpec;

/// A scenario file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Master seed; every random stream derives from it (default 0).
    #[serde(default)]
    pub seed: u64,
    /// vLLM release semantics: "0.33" (default) or "0.11".
    #[serde(default)]
    pub vllm_version: Option<String>,
    /// Block keys: `fast` (default; xxh3, nothing external sees them) or
    /// `vllm` (each pod's `prefix_caching_hash_algo`, bit-exact).
    #[serde(default)]
    pub block_hashing: Option<String>,
    /// Pod groups (may be omitted when `deployment` supplies them).
    #[serde(default)]
    pub pods: Vec<PodGroup>,
    /// Step-time model for every pod (default: roofline with its defaults).
    #[serde(default)]
    pub step_time: Option<StepTimeSpec>,
    /// How requests are routed (default: round-robin).
    #[serde(default)]
    pub router: Option<RouterSpec>,
    /// The workload.
    pub workload: WorkloadSpec,
    /// Router-side latency added before a request reaches its pod, µs (default 0).
    #[serde(default)]
    pub routing_latency_us: Option<u64>,
    /// Pod time-series sampling interval, ms (default 1000).
    #[serde(default)]
    pub sample_interval_ms: Option<u64>,
    /// Stop simulating after this much simulated time, s (default: run to completion).
    #[serde(default)]
    pub horizon_s: Option<f64>,
    /// NIXL KV transfer network for P/D (defaults in `src/transfer/spec.rs`).
    #[serde(default)]
    pub transfer: Option<crate::transfer::spec::TransferSpec>,
    /// How long a prefill pod holds a finished request's blocks for the decode
    /// pod's pull, s (default: 120 for vLLM 0.11's `VLLM_NIXL_ABORT_REQUEST_TIMEOUT`;
    /// none for 0.33, whose decode pods renew a 30 s lease while they wait).
    #[serde(default)]
    pub prefill_hold_timeout_s: Option<f64>,
    /// An llm-d deployment (ModelService + ConfigMap) whose pods, router and
    /// P/D settings replace `pods`, `router` and `pd` (see [`modelservice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRef>,
    /// Prefill/decode disaggregation settings (default: none, P/D off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pd: Option<PdSpec>,
}

/// `deployment:`: llm-d YAML to import, paths relative to the scenario file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRef {
    /// A `ModelService` (llm-d.ai/v1alpha1) YAML file.
    pub modelservice: String,
    /// The ConfigMap its `baseConfigMapRef` names: a BaseConfig
    /// (`decodeDeployment`, `prefillDeployment`, `eppDeployment`, ...), an
    /// `EndpointPickerConfig`, or the EPP's `env:` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configmap: Option<String>,
}

/// `pd:`: prefill/decode disaggregation as deployed (llm-d-epp.md §5, vllm.md §7).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PdSpec {
    /// Requests may be prefilled on a prefill pod (EPP `PD_ENABLED`, or a
    /// `pd-profile-handler` / `disagg-profile-handler` in its config). Needs
    /// at least one pod with role `prefill` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Routing-sidecar connector (`--connector`): `nixlv2` (default), `nixl`,
    /// `lmcache`, `shared-storage` or `sglang`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// vLLM's NIXL side-channel port (`VLLM_NIXL_SIDE_CHANNEL_PORT`; recorded, not simulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_channel_port: Option<u16>,
}

/// `count` identical pods.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodGroup {
    /// Group name; pods are `<name>-<i>` (default: the role).
    #[serde(default)]
    pub name: Option<String>,
    /// Number of pods (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// `both` (default), `prefill` or `decode`.
    #[serde(default)]
    pub role: Option<String>,
    /// GPU type from the catalog, e.g. `H100`.
    pub gpu: String,
    /// Model from the catalog (or a Hugging Face id), e.g. `Llama-3.1-8B`.
    #[serde(default)]
    pub model: Option<String>,
    /// Path to a Hugging Face `config.json` (instead of `model`).
    #[serde(default)]
    pub model_config: Option<String>,
    /// GPUs per pod (default 1).
    #[serde(default)]
    pub tensor_parallel_size: Option<u32>,
    /// vLLM engine arguments.
    #[serde(default)]
    pub vllm: VllmArgs,
    /// Step-time model for this group (overrides the scenario's).
    #[serde(default)]
    pub step_time: Option<StepTimeSpec>,
}

/// vLLM engine arguments, with vLLM's names. Unset ⇒ vLLM's default for the GPU and version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VllmArgs {
    /// Tokens per KV block (16).
    #[serde(default)]
    pub block_size: Option<u32>,
    /// Token budget per step (8192 on H100/H200, 16384 on B200, else 2048).
    #[serde(default)]
    pub max_num_batched_tokens: Option<u32>,
    /// Most running requests (1024 on ≥70 GiB GPUs, else 256).
    #[serde(default)]
    pub max_num_seqs: Option<u32>,
    /// Fraction of GPU memory vLLM uses (0.92 in 0.33, 0.9 in 0.11).
    #[serde(default)]
    pub gpu_memory_utilization: Option<f64>,
    /// Automatic prefix caching (true).
    #[serde(default)]
    pub enable_prefix_caching: Option<bool>,
    /// `sha256` (default), `sha256_cbor`, `xxhash`, `xxhash_cbor`.
    #[serde(default)]
    pub prefix_caching_hash_algo: Option<String>,
    /// PYTHONHASHSEED of the pod (NONE_HASH seed).
    #[serde(default)]
    pub python_hash_seed: Option<String>,
    /// Use exactly this many KV blocks (null block included).
    #[serde(default)]
    pub num_gpu_blocks_override: Option<u64>,
    /// Longest prompt + output (default: the KV capacity in tokens, at most 131072).
    #[serde(default)]
    pub max_model_len: Option<u32>,
    /// Async scheduling (true in 0.33, false in 0.11).
    #[serde(default)]
    pub async_scheduling: Option<bool>,
    /// Chunked prefill (true).
    #[serde(default)]
    pub enable_chunked_prefill: Option<bool>,
    /// Per-request prefill cap per step, 0 = off (0).
    #[serde(default)]
    pub long_prefill_token_threshold: Option<u32>,
    /// [0.33] fraction of blocks kept free at admission (0.0).
    #[serde(default)]
    pub watermark: Option<f64>,
    /// [0.33] admit only if the whole prompt fits (true).
    #[serde(default)]
    pub scheduler_reserve_full_isl: Option<bool>,
    /// `fcfs` (default) or `priority`.
    #[serde(default)]
    pub scheduling_policy: Option<String>,
    /// `--kv-transfer-config` as given (e.g. `{kv_connector: NixlConnector,
    /// kv_role: kv_both}`); P/D reads `kv_connector` (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_transfer_config: Option<serde_yaml_ng::Value>,
    /// `--kv-events-config` as given (recorded; whether pods publish KV events
    /// follows the router's precise-prefix scorer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_events_config: Option<serde_yaml_ng::Value>,
}

/// Router choice (read through `RouterIn` so a bad value is reported
/// with its path and line).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case", try_from = "RouterIn")]
pub enum RouterSpec {
    /// Pods in turn.
    RoundRobin,
    /// Uniformly at random (stream `router`).
    Random,
    /// llm-d's endpoint picker.
    Epp(Box<EppSpec>),
}

/// The EPP router: its configuration, metrics staleness and KV-event lag.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EppSpec {
    /// An `EndpointPickerConfig` YAML file (relative to the scenario).
    #[serde(default)]
    pub config_file: Option<String>,
    /// An inline `EndpointPickerConfig`.
    #[serde(default)]
    pub config: Option<serde_yaml_ng::Value>,
    /// ENV-era configuration: a file holding a Kubernetes container `env:` list.
    #[serde(default)]
    pub env_file: Option<String>,
    /// ENV-era configuration inline: `[{name, value}]`.
    #[serde(default)]
    pub env: Option<Vec<EnvVar>>,
    /// `--refresh-metrics-interval`, ms (50).
    #[serde(default)]
    pub metrics_refresh_ms: Option<f64>,
    /// KV-event lag (defaults in `cluster::kv_lag`).
    #[serde(default)]
    pub kv_events: Option<crate::cluster::kv_lag::KvEventLag>,
    /// Where precise-prefix lookups are answered: `events` (the index fed by
    /// lagging KV events, default) or `oracle` (the pods' caches, no lag).
    #[serde(default)]
    pub kv_index: Option<crate::cluster::epp_router::IndexSource>,
    /// How the index's keys relate to the pods' hashes: `request`
    /// (llm-d-kv-cache from Dec 2025, default) or `engine` (up to Nov 2025:
    /// matches only pods hashing like the router's hashSeed).
    #[serde(default)]
    pub index_keys: Option<crate::cluster::key_spaces::IndexKeys>,
    /// Write `routing.csv` with every candidate's scores (false).
    #[serde(default)]
    pub decision_log: bool,
    /// Model name used in index keys (default: the first pod group's model).
    #[serde(default)]
    pub model_name: Option<String>,
}

/// `router:` as written: the type and the EPP's fields side by side.
/// serde's internally tagged enums buffer their content first, and a type
/// error inside then names neither the field nor the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterIn {
    #[serde(rename = "type")]
    kind: RouterKind,
    #[serde(default)]
    config_file: Option<String>,
    #[serde(default)]
    config: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    env_file: Option<String>,
    #[serde(default)]
    env: Option<Vec<EnvVar>>,
    #[serde(default)]
    metrics_refresh_ms: Option<f64>,
    #[serde(default)]
    kv_events: Option<crate::cluster::kv_lag::KvEventLag>,
    #[serde(default)]
    kv_index: Option<crate::cluster::epp_router::IndexSource>,
    #[serde(default)]
    index_keys: Option<crate::cluster::key_spaces::IndexKeys>,
    #[serde(default)]
    decision_log: Option<bool>,
    #[serde(default)]
    model_name: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RouterKind {
    RoundRobin,
    Random,
    Epp,
}

impl TryFrom<RouterIn> for RouterSpec {
    type Error = String;

    fn try_from(r: RouterIn) -> Result<RouterSpec, String> {
        let simple = match r.kind {
            RouterKind::Epp => None,
            RouterKind::RoundRobin => Some((RouterSpec::RoundRobin, "round-robin")),
            RouterKind::Random => Some((RouterSpec::Random, "random")),
        };
        if let Some((spec, name)) = simple {
            let given = [
                ("config_file", r.config_file.is_some()),
                ("config", r.config.is_some()),
                ("env_file", r.env_file.is_some()),
                ("env", r.env.is_some()),
                ("metrics_refresh_ms", r.metrics_refresh_ms.is_some()),
                ("kv_events", r.kv_events.is_some()),
                ("kv_index", r.kv_index.is_some()),
                ("index_keys", r.index_keys.is_some()),
                ("decision_log", r.decision_log.is_some()),
                ("model_name", r.model_name.is_some()),
            ];
            return match given.iter().find(|(_, g)| *g) {
                Some((field, _)) => Err(format!(
                    "router.{field}: only `type: epp` takes it, not type: {name}"
                )),
                None => Ok(spec),
            };
        }
        Ok(RouterSpec::Epp(Box::new(EppSpec {
            config_file: r.config_file,
            config: r.config,
            env_file: r.env_file,
            env: r.env,
            metrics_refresh_ms: r.metrics_refresh_ms,
            kv_events: r.kv_events,
            kv_index: r.kv_index,
            index_keys: r.index_keys,
            decision_log: r.decision_log.unwrap_or(false),
            model_name: r.model_name,
        })))
    }
}

/// One Kubernetes `env:` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value (`valueFrom` entries are ignored by the EPP config mapping).
    #[serde(default)]
    pub value: Option<String>,
}
