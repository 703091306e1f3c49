//! kvsim: a deterministic discrete-event simulator of KV-cache-aware routing
//! in llm-d style LLM serving clusters.

pub mod compat;
pub mod catalog;
pub mod cluster;
pub mod conformance;
pub mod engine;
pub mod epp;
pub mod index;
pub mod kv;
pub mod metrics;
pub mod pod;
pub mod report;
pub mod trace;
