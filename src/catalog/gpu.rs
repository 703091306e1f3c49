//! GPU catalog: peak compute, HBM bandwidth, memory, and the efficiencies roofline models apply.
//!
//! | GPU | BF16 dense TFLOP/s | HBM TB/s | memory seen by vLLM | MFU prefill / decode | η (HBM) | TP link, per direction |
//! |---|---|---|---|---|---|---|
//! | H100 SXM 80GB | 989.5 \[pub: NVIDIA H100 datasheet, 1979 with sparsity; BLIS `hardware_config.json`] | 3.35 \[pub: datasheet] | 79.11 GiB \[pub: vLLM startup logs "total_gpu_memory (79.11GiB)" for Llama-3.1-8B on H100; other logs show up to 79.25] | 0.45 / 0.30 \[pub: inference-sim `hardware_config.json`] | 0.72 \[pub: BLIS `BwEffConstant`; derived: Vidur H100 decode profiles] | 450 GB/s NVLink4 \[pub: datasheet, 900 GB/s total] |
//! | H200 SXM 141GB | 989.5 \[pub: NVIDIA H200 datasheet] | 4.8 \[pub: datasheet] | 139.45 GiB \[est] | 0.45 / 0.30 \[pub: inference-sim docs, H200 calibration block] | 0.72 \[est: as H100] | 450 GB/s \[pub: datasheet] |
//! | A100 SXM 80GB | 312 \[pub: NVIDIA A100 datasheet] | 2.039 \[pub: datasheet] | 79.46 GiB \[est] | 0.38 / 0.18 \[pub: inference-sim `hardware_config.json`] | 0.81 \[derived: Vidur A100 decode profiles] | 300 GB/s NVLink3 \[pub: datasheet, 600 GB/s total] |
//! | L40S 48GB | 362 \[pub: NVIDIA L40S datasheet, 733 with sparsity] | 0.864 \[pub: datasheet] | 44.68 GiB \[est] | 0.32 / 0.08 \[pub: inference-sim `hardware_config.json`] | 0.72 \[est] | 32 GB/s PCIe Gen4 x16 \[pub: datasheet, no NVLink] |
//! | B200 180GB | 2250 \[pub: NVIDIA HGX B200 datasheet, 4.5 PF with sparsity] | 8.0 \[pub: datasheet] | 177.8 GiB \[est] | 0.45 / 0.30 \[est: H100 values, no published B200 MFU] | 0.72 \[est] | 900 GB/s NVLink5 \[pub: datasheet, 1.8 TB/s total] |
//!
//! *Memory seen by vLLM* is what `torch.cuda.mem_get_info` reports and what vLLM multiplies by
//! `gpu_memory_utilization`; it is below the datasheet figure. Except for H100 it is estimated as the
//! `nvidia-smi` total (H200 143771 MiB, A100 81920 MiB, L40S 46068 MiB, B200 183359 MiB) scaled by the
//! H100 ratio 79.11 GiB / 79.65 GiB (vLLM log / `nvidia-smi`) \[est].

use super::{nearest_name, CatalogError};

const MIB: u64 = 1 << 20;

/// One GPU model's published (or estimated) performance envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSpec {
    /// Canonical catalog name.
    pub name: &'static str,
    /// Device name as CUDA reports it; vLLM's batch defaults test it for `"a100"`.
    pub device_name: &'static str,
    /// Dense BF16 tensor-core peak, FLOP/s.
    pub peak_bf16_flops: f64,
    /// Peak HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// Total device memory as vLLM sees it (bytes), i.e. the base of `gpu_memory_utilization`.
    pub memory_bytes: u64,
    /// Model FLOPs utilisation reached by prefill GEMMs and attention.
    pub mfu_prefill: f64,
    /// Model FLOPs utilisation reached by decode (rarely binding: decode is memory-bound).
    pub mfu_decode: f64,
    /// Fraction of peak HBM bandwidth that streaming kernels reach (η).
    pub bw_efficiency: f64,
    /// Per-direction GPU-to-GPU bandwidth for tensor-parallel all-reduce, bytes/s.
    pub interconnect_bytes_per_s: f64,
    /// Extra accepted names (normalised: lowercase, `-` separated, no `nvidia` prefix).
    pub aliases: &'static [&'static str],
}

impl GpuSpec {
    /// Memory as vLLM sees it, in GiB (for messages and reports).
    pub fn memory_gib(&self) -> f64 {
        self.memory_bytes as f64 / (1u64 << 30) as f64
    }
}

/// Every catalogued GPU, in the order of the module table.
pub static GPUS: &[GpuSpec] = &[
    GpuSpec {
        name: "H100",
        device_name: "NVIDIA H100 80GB HBM3",
        peak_bf16_flops: 989.5e12,
        hbm_bytes_per_s: 3.35e12,
        memory_bytes: 81_009 * MIB,
        mfu_prefill: 0.45,
        mfu_decode: 0.30,
        bw_efficiency: 0.72,
        interconnect_bytes_per_s: 450e9,
        aliases: &[
            "h100",
            "h100-sxm",
            "h100-sxm5",
            "h100-80gb",
            "h100-sxm-80gb",
            "h100-80gb-hbm3",
        ],
    },
    GpuSpec {
        name: "H200",
        device_name: "NVIDIA H200",
        peak_bf16_flops: 989.5e12,
        hbm_bytes_per_s: 4.8e12,
        memory_bytes: 142_795 * MIB,
        mfu_prefill: 0.45,
        mfu_decode: 0.30,
        bw_efficiency: 0.72,
        interconnect_bytes_per_s: 450e9,
        aliases: &["h200", "h200-sxm", "h200-141gb", "h200-sxm-141gb"],
    },
    GpuSpec {
        name: "A100-80GB",
        device_name: "NVIDIA A100-SXM4-80GB",
        peak_bf16_flops: 312e12,
        hbm_bytes_per_s: 2.039e12,
        memory_bytes: 81_363 * MIB,
        mfu_prefill: 0.38,
        mfu_decode: 0.18,
        bw_efficiency: 0.81,
        interconnect_bytes_per_s: 300e9,
        // No bare `A100`, `A100-SXM` or `A100-SXM4`: those also name the 40 GB
        // part, whose KV capacity is half; the name must say 80 GB.
        aliases: &["a100-80gb", "a100-80", "a100-sxm4-80gb", "a100-sxm-80gb"],
    },
    GpuSpec {
        name: "L40S",
        device_name: "NVIDIA L40S",
        peak_bf16_flops: 362e12,
        hbm_bytes_per_s: 0.864e12,
        memory_bytes: 45_755 * MIB,
        mfu_prefill: 0.32,
        mfu_decode: 0.08,
        bw_efficiency: 0.72,
        interconnect_bytes_per_s: 32e9,
        aliases: &["l40s", "l40-s", "l40s-48gb"],
    },
    GpuSpec {
        name: "B200",
        device_name: "NVIDIA B200",
        peak_bf16_flops: 2250e12,
        hbm_bytes_per_s: 8.0e12,
        memory_bytes: 182_112 * MIB,
        mfu_prefill: 0.45,
        mfu_decode: 0.30,
        bw_efficiency: 0.72,
        interconnect_bytes_per_s: 900e9,
        aliases: &["b200", "b200-sxm", "hgx-b200", "b200-180gb"],
    },
];

/// Looks a GPU up by name or alias, ignoring case, spaces/underscores and an `NVIDIA` prefix.
pub fn gpu(name: &str) -> Result<&'static GpuSpec, CatalogError> {
    let key = normalize(name);
    if let Some(g) = GPUS.iter().find(|g| g.aliases.contains(&key.as_str())) {
        return Ok(g);
    }
    let all_aliases = GPUS
        .iter()
        .flat_map(|g| g.aliases.iter().map(move |a| (*a, g.name)));
    // A name an alias extends (`A100` of `a100-80gb`) is the part meant, even
    // when another name is fewer edits away (`H100`).
    let extended = GPUS
        .iter()
        .find(|g| !key.is_empty() && g.aliases.iter().any(|a| a.starts_with(&key)))
        .map(|g| g.name);
    Err(CatalogError::UnknownGpu {
        name: name.to_string(),
        valid: GPUS.iter().map(|g| g.name).collect::<Vec<_>>().join(", "),
        suggestion: extended.or_else(|| nearest_name(&key, all_aliases)),
    })
}

fn normalize(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    let stripped = lower.strip_prefix("nvidia").unwrap_or(&lower);
    stripped.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_case_insensitively() {
        for n in [
            "H100",
            "h100-80gb",
            "H100-SXM",
            "NVIDIA H100 80GB HBM3",
            "h100_sxm5",
        ] {
            assert_eq!(gpu(n).unwrap().name, "H100", "{n}");
        }
        assert_eq!(gpu("NVIDIA A100-SXM4-80GB").unwrap().name, "A100-80GB");
        assert_eq!(gpu("l40s").unwrap().name, "L40S");
        assert_eq!(gpu("H200").unwrap().hbm_bytes_per_s, 4.8e12);
        assert_eq!(gpu("b200").unwrap().peak_bf16_flops, 2250e12);
    }

    #[test]
    fn unknown_gpu_suggests_nearest() {
        let err = gpu("H1000").unwrap_err();
        match &err {
            CatalogError::UnknownGpu { suggestion, .. } => assert_eq!(*suggestion, Some("H100")),
            other => panic!("unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("did you mean \"H100\"?"), "{msg}");
        assert!(
            msg.contains("valid: H100, H200, A100-80GB, L40S, B200"),
            "{msg}"
        );
        // A100 without its memory size may be the 40 GB part: an error
        // pointing at the 80 GB one, not a silent guess.
        for n in ["A100", "A100-SXM4", "nvidia-a100-sxm"] {
            let msg = gpu(n).unwrap_err().to_string();
            assert!(msg.contains("did you mean \"A100-80GB\"?"), "{n}: {msg}");
        }
        assert!(matches!(
            gpu("TPU-v5e"),
            Err(CatalogError::UnknownGpu {
                suggestion: None,
                ..
            })
        ));
    }

    #[test]
    fn aliases_are_unique_and_normalised() {
        let mut seen = std::collections::BTreeSet::new();
        for g in GPUS {
            for a in g.aliases {
                assert_eq!(normalize(a), *a, "alias {a} is not in normal form");
                assert!(seen.insert(*a), "alias {a} appears twice");
            }
            assert!(g.mfu_prefill > 0.0 && g.mfu_prefill <= 1.0);
            assert!(g.mfu_decode > 0.0 && g.mfu_decode <= 1.0);
            assert!(g.bw_efficiency > 0.0 && g.bw_efficiency <= 1.0);
        }
    }

    #[test]
    fn h100_memory_matches_vllm_log() {
        let gib = gpu("H100").unwrap().memory_gib();
        assert!((gib - 79.11).abs() < 0.01, "{gib}");
    }
}
