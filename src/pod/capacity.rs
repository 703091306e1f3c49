//! KV capacity of one vLLM pod (`num_gpu_blocks`) and the vLLM defaults it depends on.
//!
//! Follows `vllm.md` §4.1 (`gpu_worker.py::determine_available_memory`, `kv_cache_utils.py::get_num_blocks`),
//! per tensor-parallel rank:
//! ```text
//! requested    = memory_bytes · gpu_memory_utilization
//! available_kv = requested − (weights/tp + peak_activation + non_torch) − cudagraph_estimate
//! page_size    = 2 · block_size · max(1, kv_heads/tp) · head_dim · dtype_bytes      # one layer, K+V
//! num_blocks   = available_kv / (page_size · num_layers)                            # integer division
//! ```
//! vLLM measures the memory terms in a profiling run; kvsim estimates them (all \[est], callers can
//! pass measured values instead):
//!
//! | Term | Estimate | Anchor |
//! |---|---|---|
//! | peak activation | `mnbt·(3·I/tp + 2·H)·dtype` (gate/up output, activation output, two hidden-size buffers) `+ max_num_seqs·V·4` (fp32 logits of the dummy sampler run) | vLLM logs for Llama-3.1-8B on H100 at 8192 tokens: "PyTorch activation peak memory takes 1.19–1.24GiB" \[pub]; the estimate gives 1.27 GiB |
//! | non-torch memory | 0.35 GiB, + 0.25 GiB when tp > 1 (NCCL buffers) | same logs: "non_torch_memory takes 0.12–0.65GiB" \[pub] |
//! | CUDA graphs \[0.33 only] | 256 MiB + 8 MiB per layer | logs "Graph capturing finished …, took 0.11–0.96 GiB" \[pub]; \[0.11] captures graphs after the KV allocation, so nothing is subtracted |
//!
//! With these, Llama-3.1-8B on H100 at utilisation 0.9 gets 27,966 blocks of 16 (\[0.11]); vLLM logs
//! report 447,088 tokens = 27,943 blocks \[pub].

use crate::catalog::{GpuSpec, ModelSpec};
use crate::compat::VllmVersion;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// Non-torch memory (CUDA context, cuBLAS workspace) at tp = 1 \[est].
const NON_TORCH_BYTES: u64 = 358 * MIB; // ≈ 0.35 GiB
/// Extra non-torch memory for NCCL buffers when tp > 1 \[est].
const NON_TORCH_TP_EXTRA_BYTES: u64 = 256 * MIB;
/// Fixed part of the CUDA-graph estimate \[est].
const CUDAGRAPH_BASE_BYTES: u64 = 256 * MIB;
/// Per-layer part of the CUDA-graph estimate \[est].
const CUDAGRAPH_PER_LAYER_BYTES: u64 = 8 * MIB;
/// Bytes per logit in the sampler's profiling run (fp32).
const LOGIT_BYTES: u64 = 4;

/// Everything `num_gpu_blocks` needs; build with [`CapacityInput::vllm_defaults`] and adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct CapacityInput<'a> {
    /// GPU of every rank.
    pub gpu: &'a GpuSpec,
    /// Served model.
    pub model: &'a ModelSpec,
    /// Tensor-parallel size (GPUs per pod).
    pub tp: u32,
    /// Tokens per KV block.
    pub block_size: u32,
    /// Fraction of device memory vLLM may use, in (0, 1].
    pub gpu_memory_utilization: f64,
    /// Token budget of the profiling run (the scheduler's `max_num_batched_tokens`).
    pub max_num_batched_tokens: u32,
    /// Rows of the sampler's profiling run (the scheduler's `max_num_seqs`).
    pub max_num_seqs: u32,
    /// Selects whether a CUDA-graph estimate is subtracted.
    pub version: VllmVersion,
    /// Measured peak activation bytes per rank, replacing the estimate.
    pub activation_bytes: Option<u64>,
    /// Measured non-torch bytes per rank, replacing the estimate.
    pub non_torch_bytes: Option<u64>,
    /// Measured CUDA-graph bytes per rank, replacing the estimate.
    pub cudagraph_bytes: Option<u64>,
    /// vLLM `kv_cache_memory_bytes`: KV memory per rank, skipping the profile.
    pub kv_cache_memory_bytes: Option<u64>,
    /// vLLM `num_gpu_blocks_override`: the answer, verbatim.
    pub num_gpu_blocks_override: Option<u64>,
}

impl<'a> CapacityInput<'a> {
    /// vLLM's defaults for this GPU and version: tp 1, block size 16, default utilisation and
    /// online-server batch limits, every memory term estimated.
    pub fn vllm_defaults(
        gpu: &'a GpuSpec,
        model: &'a ModelSpec,
        version: VllmVersion,
    ) -> CapacityInput<'a> {
        let (max_num_batched_tokens, max_num_seqs) = vllm_batch_defaults(gpu, version);
        CapacityInput {
            gpu,
            model,
            tp: 1,
            block_size: 16,
            gpu_memory_utilization: default_gpu_memory_utilization(version),
            max_num_batched_tokens,
            max_num_seqs,
            version,
            activation_bytes: None,
            non_torch_bytes: None,
            cudagraph_bytes: None,
            kv_cache_memory_bytes: None,
            num_gpu_blocks_override: None,
        }
    }
}

/// How one rank's memory is divided, as vLLM's startup log reports it (bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryBudget {
    /// `memory_bytes · gpu_memory_utilization`.
    pub requested_bytes: u64,
    /// This rank's share of the weights (`W/tp`).
    pub weight_bytes: u64,
    /// Peak activation of the profiling run.
    pub activation_bytes: u64,
    /// CUDA context, cuBLAS and NCCL buffers.
    pub non_torch_bytes: u64,
    /// CUDA-graph pool estimate (\[0.33]; 0 for \[0.11]).
    pub cudagraph_bytes: u64,
    /// What is left for the KV cache (negative when the rest does not fit).
    pub available_kv_bytes: i128,
    /// Bytes of one block over all layers on this rank.
    pub block_bytes: u64,
}

/// Why a capacity could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// An input is out of range.
    #[error("capacity input \"{field}\": expected {expected}, got {value}")]
    InvalidInput {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// vLLM requires the attention heads to split evenly over the ranks.
    #[error("{model}: {n_heads} attention heads are not divisible by tensor parallel size {tp}")]
    IndivisibleHeads {
        model: String,
        n_heads: u32,
        tp: u32,
    },
    /// Weights plus reserved memory leave no KV block.
    #[error(
        "{model} on {gpu} (tp {tp}): model weights {weights_gib:.2} GiB exceed the KV budget \
         {budget_gib:.2} GiB ({util} × {total_gib:.2} GiB minus {reserved_gib:.2} GiB activations, \
         non-torch memory and CUDA graphs); one {block_size}-token block needs {block_mib:.3} MiB"
    )]
    NoKvMemory {
        model: String,
        gpu: &'static str,
        tp: u32,
        weights_gib: f64,
        budget_gib: f64,
        util: f64,
        total_gib: f64,
        reserved_gib: f64,
        block_size: u32,
        block_mib: f64,
    },
}

/// vLLM's default `gpu_memory_utilization` (`config/cache.py`): 0.92 \[0.33], 0.9 \[0.11].
pub fn default_gpu_memory_utilization(version: VllmVersion) -> f64 {
    match version {
        VllmVersion::V0_33 => 0.92,
        VllmVersion::V0_11 => 0.9,
    }
}

/// vLLM online-server `(max_num_batched_tokens, max_num_seqs)` (`engine/arg_utils.py::get_batch_defaults`).
///
/// ≥ 160 GiB: (16384, 1024), added in vLLM 0.28, so \[0.33] only; ≥ 70 GiB and not an A100:
/// (8192, 1024); otherwise (2048, 256).
pub fn vllm_batch_defaults(gpu: &GpuSpec, version: VllmVersion) -> (u32, u32) {
    let is_a100 = gpu.device_name.to_ascii_lowercase().contains("a100");
    if version == VllmVersion::V0_33 && gpu.memory_bytes >= 160 * GIB {
        (16384, 1024)
    } else if gpu.memory_bytes >= 70 * GIB && !is_a100 {
        (8192, 1024)
    } else {
        (2048, 256)
    }
}

/// Splits one rank's memory per `vllm.md` §4.1 (see the module doc for the estimates).
pub fn memory_budget(input: &CapacityInput) -> Result<MemoryBudget, CapacityError> {
    validate(input)?;
    let m = input.model;
    let tp = input.tp as u64;
    let dtype = m.dtype_bytes as u64;
    let requested_bytes = (input.gpu.memory_bytes as f64 * input.gpu_memory_utilization) as u64;
    let weight_bytes = m.weight_bytes().div_ceil(tp);
    let activation_bytes = input.activation_bytes.unwrap_or_else(|| {
        let per_token = (3 * m.intermediate as u64).div_ceil(tp) + 2 * m.hidden as u64;
        input.max_num_batched_tokens as u64 * per_token * dtype
            + input.max_num_seqs as u64 * m.vocab as u64 * LOGIT_BYTES
    });
    let non_torch_bytes = input.non_torch_bytes.unwrap_or(if tp > 1 {
        NON_TORCH_BYTES + NON_TORCH_TP_EXTRA_BYTES
    } else {
        NON_TORCH_BYTES
    });
    let cudagraph_bytes = input.cudagraph_bytes.unwrap_or(match input.version {
        VllmVersion::V0_33 => CUDAGRAPH_BASE_BYTES + CUDAGRAPH_PER_LAYER_BYTES * m.n_layers as u64,
        VllmVersion::V0_11 => 0,
    });
    let available_kv_bytes = match input.kv_cache_memory_bytes {
        Some(b) => b as i128,
        None => {
            requested_bytes as i128
                - weight_bytes as i128
                - activation_bytes as i128
                - non_torch_bytes as i128
                - cudagraph_bytes as i128
        }
    };
    let block_bytes = input.block_size as u64 * m.kv_bytes_per_token_per_rank(input.tp);
    Ok(MemoryBudget {
        requested_bytes,
        weight_bytes,
        activation_bytes,
        non_torch_bytes,
        cudagraph_bytes,
        available_kv_bytes,
        block_bytes,
    })
}

/// Number of KV blocks each rank of the pod holds (`vllm.md` §4.1).
pub fn num_gpu_blocks(input: &CapacityInput) -> Result<u64, CapacityError> {
    if let Some(n) = input.num_gpu_blocks_override {
        return Ok(n);
    }
    let b = memory_budget(input)?;
    let n_blocks = if b.available_kv_bytes > 0 {
        b.available_kv_bytes as u64 / b.block_bytes
    } else {
        0
    };
    if n_blocks == 0 {
        let gib = |x: u64| x as f64 / GIB as f64;
        let reserved = b.activation_bytes + b.non_torch_bytes + b.cudagraph_bytes;
        return Err(CapacityError::NoKvMemory {
            model: input.model.name.to_string(),
            gpu: input.gpu.name,
            tp: input.tp,
            weights_gib: gib(b.weight_bytes),
            budget_gib: (b.requested_bytes as f64 - reserved as f64) / GIB as f64,
            util: input.gpu_memory_utilization,
            total_gib: input.gpu.memory_gib(),
            reserved_gib: gib(reserved),
            block_size: input.block_size,
            block_mib: b.block_bytes as f64 / MIB as f64,
        });
    }
    Ok(n_blocks)
}

fn validate(input: &CapacityInput) -> Result<(), CapacityError> {
    let util = input.gpu_memory_utilization;
    if !(util > 0.0 && util <= 1.0) {
        return Err(CapacityError::InvalidInput {
            field: "gpu_memory_utilization",
            value: util.to_string(),
            expected: "a fraction in (0, 1]",
        });
    }
    for (field, v) in [
        ("tp", input.tp),
        ("block_size", input.block_size),
        ("max_num_batched_tokens", input.max_num_batched_tokens),
        ("max_num_seqs", input.max_num_seqs),
    ] {
        if v == 0 {
            return Err(CapacityError::InvalidInput {
                field,
                value: v.to_string(),
                expected: "a positive integer",
            });
        }
    }
    if input.model.n_heads % input.tp != 0 {
        return Err(CapacityError::IndivisibleHeads {
            model: input.model.name.to_string(),
            n_heads: input.model.n_heads,
            tp: input.tp,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{gpu, model};

    fn h100_at(name: &str, version: VllmVersion) -> CapacityInput<'static> {
        CapacityInput {
            gpu_memory_utilization: 0.9,
            ..CapacityInput::vllm_defaults(gpu("H100").unwrap(), model(name).unwrap(), version)
        }
    }

    #[test]
    fn spec_capacity_ranges_on_h100_at_util_0_9() {
        for version in [VllmVersion::V0_11, VllmVersion::V0_33] {
            let n1 = num_gpu_blocks(&h100_at("Llama-3.2-1B", version)).unwrap();
            assert!((136_000..=139_000).contains(&n1), "{version}: 1B {n1}");
            let n8 = num_gpu_blocks(&h100_at("Llama-3.1-8B", version)).unwrap();
            assert!((27_500..=28_000).contains(&n8), "{version}: 8B {n8}");
        }
    }

    #[test]
    fn activation_estimate_is_near_vllm_log() {
        let b = memory_budget(&h100_at("Llama-3.1-8B", VllmVersion::V0_11)).unwrap();
        let gib = b.activation_bytes as f64 / GIB as f64;
        assert!((1.15..1.35).contains(&gib), "{gib}");
        assert_eq!(b.cudagraph_bytes, 0);
        assert_eq!(b.block_bytes, 2 * MIB);
    }

    #[test]
    fn hand_computed_blocks_with_measured_terms() {
        // vLLM log (Llama-3.1-8B, H100): 79.11 GiB × 0.90, weights 14.99 GiB, non-torch 0.35,
        // activations 1.24 ⇒ 54.62 GiB ⇒ 447,088 tokens. With our weights (14.957 GiB):
        let mut input = h100_at("Llama-3.1-8B", VllmVersion::V0_11);
        input.activation_bytes = Some((1.24 * GIB as f64) as u64);
        input.non_torch_bytes = Some((0.35 * GIB as f64) as u64);
        let b = memory_budget(&input).unwrap();
        let expect = (b.requested_bytes - b.weight_bytes - b.activation_bytes - b.non_torch_bytes)
            / (2 * MIB);
        assert_eq!(num_gpu_blocks(&input).unwrap(), expect);
        // vLLM's 14.99 GiB of weights includes ~0.03 GiB of buffers we do not count (≈ 17 blocks).
        assert!((expect as i64 - 447_088 / 16).abs() < 50, "{expect}");
    }

    #[test]
    fn tp_splits_weights_and_kv_heads() {
        let mut input = h100_at("Llama-3.1-70B", VllmVersion::V0_11);
        assert!(matches!(
            num_gpu_blocks(&input),
            Err(CapacityError::NoKvMemory { .. })
        ));
        input.tp = 4;
        let b = memory_budget(&input).unwrap();
        // 2 KV heads per rank: 2·16·2·128·2·80 bytes per block.
        assert_eq!(b.block_bytes, 2 * 16 * 2 * 128 * 2 * 80);
        assert!(num_gpu_blocks(&input).unwrap() > 0);
        input.tp = 3;
        assert!(matches!(
            num_gpu_blocks(&input),
            Err(CapacityError::IndivisibleHeads { tp: 3, .. })
        ));
    }

    #[test]
    fn no_kv_memory_message_names_weights_and_budget() {
        let input = CapacityInput::vllm_defaults(
            gpu("L40S").unwrap(),
            model("Qwen3-32B").unwrap(),
            VllmVersion::V0_33,
        );
        let msg = num_gpu_blocks(&input).unwrap_err().to_string();
        assert!(msg.contains("model weights 61.0"), "{msg}");
        assert!(msg.contains("exceed the KV budget 39."), "{msg}");
    }

    #[test]
    fn overrides_short_circuit() {
        let mut input = h100_at("Llama-3.1-8B", VllmVersion::V0_33);
        input.kv_cache_memory_bytes = Some(10 * GIB);
        assert_eq!(num_gpu_blocks(&input).unwrap(), 5120);
        input.num_gpu_blocks_override = Some(42);
        assert_eq!(num_gpu_blocks(&input).unwrap(), 42);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let mut input = h100_at("Llama-3.1-8B", VllmVersion::V0_33);
        input.gpu_memory_utilization = 1.5;
        assert!(matches!(
            num_gpu_blocks(&input),
            Err(CapacityError::InvalidInput {
                field: "gpu_memory_utilization",
                ..
            })
        ));
        input.gpu_memory_utilization = 0.9;
        input.block_size = 0;
        assert!(matches!(
            num_gpu_blocks(&input),
            Err(CapacityError::InvalidInput {
                field: "block_size",
                ..
            })
        ));
    }

    #[test]
    fn batch_defaults_follow_get_batch_defaults() {
        let v33 = VllmVersion::V0_33;
        let v11 = VllmVersion::V0_11;
        assert_eq!(vllm_batch_defaults(gpu("H100").unwrap(), v33), (8192, 1024));
        assert_eq!(vllm_batch_defaults(gpu("H200").unwrap(), v11), (8192, 1024));
        assert_eq!(
            vllm_batch_defaults(gpu("A100-80GB").unwrap(), v33),
            (2048, 256)
        );
        assert_eq!(vllm_batch_defaults(gpu("L40S").unwrap(), v33), (2048, 256));
        assert_eq!(
            vllm_batch_defaults(gpu("B200").unwrap(), v33),
            (16384, 1024)
        );
        assert_eq!(vllm_batch_defaults(gpu("B200").unwrap(), v11), (8192, 1024));
        assert_eq!(default_gpu_memory_utilization(v33), 0.92);
        assert_eq!(default_gpu_memory_utilization(v11), 0.9);
    }
}
