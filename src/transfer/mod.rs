//! NIXL KV transfer model for P/D disaggregation (`vllm.md` §7, `latency-models.md` §9).
//!
//! The decode pod D pulls a request's KV blocks from the prefill pod P (vLLM's default
//! `NixlConnector` is pull: D issues one NIXL READ per request). Per request:
//! ```text
//! n_blocks = ceil(L/bs) − floor(D_local_hit/bs)                      # cost::blocks_to_pull
//! bytes    = n_blocks · bs · kv_bytes_per_token / tp                 # per decode rank
//! n_desc   = n_blocks · 2 · num_layers   (flash_attn; flash_infer: 1 · num_layers)
//! t        = [t_handshake, once per (D, P) pair] + t_launch + n_desc · t_desc + flow(bytes)
//! ```
//! `flow(bytes)` is `bytes / bandwidth` for a transfer alone; concurrent transfers share links
//! max-min fairly ([`fair_share`], progressive filling, recomputed whenever a sub-flow starts or
//! ends). Links ([`topology`]): per GPU, NVLink egress/ingress within a node (cuda_ipc) and one
//! NIC egress/ingress across nodes (RDMA, or the TCP fallback). Defaults and their sources are
//! in [`spec`].
//!
//! # Use from the event loop
//! The module is pure: no IO, no clock; the caller passes `SimTime`s that never go backwards.
//! ```text
//! let mut net = TransferNet::new(spec.resolve()?, &pod_tps)?;
//! // D admits a P/D request (WAITING_FOR_REMOTE_KVS):
//! let id = net.start(now, p, d, blocks_to_pull(L, d_hit, bs), &KvShape::for_pod(model, bs, tp_d));
//! reschedule(&net);  // if net.generation() changed: push Wake{gen} at net.next_wakeup()
//! // on Wake{gen} (EventClass::TransferDone) with gen == net.generation():
//! for done in net.pop_completed(now) { pods[done.stats.dst_pod].kv_arrived(done.id) }
//! reschedule(&net);
//! ```
//! Wake-ups are needed at every [`TransferNet::next_wakeup`], not only at completions: a
//! transfer whose bytes start flowing changes the others' rates. Stale wake-ups are harmless
//! (`pop_completed` at a time with nothing due returns nothing) and the generation lets the loop
//! skip them.
//!
//! # Decode-side polling (the pod's job)
//! vLLM's D worker polls `check_xfer_state` once per engine step, so a completed transfer becomes
//! visible only at D's next step boundary; on the following `schedule()` the blocks are cached
//! and the request runs one token (the last prompt token is recomputed and the first output
//! token re-sampled). The time D sees is therefore
//! `done_at` rounded up to D's next step end, plus one step. The pod does this alignment with
//! the `done_at` returned here; this module knows nothing of steps. An idle D (only requests
//! waiting for KV) still polls each loop iteration, so it should wake at `done_at`.
//!
//! # Not modelled
//! - Descriptor posting is not serialized per decode worker: concurrent transfers' fixed phases
//!   overlap.
//! - Small-message inefficiency (UCX reaches line rate only above ~256 KiB, ai-dynamo/nixl #922):
//!   fold it into `t_desc_us` or the bandwidths.
//! - P-side block hold and release after D's notification: the pod's job, triggered by
//!   completion.
//! - Cancellation: a started transfer runs to completion; a caller whose request was aborted
//!   ignores the result.

pub mod cost;
pub mod fair_share;
pub mod net;
#[cfg(test)]
mod net_tests;
pub mod spec;
pub mod topology;

pub use cost::{blocks_to_pull, request_cost, KvShape, RequestCost};
pub use net::{TransferDone, TransferId, TransferNet, TransferStats};
pub use spec::{Backend, KvLayout, TransferConfig, TransferError, TransferSpec};
pub use topology::Topology;
