//! `kvsim trace stats`: counts, rates, length distributions, block reuse and
//! the ideal prefix hit rate of a workload.
//!
//! Definitions (also in `docs/trace-format.md`):
//! - duration = last arrival − first arrival; rate = n_requests / duration.
//! - percentiles are nearest-rank on sorted values: p-th = v[ceil(p/100·n) − 1].
//! - blocks are the full KV blocks of each prompt ([`Prompt::block_keys`]);
//!   unique blocks = distinct keys over the whole workload.
//! - ideal hit rate (one infinite cache, requests in arrival order): a
//!   request's hit blocks = the longest prefix of its blocks all seen before;
//!   block-weighted = Σ hit blocks / Σ full blocks; token-weighted =
//!   Σ hit blocks·block_size / Σ prompt tokens (partial last blocks count in
//!   the denominator only).
//!
//! [`Prompt::block_keys`]: super::request::Prompt::block_keys

use rustc_hash::FxHashSet;
use serde::Serialize;

use super::request::TraceRequest;
use crate::metrics::percentile::rank_index;

/// Summary of a length distribution.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LengthSummary {
    /// Mean.
    pub mean: f64,
    /// Nearest-rank median.
    pub p50: u32,
    /// Nearest-rank 90th percentile.
    pub p90: u32,
    /// Nearest-rank 99th percentile.
    pub p99: u32,
    /// Maximum.
    pub max: u32,
}

impl LengthSummary {
    /// Summary of `values` (sorted in place).
    pub fn of(values: &mut [u32]) -> LengthSummary {
        if values.is_empty() {
            return LengthSummary::default();
        }
        values.sort_unstable();
        let sum: u64 = values.iter().map(|&v| v as u64).sum();
        LengthSummary {
            mean: sum as f64 / values.len() as f64,
            p50: nearest_rank(values, 50.0),
            p90: nearest_rank(values, 90.0),
            p99: nearest_rank(values, 99.0),
            max: *values.last().unwrap_or(&0),
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `v`.
pub fn nearest_rank(v: &[u32], p: f64) -> u32 {
    v[rank_index(v.len(), p / 100.0)]
}

/// Statistics of a workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceStats {
    /// Requests.
    pub n_requests: u64,
    /// Distinct session ids.
    pub n_sessions: u64,
    /// Last − first arrival, seconds.
    pub duration_s: f64,
    /// n_requests / duration_s (0 when the duration is 0).
    pub rate_per_s: f64,
    /// Prompt lengths.
    pub input_len: LengthSummary,
    /// Output lengths.
    pub output_len: LengthSummary,
    /// KV block size the block statistics use.
    pub block_size: u32,
    /// Σ prompt tokens.
    pub n_prompt_tokens: u64,
    /// Σ full blocks over all prompts.
    pub n_blocks_total: u64,
    /// Distinct block keys.
    pub n_blocks_unique: u64,
    /// Σ hit blocks with an infinite cache.
    pub n_blocks_hit_ideal: u64,
    /// Ideal hit rate, block-weighted.
    pub ideal_hit_rate_blocks: f64,
    /// Ideal hit rate, token-weighted.
    pub ideal_hit_rate_tokens: f64,
}

/// Accumulates [`TraceStats`] one request at a time.
pub struct StatsAccumulator {
    block_size: u32,
    inputs: Vec<u32>,
    outputs: Vec<u32>,
    sessions: FxHashSet<u64>,
    seen: FxHashSet<u64>,
    keys: Vec<u64>,
    first_ns: Option<u64>,
    last_ns: u64,
    n_prompt_tokens: u64,
    n_blocks_total: u64,
    n_blocks_hit: u64,
}

impl StatsAccumulator {
    /// An empty accumulator for blocks of `block_size` tokens.
    pub fn new(block_size: u32) -> StatsAccumulator {
        StatsAccumulator {
            block_size,
            inputs: Vec::new(),
            outputs: Vec::new(),
            sessions: FxHashSet::default(),
            seen: FxHashSet::default(),
            keys: Vec::new(),
            first_ns: None,
            last_ns: 0,
            n_prompt_tokens: 0,
            n_blocks_total: 0,
            n_blocks_hit: 0,
        }
    }

    /// Adds one request (in arrival order).
    pub fn push(&mut self, req: &TraceRequest) {
        self.first_ns.get_or_insert(req.arrival_ns);
        self.last_ns = req.arrival_ns;
        let n_tokens = req.prompt.n_tokens();
        self.inputs.push(n_tokens);
        self.outputs.push(req.output_len);
        if let Some(s) = req.session_id {
            self.sessions.insert(s);
        }
        self.n_prompt_tokens += n_tokens as u64;
        req.prompt
            .block_keys_into(self.block_size, req.cache_salt.as_deref(), &mut self.keys);
        self.n_blocks_total += self.keys.len() as u64;
        self.n_blocks_hit += self
            .keys
            .iter()
            .take_while(|k| self.seen.contains(k))
            .count() as u64;
        self.seen.extend(self.keys.iter().copied());
    }

    /// The statistics.
    pub fn finish(mut self) -> TraceStats {
        let n = self.inputs.len() as u64;
        let duration_s = (self.last_ns - self.first_ns.unwrap_or(0)) as f64 * 1e-9;
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        TraceStats {
            n_requests: n,
            n_sessions: self.sessions.len() as u64,
            duration_s,
            rate_per_s: if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            },
            input_len: LengthSummary::of(&mut self.inputs),
            output_len: LengthSummary::of(&mut self.outputs),
            block_size: self.block_size,
            n_prompt_tokens: self.n_prompt_tokens,
            n_blocks_total: self.n_blocks_total,
            n_blocks_unique: self.seen.len() as u64,
            n_blocks_hit_ideal: self.n_blocks_hit,
            ideal_hit_rate_blocks: ratio(self.n_blocks_hit, self.n_blocks_total),
            ideal_hit_rate_tokens: ratio(
                self.n_blocks_hit * self.block_size as u64,
                self.n_prompt_tokens,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::request::Prompt;

    fn req(arrival_ns: u64, ids: &[u64], n_tokens: u32) -> TraceRequest {
        TraceRequest {
            id: 0,
            arrival_ns,
            prompt: Prompt::HashIds {
                ids: ids.to_vec(),
                tokens_per_id: 16,
                n_tokens,
            },
            output_len: n_tokens / 2,
            session_id: None,
            cache_salt: None,
            output_token_ids: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=10).rev().collect();
        let s = LengthSummary::of(&mut v);
        assert_eq!((s.p50, s.p90, s.p99, s.max), (5, 9, 10, 10));
        assert_eq!(s.mean, 5.5);
        assert_eq!(nearest_rank(&[7], 0.0), 7);
    }

    #[test]
    fn ideal_hit_rate_hand_computed() {
        // Block size 16 = tokens per id, so each id is one block.
        // r0: [1,2,3] 48 tokens: 0 hits.  r1: [1,2,4] 40 tokens (2 full blocks +
        // 8): hits 1,2 = 2.  r2: [1,5,3]: hits 1 only (prefix stops at 5) = 1.
        // Blocks: 3 + 2 + 3 = 8, hits 3 => 3/8. Tokens: 48+40+48 = 136, hit
        // tokens 3*16 = 48 => 48/136.
        let mut acc = StatsAccumulator::new(16);
        acc.push(&req(1_000_000_000, &[1, 2, 3], 48));
        acc.push(&req(2_000_000_000, &[1, 2, 4], 40));
        acc.push(&req(3_000_000_000, &[1, 5, 6], 48));
        let s = acc.finish();
        assert_eq!(
            (s.n_requests, s.n_blocks_total, s.n_blocks_hit_ideal),
            (3, 8, 3)
        );
        assert_eq!(s.ideal_hit_rate_blocks, 3.0 / 8.0);
        assert_eq!(s.ideal_hit_rate_tokens, 48.0 / 136.0);
        // r1's id 4 covers only a partial block, so r1 adds no key; r2 adds
        // two (ids 5 and 6): 3 + 0 + 2 distinct keys.
        assert_eq!(s.n_blocks_unique, 5);
        assert_eq!(s.duration_s, 2.0);
        assert_eq!(s.rate_per_s, 1.5);
    }
}
