//! Step-time models (placeholder until the catalog/latency module lands).

/// Aggregate shape of one engine step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepShape {
    /// |D|: requests decoding one token this step.
    pub n_decode: u32,
    /// Σ c_i: context length of each decode.
    pub sum_decode_ctx: u64,
    /// |P|.
    pub n_prefill_chunks: u32,
    /// Σ n_j.
    pub n_prefill_tokens: u64,
    /// Σ p_j.
    pub sum_prefill_prior: u64,
    /// Σ (n_j·p_j + n_j²/2).
    pub sum_prefill_attn_pairs: f64,
    /// Prefill chunks that complete their prompt.
    pub n_chunks_finishing: u32,
}
