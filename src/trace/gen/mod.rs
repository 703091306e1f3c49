//! Seeded, deterministic workload generators.
//!
//! Content generators yield [`Body`]s (prompt and output, no time); [`timed`]
//! attaches arrival times from an [`arrival::ArrivalProcess`] and dense ids.
//! The chat generator times its own turns. Generated prompts are explicit
//! token ids, so requests that share a prefix share exactly its blocks.
//! Streams: `workload.arrivals`, `workload.lengths`, `workload.tokens`,
//! `workload.shuffle`, `workload.answers`, `workload.chat[.system]`.

pub mod arrival;
pub mod chat;
pub mod length;
pub mod random;
pub mod shared_prefix;

use crate::trace::error::TraceError;
use crate::trace::request::{Prompt, TraceRequest};

/// A request without its arrival time and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// Prompt.
    pub prompt: Prompt,
    /// Output tokens to generate.
    pub output_len: u32,
    /// Session, for multi-turn workloads.
    pub session_id: Option<u64>,
    /// Exact answer tokens, for multi-turn workloads (see [`TraceRequest`]).
    pub output_token_ids: Option<Vec<u32>>,
}

/// Zips bodies with arrival times; ends when either ends.
pub fn timed<B, T>(
    bodies: B,
    times: T,
) -> impl Iterator<Item = Result<TraceRequest, TraceError>> + Send
where
    B: Iterator<Item = Body> + Send,
    T: Iterator<Item = u64> + Send,
{
    bodies.zip(times).enumerate().map(|(i, (b, t))| {
        Ok(TraceRequest {
            id: i as u64,
            arrival_ns: t,
            prompt: b.prompt,
            output_len: b.output_len,
            session_id: b.session_id,
            cache_salt: None,
            output_token_ids: b.output_token_ids,
        })
    })
}
