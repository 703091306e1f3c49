//! kvsim: a deterministic discrete-event simulator of KV-cache-aware routing
//! in llm-d style LLM serving clusters.

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
