//! Conformance runners: replay recorded workloads of reference systems
//! through kvsim's models, step by step, and emit the reference's schema.

pub mod vllm;
