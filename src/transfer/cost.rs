//! What one request's KV pull costs before any link sharing (`vllm.md` §7.2, `latency-models.md` §9).
//!
//! ```text
//! n_blocks = ceil(L / bs) − floor(min(dst_local_hit, L − 1) / bs)   # partial last block moves whole
//! bytes    = n_blocks · bs · kv_bytes_per_token_per_rank            # per decode rank
//! n_desc   = n_blocks · regions · num_layers                        # regions: 2 flash_attn, 1 flash_infer
//! fixed    = ceil(t_launch + n_desc · t_desc)                       # before the bytes flow
//! alone    = fixed + ceil(bytes / bandwidth)
//! ```
//! With heterogeneous TP, a decode rank reads from `lcm(tp_p, tp_d) / tp_d` prefill ranks, each
//! read a descriptor set of its own, so `n_desc` is multiplied by that factor.

use crate::catalog::ModelSpec;
use crate::engine::time::SimDuration;

use super::spec::TransferConfig;

/// The decode pod's KV facts that fix a transfer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvShape {
    /// Tokens per KV block.
    pub block_size: u32,
    /// Decoder layers.
    pub n_layers: u32,
    /// KV bytes per token held by one tensor-parallel rank of the decode pod.
    pub kv_bytes_per_token_per_rank: u64,
}

impl KvShape {
    /// The shape of `model` served with `block_size` on `tp` ranks (KV heads replicated when
    /// `tp` > KV heads, as vLLM does).
    pub fn for_pod(model: &ModelSpec, block_size: u32, tp: u32) -> KvShape {
        KvShape {
            block_size,
            n_layers: model.n_layers,
            kv_bytes_per_token_per_rank: model.kv_bytes_per_token_per_rank(tp),
        }
    }
}

/// One request's transfer size and fixed cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCost {
    /// Blocks pulled.
    pub n_blocks: u64,
    /// Bytes each decode rank receives.
    pub bytes_per_rank: u64,
    /// NIXL descriptors each decode rank issues.
    pub n_desc: u64,
    /// Launch plus descriptor time, before bytes flow.
    pub fixed: SimDuration,
}

/// Blocks the decode pod pulls for a `prompt_tokens` prompt when it already holds a
/// `dst_local_hit_tokens` prefix. vLLM caps the hit at `L − 1`, so at least one block moves.
pub fn blocks_to_pull(prompt_tokens: u64, dst_local_hit_tokens: u64, block_size: u32) -> u64 {
    let bs = u64::from(block_size.max(1));
    let hit = dst_local_hit_tokens.min(prompt_tokens.saturating_sub(1));
    prompt_tokens.div_ceil(bs) - hit / bs
}

/// The cost of pulling `n_blocks` from a prefill pod of `src_tp` ranks to a decode pod of
/// `dst_tp` ranks (module formula).
pub fn request_cost(
    cfg: &TransferConfig,
    kv: &KvShape,
    n_blocks: u64,
    src_tp: u32,
    dst_tp: u32,
) -> RequestCost {
    let reads_per_rank = lcm(src_tp.max(1), dst_tp.max(1)) / u64::from(dst_tp.max(1));
    let n_desc =
        n_blocks * cfg.layout.regions_per_layer() * u64::from(kv.n_layers) * reads_per_rank;
    RequestCost {
        n_blocks,
        bytes_per_rank: n_blocks * u64::from(kv.block_size) * kv.kv_bytes_per_token_per_rank,
        n_desc,
        fixed: SimDuration::from_ns_f64_ceil(cfg.t_launch_ns + n_desc as f64 * cfg.t_desc_ns),
    }
}

/// Time for `bytes` alone on a link of `bytes_per_s`, rounded up once.
pub fn flow_time(bytes: f64, bytes_per_s: f64) -> SimDuration {
    // Bandwidths are whole GB/s in practice, so bytes/ns is exact and so is the quotient.
    SimDuration::from_ns_f64_ceil(bytes / (bytes_per_s * 1e-9))
}

/// Least common multiple of two positive integers.
pub(crate) fn lcm(a: u32, b: u32) -> u64 {
    let (mut x, mut y) = (u64::from(a), u64::from(b));
    while y != 0 {
        (x, y) = (y, x % y);
    }
    u64::from(a) * u64::from(b) / x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model;
    use crate::transfer::spec::{KvLayout, TransferSpec};

    fn llama_1b() -> KvShape {
        KvShape::for_pod(model("Llama-3.2-1B").unwrap(), 16, 1)
    }

    #[test]
    fn blocks_follow_the_spec_formula() {
        // 1000 tokens at bs 16: ceil(1000/16) = 63 blocks, the partial last one included.
        assert_eq!(blocks_to_pull(1000, 0, 16), 63);
        // A 500-token local hit (31 full blocks) leaves 63 − 31 = 32.
        assert_eq!(blocks_to_pull(1000, 500, 16), 32);
        // Full-prompt hits are capped at L − 1 = 999 tokens (62 blocks): one block still moves.
        assert_eq!(blocks_to_pull(1000, 1000, 16), 1);
        assert_eq!(blocks_to_pull(1024, 1024, 16), 1);
        assert_eq!(blocks_to_pull(1, 0, 16), 1);
    }

    #[test]
    fn llama_1b_1000_tokens_matches_latency_models_section_9() {
        let kv = llama_1b();
        assert_eq!(kv.kv_bytes_per_token_per_rank, 32_768);
        let c = request_cost(&TransferConfig::default(), &kv, 63, 1, 1);
        // 63 blocks × 512 KiB = 31.5 MiB; 63 × 2 × 16 = 2016 descriptors.
        assert_eq!(c.bytes_per_rank, 33_030_144);
        assert_eq!(c.bytes_per_rank, 63 * 512 * 1024);
        assert_eq!(c.n_desc, 2016);
        // 1 ms launch + 2016 × 2 µs = 5.032 ms.
        assert_eq!(c.fixed, SimDuration::from_us(5_032));
        // §9 says descriptors at 2 µs cost 4–8 ms for 1B/8B: more than the bandwidth term.
        assert!(c.fixed > flow_time(c.bytes_per_rank as f64, 40e9));
    }

    #[test]
    fn section_9_payload_table() {
        // 1000 tokens × 32 KiB = 31.25 MiB (unrounded, as the table states).
        let payload = 1000.0 * 32_768.0;
        let ms = |bw| flow_time(payload, bw).as_ms_f64();
        assert!((ms(25e9) - 1.31).abs() < 0.005, "{}", ms(25e9));
        assert!((ms(50e9) - 0.66).abs() < 0.005, "{}", ms(50e9));
        assert!((ms(64e9) - 0.51).abs() < 0.005, "{}", ms(64e9));
        assert!((ms(400e9) - 0.08).abs() < 0.005, "{}", ms(400e9));
        // 8B: 4032 descriptors at bs 16.
        let kv8 = KvShape::for_pod(model("Llama-3.1-8B").unwrap(), 16, 1);
        let c8 = request_cost(&TransferConfig::default(), &kv8, 63, 1, 1);
        assert_eq!(c8.n_desc, 4032);
        assert_eq!(c8.bytes_per_rank, 4 * 33_030_144);
    }

    #[test]
    fn flash_infer_halves_descriptors() {
        let cfg = TransferSpec {
            layout: Some(KvLayout::FlashInfer),
            ..TransferSpec::default()
        }
        .resolve()
        .unwrap();
        let c = request_cost(&cfg, &llama_1b(), 63, 1, 1);
        assert_eq!(c.n_desc, 1008);
        assert_eq!(c.fixed, SimDuration::from_us(1000 + 2016));
    }

    #[test]
    fn tensor_parallel_splits_bytes_and_multiplies_reads() {
        let m = model("Llama-3.1-8B").unwrap();
        let kv = KvShape::for_pod(m, 16, 2);
        let cfg = TransferConfig::default();
        let c = request_cost(&cfg, &kv, 10, 2, 2);
        assert_eq!(c.bytes_per_rank, 10 * 16 * 131_072 / 2);
        assert_eq!(c.n_desc, 10 * 2 * 32);
        // tp_p = 4 feeding tp_d = 2: each decode rank reads from 2 prefill ranks.
        assert_eq!(request_cost(&cfg, &kv, 10, 4, 2).n_desc, 2 * 10 * 2 * 32);
        assert_eq!(lcm(2, 3), 6);
        assert_eq!(lcm(4, 4), 4);
    }
}
