//! Model- and GPU-dependent numbers for curve axes and marks.
//!
//! A small local table until the model catalog (`src/catalog`) lands: the
//! lead redirects these two functions to it. KV bytes per token =
//! 2 (K and V) · layers · kv_heads · head_dim · 2 bytes (bf16).

/// KV-cache bytes per token of `model` (HF id or short name), if known.
pub fn kv_bytes_per_token(model: &str) -> Option<u64> {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    if m.starts_with("llama-3.2-1b") {
        // 16 layers · 8 kv heads · 64 dims · 2 · 2 B.
        Some(32_768)
    } else if m.starts_with("llama-3.1-8b") || m.starts_with("meta-llama-3.1-8b") {
        // 32 layers · 8 kv heads · 128 dims · 2 · 2 B.
        Some(131_072)
    } else {
        None
    }
}

/// A named KV capacity to mark on a curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CapacityMark {
    /// Label, e.g. `H100-80GB`.
    pub label: String,
    /// Capacity in blocks.
    pub n_blocks: u64,
}

/// KV capacity of one GPU of each common kind serving `model` in bf16 with
/// vLLM's default `gpu_memory_utilization` 0.9, ignoring activation memory
/// (so an upper bound): `(0.9 · HBM − weights) / (kv_bytes_per_token ·
/// block_size)` blocks. Empty for unknown models.
pub fn default_gpu_marks(model: &str, block_size: u32) -> Vec<CapacityMark> {
    let Some(per_token) = kv_bytes_per_token(model) else {
        return Vec::new();
    };
    let m = model.to_ascii_lowercase();
    let weights_bytes: f64 = if m.contains("1b") { 2.47e9 } else { 16.06e9 };
    let gpus: [(&str, f64); 4] = [
        ("L4-24GB", 24.0),
        ("A100-40GB", 40.0),
        ("A100-80GB", 80.0),
        ("H100-80GB", 80.0),
    ];
    let mut marks: Vec<CapacityMark> = Vec::new();
    for (label, gib) in gpus {
        let kv = 0.9 * gib * (1u64 << 30) as f64 - weights_bytes;
        if kv <= 0.0 {
            continue;
        }
        let n_blocks = (kv / (per_token as f64 * block_size.max(1) as f64)).floor() as u64;
        // A100-80GB and H100-80GB hold the same KV: keep one mark per capacity.
        match marks.iter_mut().find(|x| x.n_blocks == n_blocks) {
            Some(x) => x.label = format!("{}/{label}", x.label),
            None => marks.push(CapacityMark {
                label: label.into(),
                n_blocks,
            }),
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models() {
        assert_eq!(
            kv_bytes_per_token("meta-llama/Llama-3.2-1B-Instruct"),
            Some(32_768)
        );
        assert_eq!(kv_bytes_per_token("Llama-3.1-8B"), Some(131_072));
        assert_eq!(kv_bytes_per_token("gpt-5"), None);
    }

    #[test]
    fn gpu_marks_hand_computed() {
        let marks = default_gpu_marks("meta-llama/Llama-3.1-8B-Instruct", 16);
        // H100: (0.9 * 80 GiB - 16.06e9) / (131072 * 16) = 29205.99 blocks.
        let h100 = marks.iter().find(|m| m.label.contains("H100")).unwrap();
        assert_eq!(h100.n_blocks, 29_205);
        assert_eq!(marks.len(), 3);
        assert!(default_gpu_marks("unknown", 16).is_empty());
    }
}
