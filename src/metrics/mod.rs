//! Per-request records, per-pod samples and run summaries.

pub mod baseline;
pub mod histogram;
pub mod percentile;
pub mod summary;
