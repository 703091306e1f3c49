//! One vLLM V1 engine: scheduler, requests, step-time models.

pub mod capacity;
pub mod engine;
pub mod latency;
pub mod request;
pub mod scheduler;
#[cfg(test)]
mod scheduler_tests;
