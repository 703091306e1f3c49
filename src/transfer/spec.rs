//! The scenario's `transfer:` section ([`TransferSpec`]) and its validated form ([`TransferConfig`]).
//!
//! ```yaml
//! transfer: {backend: rdma, rdma_bytes_per_s: 40e9, t_desc_us: 2, t_handshake_ms: 0}
//! transfer: {backend: tcp, gpus_per_node: 1}           # every tp1 pod on its own node
//! transfer: {pod_nodes: [0, 0, 1, 1, 1], layout: flash_infer}
//! ```
//!
//! | Field | Default | Source |
//! |---|---|---|
//! | `backend` | `rdma` | inter-node path; intra-node always NVLink (cuda_ipc) |
//! | `rdma_bytes_per_s` | 40e9 per NIC and direction | \[est: 400 Gb/s CX-7 per GPU; nixlbench 42.6 GB/s at 16 MB, ai-dynamo/nixl] |
//! | `nvlink_bytes_per_s` | 300e9 per GPU and direction | \[est: ~900 GB/s nominal H100 NVLink, 300–450 GB/s effective] |
//! | `tcp_bytes_per_s` | 2e9 per GPU rank and direction | \[est: UCX TCP fallback 1–3 GB/s] |
//! | `t_launch_us` | 1000 | \[est: vllm-project/vllm #23780 ~3 ms before descriptor prep was optimized] |
//! | `t_desc_us` | 2 | \[est: 1–3 µs per descriptor, RFC #50913] |
//! | `t_handshake_ms` | 2000 | \[est: seconds-scale; vllm-project/vllm PR #55157 "can reach 5 s"] |
//! | `gpus_per_node` | 8 | \[est: HGX H100 node] |
//! | `layout` | `flash_attn` | vLLM's default attention backend on Hopper |
//! | `pod_nodes` | pods packed in index order | explicit node index of each pod |
//!
//! Kubernetes pods on one node reach each other over cuda_ipc only when they share the IPC
//! namespace; when they do not, place them on separate nodes (`gpus_per_node: 1` for tp1 pods,
//! or `pod_nodes`).

use serde::{Deserialize, Serialize};

use crate::engine::time::SimDuration;

/// Default RDMA bandwidth per NIC and direction, bytes/s \[est].
pub const DEFAULT_RDMA_BYTES_PER_S: f64 = 40e9;
/// Default NVLink bandwidth per GPU and direction, bytes/s \[est].
pub const DEFAULT_NVLINK_BYTES_PER_S: f64 = 300e9;
/// Default TCP fallback bandwidth per GPU rank and direction, bytes/s \[est].
pub const DEFAULT_TCP_BYTES_PER_S: f64 = 2e9;
/// Default launch cost of one request's transfer, µs \[est].
pub const DEFAULT_T_LAUNCH_US: f64 = 1000.0;
/// Default cost per NIXL descriptor, µs \[est].
pub const DEFAULT_T_DESC_US: f64 = 2.0;
/// Default one-time handshake per (decode, prefill) pair, ms \[est, PR #55157].
pub const DEFAULT_T_HANDSHAKE_MS: f64 = 2000.0;
/// Default GPUs per node \[est].
pub const DEFAULT_GPUS_PER_NODE: u32 = 8;

/// How pods on different nodes reach each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// UCX RDMA (IB/RoCE) through one NIC per GPU rank.
    #[default]
    #[serde(rename = "rdma")]
    Rdma,
    /// UCX TCP fallback, one endpoint per GPU rank.
    #[serde(rename = "tcp")]
    Tcp,
    /// cuda_ipc only: every pod must sit on one node.
    #[serde(rename = "nvlink-only")]
    NvlinkOnly,
}

/// How the attention backend registers KV memory with NIXL, which fixes descriptors per block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvLayout {
    /// K and V are separate regions per layer: `2 × num_layers` descriptors per block.
    #[default]
    #[serde(rename = "flash_attn")]
    FlashAttn,
    /// K and V registered jointly: `num_layers` descriptors per block.
    #[serde(rename = "flash_infer")]
    FlashInfer,
}

impl KvLayout {
    /// Registered regions (hence descriptors per block) per layer.
    pub fn regions_per_layer(self) -> u64 {
        match self {
            KvLayout::FlashAttn => 2,
            KvLayout::FlashInfer => 1,
        }
    }
}

/// The `transfer:` section of a scenario; every field optional (defaults in the module table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSpec {
    /// `rdma` (default), `tcp` or `nvlink-only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// RDMA bandwidth per NIC and direction, bytes/s (40e9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma_bytes_per_s: Option<f64>,
    /// NVLink (cuda_ipc) bandwidth per GPU and direction, bytes/s (300e9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_bytes_per_s: Option<f64>,
    /// TCP fallback bandwidth per GPU rank and direction, bytes/s (2e9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_bytes_per_s: Option<f64>,
    /// Launch cost per request transfer, µs (1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_launch_us: Option<f64>,
    /// Cost per NIXL descriptor, µs (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_desc_us: Option<f64>,
    /// One-time handshake per (decode, prefill) pair, ms (2000; 0 disables it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_handshake_ms: Option<f64>,
    /// GPUs per node when pods are packed in index order (8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_node: Option<u32>,
    /// `flash_attn` (default) or `flash_infer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<KvLayout>,
    /// Node index of each pod, in the scenario's pod order (default: packed in index order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_nodes: Option<Vec<u32>>,
}

/// A validated transfer configuration. Times are in ns so costs are exact integers for
/// integer-µs inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferConfig {
    /// Inter-node path.
    pub backend: Backend,
    /// Bytes/s per NIC and direction.
    pub rdma_bytes_per_s: f64,
    /// Bytes/s per GPU and direction.
    pub nvlink_bytes_per_s: f64,
    /// Bytes/s per GPU rank and direction.
    pub tcp_bytes_per_s: f64,
    /// Launch cost per request transfer, ns.
    pub t_launch_ns: f64,
    /// Cost per descriptor, ns.
    pub t_desc_ns: f64,
    /// One-time handshake per (decode, prefill) pair.
    pub t_handshake: SimDuration,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// Descriptor layout.
    pub layout: KvLayout,
    /// Explicit node of each pod.
    pub pod_nodes: Option<Vec<u32>>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferSpec::default()
            .resolve()
            .expect("defaults are valid")
    }
}

/// Why a transfer configuration or pod placement is invalid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A numeric field is out of range.
    #[error("transfer: field \"{field}\": expected {expected}, got {value}")]
    InvalidParameter {
        field: &'static str,
        value: f64,
        expected: &'static str,
    },
    /// `pod_nodes` does not list one node per pod.
    #[error(
        "transfer: field \"pod_nodes\": lists {n_given} nodes but the cluster has {n_pods} pods"
    )]
    PodNodesLength { n_given: usize, n_pods: usize },
    /// A pod needs more GPUs than a node has.
    #[error("transfer: pod {pod} has tensor_parallel_size {tp} but field \"gpus_per_node\" is {gpus_per_node}")]
    PodTooWide {
        pod: u32,
        tp: u32,
        gpus_per_node: u32,
    },
    /// A pod has no GPUs.
    #[error("transfer: pod {pod} has tensor_parallel_size 0")]
    ZeroTp { pod: u32 },
    /// The pods `pod_nodes` puts on one node need more GPUs than it has.
    #[error("transfer: field \"pod_nodes\": node {node} needs {n_gpus} GPUs for its pods but \"gpus_per_node\" is {gpus_per_node}")]
    NodeOverfull {
        node: u32,
        n_gpus: u64,
        gpus_per_node: u32,
    },
    /// `backend: nvlink-only` with pods on more than one node.
    #[error("transfer: field \"backend\": nvlink-only needs every pod on one node, but the pods span {n_nodes} nodes (raise \"gpus_per_node\" or use rdma/tcp)")]
    NvlinkOnlyAcrossNodes { n_nodes: u32 },
}

impl TransferSpec {
    /// Fills defaults and checks ranges; errors name the field and the value.
    pub fn resolve(&self) -> Result<TransferConfig, TransferError> {
        let bw = |field, v: Option<f64>, default| {
            positive(
                field,
                v.unwrap_or(default),
                "a finite number of bytes/s > 0",
            )
        };
        let rdma = bw(
            "rdma_bytes_per_s",
            self.rdma_bytes_per_s,
            DEFAULT_RDMA_BYTES_PER_S,
        )?;
        let nvlink = bw(
            "nvlink_bytes_per_s",
            self.nvlink_bytes_per_s,
            DEFAULT_NVLINK_BYTES_PER_S,
        )?;
        let tcp = bw(
            "tcp_bytes_per_s",
            self.tcp_bytes_per_s,
            DEFAULT_TCP_BYTES_PER_S,
        )?;
        let launch_us = non_negative("t_launch_us", self.t_launch_us, DEFAULT_T_LAUNCH_US)?;
        let desc_us = non_negative("t_desc_us", self.t_desc_us, DEFAULT_T_DESC_US)?;
        let handshake_ms = non_negative(
            "t_handshake_ms",
            self.t_handshake_ms,
            DEFAULT_T_HANDSHAKE_MS,
        )?;
        let gpus_per_node = self.gpus_per_node.unwrap_or(DEFAULT_GPUS_PER_NODE);
        if gpus_per_node == 0 {
            return Err(TransferError::InvalidParameter {
                field: "gpus_per_node",
                value: 0.0,
                expected: "an integer ≥ 1",
            });
        }
        Ok(TransferConfig {
            backend: self.backend.unwrap_or_default(),
            rdma_bytes_per_s: rdma,
            nvlink_bytes_per_s: nvlink,
            tcp_bytes_per_s: tcp,
            t_launch_ns: launch_us * 1e3,
            t_desc_ns: desc_us * 1e3,
            // ms → ns without going through seconds, so integer ms stay exact.
            t_handshake: SimDuration::from_ns_f64_ceil(handshake_ms * 1e6),
            gpus_per_node,
            layout: self.layout.unwrap_or_default(),
            pod_nodes: self.pod_nodes.clone(),
        })
    }
}

fn positive(field: &'static str, value: f64, expected: &'static str) -> Result<f64, TransferError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(TransferError::InvalidParameter {
            field,
            value,
            expected,
        })
    }
}

fn non_negative(
    field: &'static str,
    value: Option<f64>,
    default: f64,
) -> Result<f64, TransferError> {
    let value = value.unwrap_or(default);
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(TransferError::InvalidParameter {
            field,
            value,
            expected: "a finite number ≥ 0",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<TransferSpec, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = TransferConfig::default();
        assert_eq!(c.backend, Backend::Rdma);
        assert_eq!(c.rdma_bytes_per_s, 40e9);
        assert_eq!(c.nvlink_bytes_per_s, 300e9);
        assert_eq!(c.tcp_bytes_per_s, 2e9);
        assert_eq!(c.t_launch_ns, 1_000_000.0);
        assert_eq!(c.t_desc_ns, 2_000.0);
        assert_eq!(c.t_handshake, SimDuration::from_ms(2000));
        assert_eq!(c.gpus_per_node, 8);
        assert_eq!(c.layout, KvLayout::FlashAttn);
        assert_eq!(c.pod_nodes, None);
    }

    #[test]
    fn parses_every_field_and_variant_names() {
        let s = parse(
            "{backend: nvlink-only, rdma_bytes_per_s: 25e9, nvlink_bytes_per_s: 4.5e11, \
             tcp_bytes_per_s: 1e9, t_launch_us: 500, t_desc_us: 1.5, t_handshake_ms: 0, \
             gpus_per_node: 4, layout: flash_infer, pod_nodes: [0, 0, 1]}",
        )
        .unwrap();
        let c = s.resolve().unwrap();
        assert_eq!(c.backend, Backend::NvlinkOnly);
        assert_eq!(c.rdma_bytes_per_s, 25e9);
        assert_eq!(c.nvlink_bytes_per_s, 450e9);
        assert_eq!(c.tcp_bytes_per_s, 1e9);
        assert_eq!(c.t_launch_ns, 500_000.0);
        assert_eq!(c.t_desc_ns, 1_500.0);
        assert_eq!(c.t_handshake, SimDuration::ZERO);
        assert_eq!(c.gpus_per_node, 4);
        assert_eq!(c.layout, KvLayout::FlashInfer);
        assert_eq!(c.pod_nodes, Some(vec![0, 0, 1]));
        assert_eq!(parse("{backend: tcp}").unwrap().backend, Some(Backend::Tcp));
        assert_eq!(
            parse("{layout: flash_attn}").unwrap().layout,
            Some(KvLayout::FlashAttn)
        );
    }

    #[test]
    fn unknown_fields_and_variants_are_rejected() {
        let e = parse("{rdma_bandwidth: 1e9}").unwrap_err().to_string();
        assert!(e.contains("unknown field `rdma_bandwidth`"), "{e}");
        let e = parse("{backend: infiniband}").unwrap_err().to_string();
        assert!(e.contains("unknown variant `infiniband`"), "{e}");
        let e = parse("{layout: paged}").unwrap_err().to_string();
        assert!(e.contains("unknown variant `paged`"), "{e}");
    }

    #[test]
    fn invalid_values_name_field_and_value() {
        let e = parse("{rdma_bytes_per_s: 0}")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert_eq!(
            e,
            TransferError::InvalidParameter {
                field: "rdma_bytes_per_s",
                value: 0.0,
                expected: "a finite number of bytes/s > 0",
            }
        );
        assert_eq!(
            e.to_string(),
            "transfer: field \"rdma_bytes_per_s\": expected a finite number of bytes/s > 0, got 0"
        );
        let e = parse("{t_desc_us: -2}").unwrap().resolve().unwrap_err();
        assert!(e.to_string().contains("\"t_desc_us\""), "{e}");
        assert!(e.to_string().contains("got -2"), "{e}");
        let e = parse("{nvlink_bytes_per_s: .nan}")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("\"nvlink_bytes_per_s\""), "{e}");
        let e = parse("{t_handshake_ms: .inf}")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("\"t_handshake_ms\""), "{e}");
        let e = parse("{gpus_per_node: 0}").unwrap().resolve().unwrap_err();
        assert!(e.to_string().contains("\"gpus_per_node\""), "{e}");
    }

    #[test]
    fn handshake_ms_converts_exactly() {
        let c = parse("{t_handshake_ms: 0.5}").unwrap().resolve().unwrap();
        assert_eq!(c.t_handshake, SimDuration::from_us(500));
    }
}
