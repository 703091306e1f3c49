//! The request record every workload source produces.

/// One request as a workload (trace file or generator) produces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRequest {
    /// Position in the workload, 0-based, dense, in arrival order.
    pub id: u64,
    /// Arrival time at the router in nanoseconds since workload start.
    pub arrival_ns: u64,
    /// Prompt content: explicit tokens or chained-prefix hash ids.
    pub prompt: Prompt,
    /// Number of output tokens to generate (`max_tokens`; never stops early).
    pub output_len: u32,
    /// Conversation or session the request belongs to, if known.
    pub session_id: Option<u64>,
    /// vLLM `cache_salt`: changes the hash of the first block and every later one.
    pub cache_salt: Option<String>,
    /// Output token ids the engine should emit (multi-turn generators set
    /// them so the next turn's prompt shares the answer's blocks).
    pub output_token_ids: Option<Vec<u32>>,
}

/// What the prompt of a request consists of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// Explicit token ids.
    Tokens(Vec<u32>),
    /// Chained-prefix hash ids (Mooncake `hash_ids` style): id `i` covers tokens
    /// `[i * tokens_per_id, min((i + 1) * tokens_per_id, n_tokens))`. An equal id
    /// means equal content of that hash block **and** an equal whole prefix
    /// before it. The last id may cover a partial block.
    HashIds {
        /// One id per hash block, `ceil(n_tokens / tokens_per_id)` of them.
        ids: Vec<u64>,
        /// Tokens per hash block (512 for Mooncake).
        tokens_per_id: u32,
        /// Prompt length in tokens.
        n_tokens: u32,
    },
}

impl Prompt {
    /// Prompt length in tokens.
    pub fn n_tokens(&self) -> u32 {
        match self {
            Prompt::Tokens(t) => t.len() as u32,
            Prompt::HashIds { n_tokens, .. } => *n_tokens,
        }
    }
}
