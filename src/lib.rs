//! kvsim: a deterministic discrete-event simulator of KV-cache-aware routing
//! in llm-d style LLM serving clusters.
//!
//! The `kvsim` binary (`src/cli`) is the usual entry point; the library runs
//! the same simulation in code:
//!
//! ```
//! use kvsim::cluster::{router::Router, Routing, Simulation};
//! use kvsim::engine::{rng::RngStreams, time::SimDuration};
//! use kvsim::scenario::resolve::{resolve_text, Overrides};
//! use kvsim::trace::request::{Prompt, TraceRequest};
//!
//! // Two H100 pods serving Llama-3.2-1B (the workload section is replaced below).
//! let yaml = "pods: [{count: 2, gpu: H100, model: Llama-3.2-1B}]\nworkload: {trace: {path: none.jsonl}}\n";
//! let resolved = resolve_text("doc.yaml".as_ref(), yaml, ".".as_ref(), "doc", &Overrides::default()).unwrap();
//! let pods = resolved.build_pods(&RngStreams::new(1));
//! // Ten requests 10 ms apart sharing a 512-token prefix.
//! let workload = (0..10u64).map(|i| {
//!     let mut tokens: Vec<u32> = (0..512).collect();
//!     tokens.extend((0..64).map(|k| 10_000 + 100 * i as u32 + k));
//!     TraceRequest { id: i, arrival_ns: i * 10_000_000, prompt: Prompt::Tokens(tokens), output_len: 16,
//!                    session_id: None, cache_salt: None, output_token_ids: None }
//! });
//! let routing = Routing::Simple(Router::RoundRobin { next: 0 });
//! let run = Simulation::new(pods, routing, workload, SimDuration::ZERO).run(&mut ());
//! let (summary, _records) = kvsim::metrics::summary::summarize(&run);
//! assert_eq!(summary.requests_completed, 10);
//! // After each pod's first request, the 512-token prefix (32 blocks) hits.
//! assert!(summary.hit_rate > 0.6);
//! ```

pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod compat;
pub mod conformance;
pub mod curve;
pub mod engine;
pub mod epp;
pub mod index;
pub mod kv;
pub mod metrics;
pub mod pod;
pub mod report;
pub mod scenario;
pub mod trace;
pub mod transfer;

#[cfg(test)]
mod test_support;
