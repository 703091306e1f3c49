//! Unique random prompts with given length distributions (`workload.random`).
//!
//! Like the Azure importer, each prompt is a single hash id no other request
//! shares (no token storage), so only lengths matter. Lengths may be
//! `from_trace` to replay a trace's length mix at a different arrival process.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::length::{LengthDist, LengthSampler};
use super::Body;
use crate::engine::rng::{RngStreams, StreamRng};
use crate::trace::error::TraceError;
use crate::trace::request::Prompt;

/// Hash ids of random prompts start here.
pub const RANDOM_ID_BASE: u64 = 0x5A_0000_0000_0000;

/// `workload.random` (defaults in parentheses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomSpec {
    /// Prompt length (default 1024).
    pub input_len: LengthDist,
    /// Output length (default 128).
    pub output_len: LengthDist,
}

impl Default for RandomSpec {
    fn default() -> Self {
        RandomSpec {
            input_len: LengthDist::Fixed(1024),
            output_len: LengthDist::Fixed(128),
        }
    }
}

/// Endless unique prompts.
pub struct RandomGen {
    input: LengthSampler,
    output: LengthSampler,
    rng: StreamRng,
    i: u64,
}

impl RandomGen {
    /// The generator (lengths from `workload.lengths`).
    pub fn new(
        spec: &RandomSpec,
        base_dir: &Path,
        rng: &RngStreams,
    ) -> Result<RandomGen, TraceError> {
        Ok(RandomGen {
            input: spec.input_len.sampler("random.input_len", base_dir)?,
            output: spec.output_len.sampler("random.output_len", base_dir)?,
            rng: rng.stream("workload.lengths"),
            i: 0,
        })
    }
}

impl Iterator for RandomGen {
    type Item = Body;
    fn next(&mut self) -> Option<Body> {
        let n = self.input.sample(&mut self.rng);
        let out = self.output.sample(&mut self.rng);
        let id = RANDOM_ID_BASE + self.i;
        self.i += 1;
        Some(Body {
            prompt: Prompt::HashIds {
                ids: if n == 0 { vec![] } else { vec![id] },
                tokens_per_id: n.max(1),
                n_tokens: n,
            },
            output_len: out,
            session_id: None,
            output_token_ids: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_unique_with_requested_lengths() {
        let spec = RandomSpec {
            input_len: LengthDist::Fixed(100),
            output_len: LengthDist::Uniform { min: 1, max: 5 },
        };
        let g = RandomGen::new(&spec, Path::new("."), &RngStreams::new(1)).unwrap();
        let b: Vec<Body> = g.take(50).collect();
        let mut keys = std::collections::BTreeSet::new();
        for x in &b {
            assert_eq!(x.prompt.n_tokens(), 100);
            assert!((1..=5).contains(&x.output_len));
            for k in x.prompt.block_keys(16, None) {
                assert!(keys.insert(k));
            }
        }
        assert_eq!(keys.len(), 50 * 6);
    }
}
