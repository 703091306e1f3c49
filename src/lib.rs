//! kvsim: a deterministic discrete-event simulator of KV-cache-aware routing
//! in llm-d style LLM serving clusters.

pub mod compat;
pub mod conformance;
pub mod engine;
pub mod kv;
pub mod pod;
pub mod trace;
