//! Pods on nodes, and the links a transfer crosses.
//!
//! Every GPU owns four directed links: network egress and ingress (its RDMA NIC, or its TCP
//! endpoint with `backend: tcp`) and NVLink egress and ingress (its NVSwitch ports). A sub-flow
//! from GPU `s` to GPU `d` crosses `s`'s egress and `d`'s ingress: the NVLink pair when both
//! sit on one node, else the network pair. Full duplex: egress and ingress never contend.
//!
//! Placement: pods take `tp` consecutive GPUs. By default they are packed in index order, a pod
//! that does not fit in the current node's free GPUs starting the next node; `pod_nodes` names
//! each pod's node instead (GPUs given out in pod order within a node). A pod never spans nodes.

use std::collections::BTreeMap;

use super::spec::{Backend, TransferConfig, TransferError};

/// A directed link, dense over the cluster's GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

/// The kinds of link every GPU owns, in `LinkId` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// NIC (or TCP endpoint) egress.
    NetEgress = 0,
    /// NIC (or TCP endpoint) ingress.
    NetIngress = 1,
    /// NVLink egress.
    NvlinkEgress = 2,
    /// NVLink ingress.
    NvlinkIngress = 3,
}

const KINDS_PER_GPU: u32 = 4;

/// Where every pod's GPUs are, and what each link carries.
#[derive(Clone, Debug)]
pub struct Topology {
    pod_tp: Vec<u32>,
    pod_first_gpu: Vec<u32>,
    gpu_node: Vec<u32>,
    /// Capacity by [`LinkKind`], bytes/ns.
    kind_bytes_per_ns: [f64; 4],
}

impl Topology {
    /// Places pods with tensor-parallel sizes `pod_tps` (index = pod id).
    pub fn new(cfg: &TransferConfig, pod_tps: &[u32]) -> Result<Topology, TransferError> {
        let gpn = cfg.gpus_per_node;
        for (pod, &tp) in pod_tps.iter().enumerate() {
            let pod = pod as u32;
            if tp == 0 {
                return Err(TransferError::ZeroTp { pod });
            }
            if tp > gpn {
                return Err(TransferError::PodTooWide {
                    pod,
                    tp,
                    gpus_per_node: gpn,
                });
            }
        }
        let pod_nodes = match &cfg.pod_nodes {
            Some(nodes) => dense_nodes(nodes, pod_tps, gpn)?,
            None => packed_nodes(pod_tps, gpn),
        };
        let n_nodes = pod_nodes.iter().map(|&n| n + 1).max().unwrap_or(0);
        if cfg.backend == Backend::NvlinkOnly && n_nodes > 1 {
            return Err(TransferError::NvlinkOnlyAcrossNodes { n_nodes });
        }
        let mut used = vec![0u32; n_nodes as usize];
        let mut pod_first_gpu = Vec::with_capacity(pod_tps.len());
        for (&tp, &node) in pod_tps.iter().zip(&pod_nodes) {
            pod_first_gpu.push(node * gpn + used[node as usize]);
            used[node as usize] += tp;
        }
        let gpu_node = (0..n_nodes * gpn).map(|g| g / gpn).collect();
        let net = match cfg.backend {
            Backend::Rdma | Backend::NvlinkOnly => cfg.rdma_bytes_per_s,
            Backend::Tcp => cfg.tcp_bytes_per_s,
        } * 1e-9;
        let nvl = cfg.nvlink_bytes_per_s * 1e-9;
        Ok(Topology {
            pod_tp: pod_tps.to_vec(),
            pod_first_gpu,
            gpu_node,
            kind_bytes_per_ns: [net, net, nvl, nvl],
        })
    }

    /// Pods placed.
    pub fn n_pods(&self) -> usize {
        self.pod_tp.len()
    }

    /// Tensor-parallel size of `pod`.
    pub fn pod_tp(&self, pod: u32) -> u32 {
        self.pod_tp[pod as usize]
    }

    /// Dense node index of `pod` (explicit `pod_nodes` are renumbered in ascending order).
    pub fn pod_node(&self, pod: u32) -> u32 {
        self.gpu_node[self.pod_first_gpu[pod as usize] as usize]
    }

    /// Global GPU index of rank `rank` of `pod`.
    pub fn gpu(&self, pod: u32, rank: u32) -> u32 {
        debug_assert!(rank < self.pod_tp(pod));
        self.pod_first_gpu[pod as usize] + rank
    }

    /// Links a sub-flow from GPU `src` to GPU `dst` crosses: egress then ingress.
    pub fn path(&self, src: u32, dst: u32) -> [LinkId; 2] {
        let intra = self.gpu_node[src as usize] == self.gpu_node[dst as usize];
        let (out, inn) = if intra {
            (LinkKind::NvlinkEgress, LinkKind::NvlinkIngress)
        } else {
            (LinkKind::NetEgress, LinkKind::NetIngress)
        };
        [link(src, out), link(dst, inn)]
    }

    /// Capacity of `l`, bytes/ns.
    pub fn capacity_bytes_per_ns(&self, l: LinkId) -> f64 {
        self.kind_bytes_per_ns[(l.0 % KINDS_PER_GPU) as usize]
    }
}

fn link(gpu: u32, kind: LinkKind) -> LinkId {
    LinkId(gpu * KINDS_PER_GPU + kind as u32)
}

/// Packs pods in index order; a pod that does not fit starts a new node.
fn packed_nodes(pod_tps: &[u32], gpn: u32) -> Vec<u32> {
    let (mut node, mut used) = (0u32, 0u32);
    pod_tps
        .iter()
        .map(|&tp| {
            if used + tp > gpn {
                node += 1;
                used = 0;
            }
            used += tp;
            node
        })
        .collect()
}

/// Renumbers explicit node names densely (ascending) and checks each node's GPU count.
fn dense_nodes(nodes: &[u32], pod_tps: &[u32], gpn: u32) -> Result<Vec<u32>, TransferError> {
    if nodes.len() != pod_tps.len() {
        return Err(TransferError::PodNodesLength {
            n_given: nodes.len(),
            n_pods: pod_tps.len(),
        });
    }
    let mut need: BTreeMap<u32, u64> = BTreeMap::new();
    for (&n, &tp) in nodes.iter().zip(pod_tps) {
        *need.entry(n).or_default() += u64::from(tp);
    }
    if let Some((&node, &n_gpus)) = need.iter().find(|(_, &g)| g > u64::from(gpn)) {
        return Err(TransferError::NodeOverfull {
            node,
            n_gpus,
            gpus_per_node: gpn,
        });
    }
    let dense: BTreeMap<u32, u32> = need
        .keys()
        .enumerate()
        .map(|(i, &n)| (n, i as u32))
        .collect();
    Ok(nodes.iter().map(|n| dense[n]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::spec::TransferSpec;

    fn cfg(yaml: &str) -> TransferConfig {
        serde_yaml_ng::from_str::<TransferSpec>(yaml)
            .unwrap()
            .resolve()
            .unwrap()
    }

    #[test]
    fn packs_pods_in_index_order_without_splitting() {
        let t = Topology::new(&cfg("{gpus_per_node: 4}"), &[2, 1, 2, 4, 1]).unwrap();
        // Node 0: pod 0 (GPUs 0-1), pod 1 (GPU 2); pod 2 does not fit in 1 GPU ⇒ node 1.
        assert_eq!(
            (0..5).map(|p| t.pod_node(p)).collect::<Vec<_>>(),
            [0, 0, 1, 2, 3]
        );
        assert_eq!(t.gpu(0, 1), 1);
        assert_eq!(t.gpu(1, 0), 2);
        assert_eq!(t.gpu(2, 0), 4);
        assert_eq!(t.gpu(3, 3), 11);
        assert_eq!(t.gpu(4, 0), 12);
    }

    #[test]
    fn intra_node_uses_nvlink_and_inter_node_the_network() {
        let t = Topology::new(&cfg("{gpus_per_node: 2}"), &[1, 1, 1]).unwrap();
        let [e, i] = t.path(t.gpu(0, 0), t.gpu(1, 0));
        assert_eq!(t.capacity_bytes_per_ns(e), 300.0);
        assert_eq!(t.capacity_bytes_per_ns(i), 300.0);
        let [e, i] = t.path(t.gpu(0, 0), t.gpu(2, 0));
        assert_eq!(t.capacity_bytes_per_ns(e), 40.0);
        assert_eq!(t.capacity_bytes_per_ns(i), 40.0);
        assert_ne!(e, i);
        let tcp = Topology::new(&cfg("{gpus_per_node: 2, backend: tcp}"), &[1, 1, 1]).unwrap();
        let [e, _] = tcp.path(0, tcp.gpu(2, 0));
        assert_eq!(tcp.capacity_bytes_per_ns(e), 2.0);
    }

    #[test]
    fn explicit_nodes_are_renumbered_and_checked() {
        let t = Topology::new(&cfg("{pod_nodes: [7, 3, 7]}"), &[1, 1, 1]).unwrap();
        assert_eq!([t.pod_node(0), t.pod_node(1), t.pod_node(2)], [1, 0, 1]);
        assert_eq!(t.gpu(2, 0), 9);
        let e = Topology::new(&cfg("{pod_nodes: [0, 0]}"), &[1, 1, 1]).unwrap_err();
        assert_eq!(
            e,
            TransferError::PodNodesLength {
                n_given: 2,
                n_pods: 3
            }
        );
        let e = Topology::new(&cfg("{pod_nodes: [5, 5], gpus_per_node: 4}"), &[2, 4]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "transfer: field \"pod_nodes\": node 5 needs 6 GPUs for its pods but \"gpus_per_node\" is 4"
        );
    }

    #[test]
    fn bad_placements_are_errors() {
        let e = Topology::new(&cfg("{gpus_per_node: 4}"), &[8]).unwrap_err();
        assert!(e.to_string().contains("\"gpus_per_node\" is 4"), "{e}");
        assert_eq!(
            Topology::new(&cfg("{}"), &[1, 0]).unwrap_err(),
            TransferError::ZeroTp { pod: 1 }
        );
        let e = Topology::new(&cfg("{backend: nvlink-only, gpus_per_node: 2}"), &[1, 1, 1])
            .unwrap_err();
        assert_eq!(e, TransferError::NvlinkOnlyAcrossNodes { n_nodes: 2 });
        assert!(Topology::new(&cfg("{backend: nvlink-only}"), &[1, 1, 1]).is_ok());
    }
}
