//! Model- and GPU-dependent numbers for curve axes and marks, from the
//! catalogs in [`crate::catalog`] and vLLM's capacity formula in
//! [`crate::pod::capacity`].

use crate::catalog::{gpu::GPUS, model::model as catalog_model};
use crate::compat::VllmVersion;
use crate::pod::capacity::{num_gpu_blocks, CapacityInput};

/// KV-cache bytes per token of `model` (catalog name, alias or HF id); an
/// unknown model's error lists the valid names and suggests the nearest.
pub fn kv_bytes_per_token(model: &str) -> Result<u64, crate::catalog::CatalogError> {
    catalog_model(model).map(|m| m.kv_bytes_per_token())
}

/// A named KV capacity to mark on a curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CapacityMark {
    /// Label, e.g. `H100`.
    pub label: String,
    /// Capacity in blocks.
    pub n_blocks: u64,
}

/// KV capacity of one GPU of each catalog kind serving `model` (TP 1) with
/// vLLM 0.33's defaults, as `kvsim run` computes it (`num_gpu_blocks − 1`
/// usable blocks). GPUs the model does not fit on are left out; empty for
/// unknown models.
pub fn default_gpu_marks(model: &str, block_size: u32) -> Vec<CapacityMark> {
    let Ok(m) = catalog_model(model) else {
        return Vec::new();
    };
    let mut marks: Vec<CapacityMark> = Vec::new();
    for g in GPUS {
        let mut input = CapacityInput::vllm_defaults(g, m, VllmVersion::V0_33);
        input.block_size = block_size.max(1);
        if let Ok(n) = num_gpu_blocks(&input) {
            if n > 1 {
                marks.push(CapacityMark {
                    label: g.name.to_string(),
                    n_blocks: n - 1,
                });
            }
        }
    }
    marks.sort_by_key(|x| x.n_blocks);
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models() {
        assert_eq!(
            kv_bytes_per_token("meta-llama/Llama-3.2-1B-Instruct").unwrap(),
            32_768
        );
        assert_eq!(kv_bytes_per_token("Llama-3.1-8B").unwrap(), 131_072);
        let e = kv_bytes_per_token("Llama-3.1-8X").unwrap_err().to_string();
        assert!(
            e.contains("did you mean") && e.contains("Llama-3.1-8B"),
            "{e}"
        );
        assert!(e.contains("valid: "), "{e}");
    }

    #[test]
    fn gpu_marks_follow_the_capacity_model() {
        let marks = default_gpu_marks("meta-llama/Llama-3.1-8B-Instruct", 16);
        let h100 = marks.iter().find(|m| m.label == "H100").unwrap();
        // vllm.md §6: ≈ 27.5–28 k blocks of 16 at utilisation 0.9; 0.33's 0.92 gives a bit more.
        assert!(
            (27_000..30_000).contains(&h100.n_blocks),
            "{}",
            h100.n_blocks
        );
        let b200 = marks.iter().find(|m| m.label == "B200").unwrap();
        assert!(b200.n_blocks > h100.n_blocks);
        assert!(marks.windows(2).all(|w| w[0].n_blocks <= w[1].n_blocks));
        assert!(default_gpu_marks("unknown", 16).is_empty());
    }
}
