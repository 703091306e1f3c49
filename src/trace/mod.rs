//! Workloads: trace importers and generators producing [`request::TraceRequest`]s.

pub mod request;
