//! Filters: narrow the candidate list before scoring.
//!
//! `prefix-cache-affinity-filter` is not implemented: it needs the prefix
//! match before any profile runs (a HEAD data producer), which this library
//! computes inside the prefix scorers.

pub mod role;
pub mod saturation;
