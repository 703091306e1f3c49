//! Workloads: trace importers, generators, transformations and statistics.
//!
//! Every source produces a stream of [`TraceRequest`]s in arrival order with
//! dense ids. Importers read `impl BufRead` line by line (never a whole
//! file); bad lines are `file:line: field: problem` errors, or are skipped and
//! counted in lenient mode. [`open_workload`] turns a scenario's
//! `workload:` section into such a stream.

pub mod azure;
pub mod error;
pub mod format;
pub mod gen;
pub mod json_line;
pub mod mooncake;
pub mod native;
pub mod reader;
pub mod request;
pub mod spec;
pub mod stats;
pub mod transform;

#[cfg(test)]
mod input_fuzz;

pub use error::{LineError, SkippedLines, TraceError};
pub use format::{open_trace, OpenOptions, RequestIter, TraceFormat};
pub use request::{Prompt, TraceRequest};
pub use spec::{open_workload, WorkloadSpec, WorkloadStream};
