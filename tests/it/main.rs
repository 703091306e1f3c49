//! The single integration-test binary.

/// Every recorded vLLM scheduler run reproduced field by field.
mod conformance_vllm;

/// The binary end to end: outputs, determinism, errors.
mod cli;

/// EPP scorer/picker fixtures run through the library.
mod epp_conformance;

/// Module-boundary and doc checks.
mod tidy;

/// Trace importers and curves on the real traces.
mod traces;

/// The EPP driving a cluster: lag, oracle parity, hit rates, collapse.
mod epp_cluster;

/// llm-d ModelService / ConfigMap import.
mod modelservice;

/// The seed deployment scenario.
mod seed;

/// `kvsim sweep` and `kvsim plan` through the binary.
mod sweep_plan;
