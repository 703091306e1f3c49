//! The single integration-test binary.

/// Every recorded vLLM scheduler run reproduced field by field.
mod conformance_vllm;
