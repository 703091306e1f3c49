//! vLLM's command line and environment, as a Kubernetes container gives them,
//! read into [`VllmArgs`] with vLLM's own flag names.
//!
//! Accepted forms: `--flag value`, `--flag=value`, `--flag_name` (vLLM treats
//! `_` and `-` alike), boolean pairs `--enable-x` / `--no-enable-x`, the short
//! `-tp`, `-pp`, `-dp`; `vllm serve MODEL ...`, `python -m
//! vllm.entrypoints.openai.api_server ...` and `sh -c "vllm serve ..."`.
//! Kubernetes `$(VAR)` references expand from the container's literal env.
//! A repeated flag keeps its last value, as argparse does.
//!
//! Every flag is modelled, recognised as irrelevant to the simulation, or
//! reported as a warning naming the argument; nothing is dropped silently.

use serde_yaml_ng::Value;

use super::error::{nearest, ScenarioError};
use super::k8s::{templates_in, unmask, ContainerIn, EnvIn, Item, Notes, Origin};
use super::VllmArgs;
use crate::kv::hash::HashAlgo;

/// What the import learnt from one vLLM container.
#[derive(Clone, Debug, Default)]
pub struct VllmRead {
    /// Engine arguments with vLLM's names.
    pub vllm: VllmArgs,
    /// `--tensor-parallel-size` / `-tp`.
    pub tensor_parallel_size: Option<(u32, Origin)>,
    /// `--model` or the positional model of `vllm serve`.
    pub model: Option<Item>,
    /// `--served-model-name` (the first name).
    pub served_model_name: Option<Item>,
    /// `kv_connector` of `--kv-transfer-config`, e.g. `NixlConnector`.
    pub kv_connector: Option<(String, Origin)>,
    /// `VLLM_NIXL_SIDE_CHANNEL_PORT`.
    pub side_channel_port: Option<(u16, Origin)>,
    /// Port of `--kv-events-config`'s `endpoint` when KV events are enabled.
    pub kv_events_port: Option<(u16, Origin)>,
}

/// What a flag does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Target {
    BlockSize,
    MaxNumBatchedTokens,
    MaxNumSeqs,
    GpuMemoryUtilization,
    PrefixCaching,
    HashAlgo,
    MaxModelLen,
    TensorParallel,
    NumGpuBlocksOverride,
    AsyncScheduling,
    ChunkedPrefill,
    LongPrefillThreshold,
    SchedulingPolicy,
    KvTransferConfig,
    KvEventsConfig,
    Model,
    ServedModelName,
    Dtype,
    KvCacheDtype,
    /// Pipeline or data parallel size: 1 is fine, more is not modelled.
    OtherParallel,
    /// Does not affect the simulation (ports, logging, downloads, ...).
    Irrelevant,
    /// Affects a real run but not modelled.
    NotModelled,
}

/// Whether a flag takes a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Arity {
    /// `--x` sets true (`--x=false` is also accepted).
    Flag,
    /// `--no-x` sets false.
    NegFlag,
    /// `--x VALUE`.
    Value,
}

use Arity::{Flag, NegFlag, Value as Val};
use Target as T;

/// Every flag the import knows, with vLLM's (dash) names.
const FLAGS: &[(&str, Arity, Target)] = &[
    ("block-size", Val, T::BlockSize),
    ("max-num-batched-tokens", Val, T::MaxNumBatchedTokens),
    ("max-num-seqs", Val, T::MaxNumSeqs),
    ("gpu-memory-utilization", Val, T::GpuMemoryUtilization),
    ("enable-prefix-caching", Flag, T::PrefixCaching),
    ("no-enable-prefix-caching", NegFlag, T::PrefixCaching),
    ("prefix-caching-hash-algo", Val, T::HashAlgo),
    ("max-model-len", Val, T::MaxModelLen),
    ("tensor-parallel-size", Val, T::TensorParallel),
    ("num-gpu-blocks-override", Val, T::NumGpuBlocksOverride),
    ("async-scheduling", Flag, T::AsyncScheduling),
    ("no-async-scheduling", NegFlag, T::AsyncScheduling),
    ("enable-chunked-prefill", Flag, T::ChunkedPrefill),
    ("no-enable-chunked-prefill", NegFlag, T::ChunkedPrefill),
    ("long-prefill-token-threshold", Val, T::LongPrefillThreshold),
    ("scheduling-policy", Val, T::SchedulingPolicy),
    ("kv-transfer-config", Val, T::KvTransferConfig),
    ("kv-events-config", Val, T::KvEventsConfig),
    ("model", Val, T::Model),
    ("served-model-name", Val, T::ServedModelName),
    ("dtype", Val, T::Dtype),
    ("kv-cache-dtype", Val, T::KvCacheDtype),
    ("pipeline-parallel-size", Val, T::OtherParallel),
    ("data-parallel-size", Val, T::OtherParallel),
    ("port", Val, T::Irrelevant),
    ("host", Val, T::Irrelevant),
    ("uvicorn-log-level", Val, T::Irrelevant),
    ("download-dir", Val, T::Irrelevant),
    ("load-format", Val, T::Irrelevant),
    ("tokenizer", Val, T::Irrelevant),
    ("tokenizer-mode", Val, T::Irrelevant),
    ("revision", Val, T::Irrelevant),
    ("api-key", Val, T::Irrelevant),
    ("root-path", Val, T::Irrelevant),
    ("chat-template", Val, T::Irrelevant),
    ("seed", Val, T::Irrelevant),
    ("hf-token", Val, T::Irrelevant),
    ("max-log-len", Val, T::Irrelevant),
    ("tool-call-parser", Val, T::Irrelevant),
    ("trust-remote-code", Flag, T::Irrelevant),
    ("disable-log-requests", Flag, T::Irrelevant),
    ("enable-log-requests", Flag, T::Irrelevant),
    ("disable-log-stats", Flag, T::Irrelevant),
    ("disable-uvicorn-access-log", Flag, T::Irrelevant),
    ("enable-auto-tool-choice", Flag, T::Irrelevant),
    ("disable-hybrid-kv-cache-manager", Flag, T::Irrelevant),
    ("enforce-eager", Flag, T::NotModelled),
    ("enable-expert-parallel", Flag, T::NotModelled),
    ("enable-lora", Flag, T::NotModelled),
    ("quantization", Val, T::NotModelled),
    ("speculative-config", Val, T::NotModelled),
    ("compilation-config", Val, T::NotModelled),
    ("swap-space", Val, T::NotModelled),
    ("cpu-offload-gb", Val, T::NotModelled),
    ("max-num-partial-prefills", Val, T::NotModelled),
    ("max-long-partial-prefills", Val, T::NotModelled),
    ("kv-offloading-size", Val, T::NotModelled),
    ("kv-offloading-backend", Val, T::NotModelled),
    ("max-loras", Val, T::NotModelled),
    ("distributed-executor-backend", Val, T::NotModelled),
    ("config", Val, T::NotModelled),
];

/// Short aliases vLLM accepts.
const SHORT: &[(&str, &str)] = &[
    ("tp", "tensor-parallel-size"),
    ("pp", "pipeline-parallel-size"),
    ("dp", "data-parallel-size"),
    ("q", "quantization"),
];

/// Environment variables that do not affect the simulation.
const IRRELEVANT_ENV: &[&str] = &[
    "HF_TOKEN",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "HUGGING_FACE_HUB_TOKEN",
    "TRANSFORMERS_CACHE",
    "CUDA_VISIBLE_DEVICES",
    "VLLM_LOGGING_LEVEL",
    "VLLM_CONFIGURE_LOGGING",
    "VLLM_NIXL_SIDE_CHANNEL_HOST",
    "VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES",
    "NCCL_DEBUG",
    "HOME",
    "POD_IP",
];

/// Reads a vLLM container. `template` resolves `{{ .X }}` expressions.
pub fn read_vllm(
    c: &ContainerIn,
    template: &dyn Fn(&str) -> Option<String>,
    notes: &mut Notes,
) -> Result<VllmRead, ScenarioError> {
    let mut out = VllmRead::default();
    read_env(&c.env, &mut out, notes)?;
    let tokens = tokenize(c, template, notes);
    let start = vllm_start(&tokens);
    for t in &tokens[..start] {
        notes.ok(&t.at, format!("\"{}\": the launcher of vLLM", t.v));
    }
    let mut i = start;
    let mut model_positional_seen = start == 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        i += 1;
        let Some(raw) = flag_name(&tok.v) else {
            if !model_positional_seen {
                model_positional_seen = true;
                notes.ok(&tok.at, format!("model \"{}\" (positional)", tok.v));
                out.model = Some(tok.clone());
            } else {
                notes.warn(
                    &tok.at,
                    format!("unexpected positional argument \"{}\" ignored", tok.v),
                );
            }
            continue;
        };
        let (name, inline) = match raw.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (raw.to_string(), None),
        };
        let name = name.replace('_', "-");
        let name = SHORT
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, l)| l.to_string())
            .unwrap_or(name);
        let Some(&(_, arity, target)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
            // Unknown: consume a following non-flag token as its value, as argparse would.
            let val = match &inline {
                Some(v) => Some(v.clone()),
                None if i < tokens.len() && flag_name(&tokens[i].v).is_none() => {
                    i += 1;
                    Some(tokens[i - 1].v.clone())
                }
                None => None,
            };
            let names: Vec<&str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
            let hint = nearest(&name, &names)
                .map(|s| format!("; did you mean --{s}?"))
                .unwrap_or_default();
            let shown = val.map(|v| format!(" {v}")).unwrap_or_default();
            notes.warn(
                &tok.at,
                format!("unknown vLLM flag --{name}{shown}: not modelled{hint}"),
            );
            continue;
        };
        let value = match arity {
            Flag | NegFlag => {
                let b = match inline.as_deref() {
                    None => true,
                    Some(v) => parse_bool(v).ok_or_else(|| {
                        tok.at
                            .err(format!("--{name}: expected true or false, got \"{v}\""))
                    })?,
                };
                let set = if arity == Flag { b } else { !b };
                apply_bool(target, &name, set, tok, &mut out, notes);
                continue;
            }
            Val => match inline {
                Some(v) => Item {
                    v,
                    at: tok.at.clone(),
                },
                None => {
                    let next = tokens
                        .get(i)
                        .filter(|n| flag_name(&n.v).is_none() || n.v.parse::<f64>().is_ok());
                    let Some(n) = next else {
                        return Err(tok.at.err(format!("--{name} needs a value")));
                    };
                    i += 1;
                    n.clone()
                }
            },
        };
        apply_value(target, &name, &value, &mut out, notes)?;
    }
    if let (Some((sc, sa)), Some((ev, _))) = (&out.side_channel_port, &out.kv_events_port) {
        if sc == ev {
            notes.warn(
                sa,
                format!("VLLM_NIXL_SIDE_CHANNEL_PORT {sc} is also the KV-event port: in a real pod one of them fails to bind (vLLM 0.11 defaulted both to 5557); not modelled"),
            );
        }
    }
    Ok(out)
}

/// `Some(name)` without dashes when `s` is a flag (`--x`, `-tp`), else `None`.
fn flag_name(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix("--") {
        return (!r.is_empty()).then_some(r);
    }
    let r = s.strip_prefix('-')?;
    let head = r.split('=').next().unwrap_or(r);
    SHORT.iter().any(|(k, _)| *k == head).then_some(r)
}

/// Python/argparse-style booleans, liberal in case.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" => Some(true),
        "false" | "0" | "no" | "off" | "f" => Some(false),
        _ => None,
    }
}

fn apply_bool(
    target: Target,
    name: &str,
    set: bool,
    tok: &Item,
    out: &mut VllmRead,
    notes: &mut Notes,
) {
    let v = &mut out.vllm;
    match target {
        T::PrefixCaching => {
            v.enable_prefix_caching = Some(set);
            notes.ok(
                &tok.at,
                format!("--{name}: vllm.enable_prefix_caching = {set}"),
            );
        }
        T::AsyncScheduling => {
            v.async_scheduling = Some(set);
            notes.ok(&tok.at, format!("--{name}: vllm.async_scheduling = {set}"));
        }
        T::ChunkedPrefill => {
            v.enable_chunked_prefill = Some(set);
            notes.ok(
                &tok.at,
                format!("--{name}: vllm.enable_chunked_prefill = {set}"),
            );
        }
        T::Irrelevant => notes.ok(&tok.at, format!("--{name}: does not affect the simulation")),
        _ => notes.warn(
            &tok.at,
            format!("--{name}: not modelled (the step-time and memory models ignore it)"),
        ),
    }
}

fn apply_value(
    target: Target,
    name: &str,
    val: &Item,
    out: &mut VllmRead,
    notes: &mut Notes,
) -> Result<(), ScenarioError> {
    let at = &val.at;
    let s = val.v.trim();
    let int = |what: &str| -> Result<u32, ScenarioError> {
        s.parse::<u32>()
            .map_err(|_| at.err(format!("--{name}: expected {what}, got \"{s}\"")))
    };
    let v = &mut out.vllm;
    let msg = match target {
        T::BlockSize => {
            v.block_size = Some(int("a whole number of tokens")?);
            format!("--{name} {s}: vllm.block_size")
        }
        T::MaxNumBatchedTokens => {
            v.max_num_batched_tokens = Some(human_int(name, s, at)?);
            format!("--{name} {s}: vllm.max_num_batched_tokens")
        }
        T::MaxNumSeqs => {
            v.max_num_seqs = Some(int("a whole number")?);
            format!("--{name} {s}: vllm.max_num_seqs")
        }
        T::GpuMemoryUtilization => {
            let f: f64 = s
                .parse()
                .map_err(|_| at.err(format!("--{name}: expected a fraction, got \"{s}\"")))?;
            v.gpu_memory_utilization = Some(f);
            format!("--{name} {s}: vllm.gpu_memory_utilization")
        }
        T::HashAlgo => {
            let algo: HashAlgo = s.parse().map_err(|e| at.err(format!("--{name}: {e}")))?;
            v.prefix_caching_hash_algo = Some(algo.name().to_string());
            format!("--{name} {s}: vllm.prefix_caching_hash_algo")
        }
        T::MaxModelLen => {
            if s == "-1" || s.eq_ignore_ascii_case("auto") {
                v.max_model_len = None;
                format!("--{name} {s}: derived from the KV capacity")
            } else {
                v.max_model_len = Some(human_int(name, s, at)?);
                format!("--{name} {s}: vllm.max_model_len")
            }
        }
        T::TensorParallel => {
            out.tensor_parallel_size = Some((int("a whole number of GPUs")?, at.clone()));
            format!("--{name} {s}: tensor_parallel_size")
        }
        T::NumGpuBlocksOverride => {
            v.num_gpu_blocks_override = Some(u64::from(int("a whole number of blocks")?));
            format!("--{name} {s}: vllm.num_gpu_blocks_override")
        }
        T::LongPrefillThreshold => {
            v.long_prefill_token_threshold = Some(int("a whole number of tokens")?);
            format!("--{name} {s}: vllm.long_prefill_token_threshold")
        }
        T::SchedulingPolicy => {
            v.scheduling_policy = Some(s.to_string());
            format!("--{name} {s}: vllm.scheduling_policy")
        }
        T::KvTransferConfig => {
            let j = json_arg(name, s, at)?;
            let connector = j
                .get("kv_connector")
                .and_then(|c| c.as_str())
                .map(String::from);
            let role = j
                .get("kv_role")
                .and_then(|c| c.as_str())
                .unwrap_or("?")
                .to_string();
            v.kv_transfer_config = Some(to_yaml(&j));
            if let Some(c) = &connector {
                out.kv_connector = Some((c.clone(), at.clone()));
            }
            format!(
                "--{name}: vllm.kv_transfer_config (kv_connector {}, kv_role {role})",
                connector.as_deref().unwrap_or("unset")
            )
        }
        T::KvEventsConfig => {
            let j = json_arg(name, s, at)?;
            let on = j
                .get("enable_kv_cache_events")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            if on {
                // vLLM's default publisher endpoint is tcp://*:5557.
                let ep = j
                    .get("endpoint")
                    .and_then(|e| e.as_str())
                    .unwrap_or("tcp://*:5557");
                if let Some(p) = ep.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    out.kv_events_port = Some((p, at.clone()));
                }
            }
            v.kv_events_config = Some(to_yaml(&j));
            format!(
                "--{name}: vllm.kv_events_config (KV events {})",
                if on { "on" } else { "off" }
            )
        }
        T::Model => {
            out.model = Some(val.clone());
            format!("--{name} {s}: the served model")
        }
        T::ServedModelName => {
            out.served_model_name = Some(val.clone());
            format!("--{name} {s}: the model name requests use")
        }
        T::Dtype => match s {
            "auto" | "bfloat16" | "float16" | "half" => {
                format!("--{name} {s}: 2-byte weights and KV, as modelled")
            }
            _ => {
                notes.warn(
                    at,
                    format!("--{name} {s}: not modelled (kvsim assumes 16-bit weights and KV)"),
                );
                return Ok(());
            }
        },
        T::KvCacheDtype => {
            if s == "auto" {
                format!("--{name} {s}: KV in the model dtype, as modelled")
            } else {
                notes.warn(at, format!("--{name} {s}: not modelled (kvsim sizes the KV cache at 2 bytes per element)"));
                return Ok(());
            }
        }
        T::OtherParallel => {
            if s == "1" {
                format!("--{name} 1: no parallelism of this kind")
            } else {
                notes.warn(
                    at,
                    format!("--{name} {s}: not modelled (one engine per pod)"),
                );
                return Ok(());
            }
        }
        T::Irrelevant => format!("--{name}: does not affect the simulation"),
        T::NotModelled | T::PrefixCaching | T::AsyncScheduling | T::ChunkedPrefill => {
            notes.warn(at, format!("--{name} {s}: not modelled"));
            return Ok(());
        }
    };
    notes.ok(at, msg);
    Ok(())
}

/// vLLM's `human_readable_int`: `2048`, `25.6k` (×1000), `32K` / `32Ki` (×1024).
fn human_int(name: &str, s: &str, at: &Origin) -> Result<u32, ScenarioError> {
    let bad = || {
        at.err(format!(
            "--{name}: expected a whole number like 8192, 8k or 8K, got \"{s}\""
        ))
    };
    let (num, mult) = if let Some(n) = s.strip_suffix("Ki").or(s.strip_suffix('K')) {
        (n, 1024.0)
    } else if let Some(n) = s.strip_suffix('k') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    if mult == 1024.0 && num.contains('.') {
        return Err(bad());
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = (f * mult).floor();
    if !(0.0..=u32::MAX as f64).contains(&v) || (mult == 1.0 && num.contains('.')) {
        return Err(bad());
    }
    Ok(v as u32)
}

fn json_arg(name: &str, s: &str, at: &Origin) -> Result<serde_json::Value, ScenarioError> {
    let j: serde_json::Value =
        serde_json::from_str(s).map_err(|e| at.err(format!("--{name}: invalid JSON: {e}")))?;
    if !j.is_object() {
        return Err(at.err(format!("--{name}: expected a JSON object")));
    }
    Ok(j)
}

fn to_yaml(j: &serde_json::Value) -> Value {
    serde_yaml_ng::to_value(j).unwrap_or(Value::Null)
}

fn read_env(env: &[EnvIn], out: &mut VllmRead, notes: &mut Notes) -> Result<(), ScenarioError> {
    for e in env {
        let n = e.name.as_str();
        if e.value_from {
            notes.warn(&e.at, format!("{n}: valueFrom not modelled"));
            continue;
        }
        let Some(v) = e.value.as_deref() else {
            notes.warn(&e.at, format!("{n}: no value"));
            continue;
        };
        match n {
            "PYTHONHASHSEED" => {
                out.vllm.python_hash_seed = Some(v.to_string());
                notes.ok(&e.at, format!("{n}={v}: vllm.python_hash_seed"));
            }
            "VLLM_NIXL_SIDE_CHANNEL_PORT" => {
                let p: u16 = v.trim().parse().map_err(|_| {
                    e.at.err(format!("{n}: expected a port number, got \"{v}\""))
                })?;
                out.side_channel_port = Some((p, e.at.clone()));
                notes.ok(&e.at, format!("{n}={v}: pd.side_channel_port"));
            }
            "VLLM_USE_V1" if v == "0" => notes.warn(
                &e.at,
                format!("{n}=0: the V0 engine is not modelled (V1 semantics used)"),
            ),
            "VLLM_USE_V1" => notes.ok(&e.at, format!("{n}={v}: the V1 engine, as modelled")),
            _ if IRRELEVANT_ENV.contains(&n) => {
                notes.ok(&e.at, format!("{n}: does not affect the simulation"))
            }
            _ => notes.warn(&e.at, format!("{n}={v}: not modelled")),
        }
    }
    Ok(())
}

/// Command and args as one token list, shell `-c` scripts split into words,
/// `$(VAR)` and templates expanded.
fn tokenize(
    c: &ContainerIn,
    template: &dyn Fn(&str) -> Option<String>,
    notes: &mut Notes,
) -> Vec<Item> {
    let raw: Vec<&Item> = c.command.iter().chain(c.args.iter()).collect();
    let is_shell = raw.first().is_some_and(|t| {
        let base = t.v.rsplit('/').next().unwrap_or(&t.v);
        matches!(base, "sh" | "bash" | "zsh" | "dash")
    }) && raw.get(1).is_some_and(|t| t.v == "-c");
    let mut toks: Vec<Item> = Vec::new();
    if is_shell {
        for t in &raw[..2] {
            notes.ok(&t.at, format!("\"{}\": shell launcher", t.v));
        }
        for t in &raw[2..] {
            for w in shell_words(&t.v) {
                toks.push(Item {
                    v: w,
                    at: t.at.clone(),
                });
            }
        }
    } else {
        toks = raw.into_iter().cloned().collect();
    }
    let literal = |name: &str| {
        c.env
            .iter()
            .rev()
            .find(|e| e.name == name && !e.value_from)
            .and_then(|e| e.value.clone())
    };
    for t in &mut toks {
        let mut s = crate::scenario::k8s::expand_templates(&t.v, template);
        for expr in templates_in(&s) {
            notes.warn(&t.at, format!("template {{{{ {expr} }}}} not resolved"));
        }
        // Kubernetes $(VAR) expansion; `$$` escapes.
        let mut outs = String::new();
        let mut rest = s.as_str();
        while let Some(p) = rest.find("$(") {
            if p > 0 && rest.as_bytes()[p - 1] == b'$' {
                outs.push_str(&rest[..p - 1]);
                outs.push_str("$(");
                rest = &rest[p + 2..];
                continue;
            }
            let Some(end) = rest[p..].find(')') else {
                break;
            };
            let var = &rest[p + 2..p + end];
            outs.push_str(&rest[..p]);
            match literal(var) {
                Some(v) => outs.push_str(&v),
                None => {
                    notes.warn(
                        &t.at,
                        format!("$({var}) does not resolve to a literal env value; left as is"),
                    );
                    outs.push_str(&rest[p..p + end + 1]);
                }
            }
            rest = &rest[p + end + 1..];
        }
        outs.push_str(rest);
        s = unmask(&outs);
        t.v = s;
    }
    // A lone "--flag value" string in one args entry: split it.
    let mut split = Vec::new();
    for t in toks {
        if t.v.starts_with("--") && t.v.contains(' ') && !t.v.contains('=') && !t.v.contains('{') {
            for w in t.v.split_whitespace() {
                split.push(Item {
                    v: w.to_string(),
                    at: t.at.clone(),
                });
            }
        } else {
            split.push(t);
        }
    }
    split
}

/// Index of the first vLLM argument: after `vllm serve`, after the
/// `api_server` module, or 0.
fn vllm_start(toks: &[Item]) -> usize {
    for (i, t) in toks.iter().enumerate() {
        if t.v == "serve" && i > 0 && toks[i - 1].v.ends_with("vllm") {
            return i + 1;
        }
        if t.v.contains("vllm.entrypoints.openai.api_server") {
            return i + 1;
        }
    }
    0
}

/// POSIX-ish word splitting: quotes, backslash escapes and line continuations;
/// `&&`, `;` and `exec` separate or precede commands and are dropped.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => match chars.next() {
                Some('\n') | None => {}
                Some(n) => {
                    cur.push(n);
                    has = true;
                }
            },
            (None, c) if c.is_whitespace() || c == ';' => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                has = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|w| w != "&&" && w != "exec");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn item(v: &str, i: usize) -> Item {
        Item {
            v: v.into(),
            at: Origin {
                file: PathBuf::from("ms.yaml"),
                line: Some(10 + i),
                field: format!("spec.decode.containers[0].args[{i}]"),
            },
        }
    }

    fn container(args: &[&str], env: Vec<EnvIn>) -> ContainerIn {
        ContainerIn {
            name: "vllm".into(),
            image: None,
            command: vec![],
            args: args.iter().enumerate().map(|(i, a)| item(a, i)).collect(),
            env,
            gpus: None,
            at: item("", 0).at,
        }
    }

    fn env(name: &str, value: Option<&str>, value_from: bool) -> EnvIn {
        EnvIn {
            name: name.into(),
            value: value.map(String::from),
            value_from,
            at: item("", 1).at,
        }
    }

    fn read(args: &[&str]) -> (VllmRead, Notes) {
        let mut notes = Notes::default();
        let r = read_vllm(&container(args, vec![]), &|_| None, &mut notes).unwrap();
        (r, notes)
    }

    #[test]
    fn reads_vllm_flags_in_both_forms() {
        let (r, notes) = read(&[
            "--enable-prefix-caching",
            "--prefix-caching-hash-algo",
            "sha256_cbor",
            "--block-size=64",
            "--max_num_batched_tokens",
            "8k",
            "--max-num-seqs",
            "256",
            "--gpu-memory-utilization",
            "0.85",
            "--max-model-len",
            "32K",
            "-tp",
            "2",
        ]);
        let v = &r.vllm;
        assert_eq!(v.enable_prefix_caching, Some(true));
        assert_eq!(v.prefix_caching_hash_algo.as_deref(), Some("sha256_cbor"));
        assert_eq!(v.block_size, Some(64));
        assert_eq!(v.max_num_batched_tokens, Some(8000));
        assert_eq!(v.max_num_seqs, Some(256));
        assert_eq!(v.gpu_memory_utilization, Some(0.85));
        assert_eq!(v.max_model_len, Some(32 * 1024));
        assert_eq!(r.tensor_parallel_size.as_ref().map(|t| t.0), Some(2));
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
        // The last of a repeated boolean pair wins.
        let (r, _) = read(&["--enable-prefix-caching", "--no-enable-prefix-caching"]);
        assert_eq!(r.vllm.enable_prefix_caching, Some(false));
        let (r, _) = read(&["--prefix-caching-hash-algo=xxhash"]);
        assert_eq!(r.vllm.prefix_caching_hash_algo.as_deref(), Some("xxhash"));
    }

    #[test]
    fn unknown_and_unmodelled_flags_warn_naming_the_arg() {
        let (_, notes) = read(&[
            "--enforce-eager",
            "--blok-size",
            "64",
            "--kv-cache-dtype",
            "fp8",
        ]);
        let w: Vec<String> = notes.warnings.iter().map(|n| n.to_string()).collect();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("args[0]") && w[0].contains("--enforce-eager"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("args[1]") && w[1].contains("did you mean --block-size"),
            "{}",
            w[1]
        );
        assert!(w[2].contains("fp8"), "{}", w[2]);
    }

    #[test]
    fn bad_values_are_errors_naming_the_arg() {
        let mut notes = Notes::default();
        let e = read_vllm(
            &container(&["--block-size", "big"], vec![]),
            &|_| None,
            &mut notes,
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.decode.containers[0].args[1]");
        assert_eq!(e.line, Some(11));
        let e = read_vllm(
            &container(&["--prefix-caching-hash-algo", "sha265"], vec![]),
            &|_| None,
            &mut notes,
        )
        .unwrap_err();
        assert!(
            e.message.contains("did you mean \"sha256\""),
            "{}",
            e.message
        );
        let e = read_vllm(
            &container(&["--max-num-seqs"], vec![]),
            &|_| None,
            &mut notes,
        )
        .unwrap_err();
        assert!(e.message.contains("needs a value"), "{}", e.message);
    }

    #[test]
    fn env_and_kv_configs() {
        let mut notes = Notes::default();
        let c = container(
            &[
                "--kv-transfer-config",
                r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#,
                "--kv-events-config",
                r#"{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557"}"#,
            ],
            vec![
                env("PYTHONHASHSEED", Some("42"), false),
                env("VLLM_NIXL_SIDE_CHANNEL_PORT", Some("5557"), false),
                env("VLLM_NIXL_SIDE_CHANNEL_HOST", None, true),
            ],
        );
        let r = read_vllm(&c, &|_| None, &mut notes).unwrap();
        assert_eq!(r.vllm.python_hash_seed.as_deref(), Some("42"));
        assert_eq!(
            r.kv_connector.as_ref().map(|c| c.0.as_str()),
            Some("NixlConnector")
        );
        assert_eq!(r.side_channel_port.as_ref().map(|p| p.0), Some(5557));
        let w: Vec<String> = notes.warnings.iter().map(|n| n.message.clone()).collect();
        assert!(
            w.iter()
                .any(|m| m == "VLLM_NIXL_SIDE_CHANNEL_HOST: valueFrom not modelled"),
            "{w:?}"
        );
        assert!(
            w.iter().any(|m| m.contains("also the KV-event port")),
            "{w:?}"
        );
    }

    #[test]
    fn shell_and_serve_forms() {
        let mut notes = Notes::default();
        let mut c = container(&[], vec![env("BS", Some("32"), false)]);
        c.command = vec![item("/bin/sh", 0), item("-c", 1)];
        c.args = vec![item(
            "vllm serve meta-llama/Llama-3.2-1B --block-size $(BS) \\\n  --served-model-name 'llama 1b'",
            2,
        )];
        let r = read_vllm(&c, &|_| None, &mut notes).unwrap();
        assert_eq!(r.vllm.block_size, Some(32));
        assert_eq!(
            r.model.map(|m| m.v).as_deref(),
            Some("meta-llama/Llama-3.2-1B")
        );
        assert_eq!(
            r.served_model_name.map(|m| m.v).as_deref(),
            Some("llama 1b")
        );
        // BS itself is no vLLM variable.
        let w: Vec<&str> = notes.warnings.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(w, vec!["BS=32: not modelled"]);
        assert_eq!(
            shell_words("a 'b c' \"d\\\"e\" && f"),
            vec!["a", "b c", "d\"e", "f"]
        );
    }
}
