//! Point-in-time views of a request and of the candidate endpoints.
//!
//! The EPP sees nothing else of the world: the simulator builds these views
//! from (possibly stale) pod state, the production router from scraped
//! metrics. Views borrow their strings so building them allocates nothing.

use std::fmt;
use xxhash_rust::xxh64::xxh64;

/// Identifier of an endpoint (a model-server pod), dense from 0 in the simulator.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(pub u32);

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ep{}", self.0)
    }
}

/// Pod label holding the P/D role (`decode`, `prefill`, `both`, ...).
pub const ROLE_LABEL: &str = "llm-d.ai/role";

/// What the router knows about one endpoint at scheduling time.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct EndpointView<'a> {
    /// Identifier, also the pod identity used by the KV-block index.
    pub id: EndpointId,
    /// `ip:port` (the pod identity of the KV-event topic and of session tokens).
    pub name: &'a str,
    /// Value of the `llm-d.ai/role` label, `None` if unlabeled.
    pub role: Option<&'a str>,
    /// `vllm:num_requests_waiting`.
    pub waiting_queue_len: u32,
    /// `vllm:num_requests_running`.
    pub running_requests: u32,
    /// `vllm:kv_cache_usage_perc`, in [0, 1].
    pub kv_usage: f64,
    /// `num_gpu_blocks` from `vllm:cache_config_info`, if scraped.
    pub num_gpu_blocks: Option<u32>,
    /// `block_size` (tokens) from `vllm:cache_config_info`, if scraped.
    pub block_size_tokens: Option<u32>,
    /// Requests the router has sent and not yet seen complete (HEAD InFlightLoad producer).
    pub in_flight_requests: u32,
    /// Prompt + output tokens of in-flight requests (token-load scorer).
    pub in_flight_tokens: u64,
    /// Age of the scraped metrics at scheduling time (0 = fresh).
    pub metrics_age_ns: u64,
    /// LoRA adapters, from `vllm:lora_requests_info`.
    pub lora: LoraView<'a>,
}

/// The LoRA adapters of one endpoint, as `vllm:lora_requests_info` labels them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoraView<'a> {
    /// `running_lora_adapters`: adapters loaded and serving.
    pub active: &'a [&'a str],
    /// `waiting_lora_adapters`: adapters requests are waiting for.
    pub waiting: &'a [&'a str],
    /// `max_lora`: adapter slots (0 without LoRA).
    pub max_active: u32,
}

impl<'a> EndpointView<'a> {
    /// An idle, unlabeled endpoint with no scraped cache config.
    pub fn new(id: EndpointId, name: &'a str) -> Self {
        EndpointView {
            id,
            name,
            role: None,
            waiting_queue_len: 0,
            running_requests: 0,
            kv_usage: 0.0,
            num_gpu_blocks: None,
            block_size_tokens: None,
            in_flight_requests: 0,
            in_flight_tokens: 0,
            metrics_age_ns: 0,
            lora: LoraView::default(),
        }
    }
}

/// Source of the content hashes the approximate prefix scorer chains.
///
/// Upstream hashes blocks of `B` prompt **characters** (`B = blockSizeTokens × 4`
/// at HEAD, 64 in Y1). kvsim has no prompt text, so it approximates one
/// character block by one block of `B / 4` tokens (the spec's 4 chars/token
/// rule): the simulator hands over a content hash per token block, and the
/// scorer chains them with the model seed exactly as upstream chains
/// character blocks. Prefix-equality of prompts is preserved; only the exact
/// block boundaries (which depend on real text length) are approximated.
pub trait PromptChunks {
    /// Appends to `out` one content hash per consecutive `block_tokens`-token
    /// block of the prompt, at most `max_blocks` hashes, including the
    /// trailing partial block only when `include_partial` is set. Equal
    /// token content at equal position must give equal hashes.
    fn chunk_hashes(
        &self,
        block_tokens: u32,
        max_blocks: usize,
        include_partial: bool,
        out: &mut Vec<u64>,
    );
}

/// A prompt given as explicit token ids.
#[derive(Copy, Clone, Debug)]
pub struct TokenPrompt<'a>(pub &'a [u32]);

impl PromptChunks for TokenPrompt<'_> {
    fn chunk_hashes(
        &self,
        block_tokens: u32,
        max_blocks: usize,
        include_partial: bool,
        out: &mut Vec<u64>,
    ) {
        let bt = block_tokens.max(1) as usize;
        let mut buf: Vec<u8> = Vec::with_capacity(4 * bt);
        for chunk in self.0.chunks(bt).take(max_blocks) {
            if chunk.len() < bt && !include_partial {
                break;
            }
            buf.clear();
            for t in chunk {
                buf.extend_from_slice(&t.to_le_bytes());
            }
            out.push(xxh64(&buf, 0));
        }
    }
}

/// A prompt without content (approximate prefix matching then never hits).
#[derive(Copy, Clone, Debug, Default)]
pub struct NoPrompt;

impl PromptChunks for NoPrompt {
    fn chunk_hashes(&self, _: u32, _: usize, _: bool, _: &mut Vec<u64>) {}
}

/// What the router knows about one request at scheduling time.
#[derive(Copy, Clone)]
pub struct RequestView<'a> {
    /// Request id (`x-request-id`), unique per request.
    pub id: u64,
    /// Target model name.
    pub model: &'a str,
    /// Prompt length in tokens.
    pub n_prompt_tokens: u32,
    /// Chained block keys of the prompt's **full** blocks at the KV-block
    /// index's block size (what `TokensToKVBlockKeys` returns upstream).
    pub block_keys: &'a [u64],
    /// Content source for the approximate prefix scorer's hashing.
    pub prompt: &'a dyn PromptChunks,
    /// `x-session-token` header, already base64-decoded (`namespace/name` or `ip:port`).
    pub session_token: Option<&'a str>,
    /// vLLM `cache_salt`.
    pub cache_salt: Option<&'a str>,
}

impl fmt::Debug for RequestView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestView")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("n_prompt_tokens", &self.n_prompt_tokens)
            .field("n_block_keys", &self.block_keys.len())
            .field("session_token", &self.session_token)
            .field("cache_salt", &self.cache_salt)
            .finish()
    }
}

impl<'a> RequestView<'a> {
    /// A request with no block keys, no content and no session.
    pub fn new(id: u64, model: &'a str, n_prompt_tokens: u32) -> Self {
        RequestView {
            id,
            model,
            n_prompt_tokens,
            block_keys: &[],
            prompt: &NoPrompt,
            session_token: None,
            cache_salt: None,
        }
    }

    /// Approximate prompt length in characters (4 per token).
    pub fn approx_chars(&self) -> u64 {
        u64::from(self.n_prompt_tokens) * CHARS_PER_TOKEN
    }
}

/// Upstream's `AverageCharactersPerToken`.
pub const CHARS_PER_TOKEN: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prompt_chunks_full_and_partial() {
        let toks: Vec<u32> = (0..10).collect();
        let p = TokenPrompt(&toks);
        let mut full = Vec::new();
        p.chunk_hashes(4, 100, false, &mut full);
        assert_eq!(full.len(), 2);
        let mut all = Vec::new();
        p.chunk_hashes(4, 100, true, &mut all);
        assert_eq!(all.len(), 3);
        assert_eq!(&all[..2], &full[..]);
        let mut capped = Vec::new();
        p.chunk_hashes(4, 1, true, &mut capped);
        assert_eq!(capped, vec![full[0]]);
        let other: Vec<u32> = (0..8).map(|t| if t == 5 { 99 } else { t }).collect();
        let mut o = Vec::new();
        TokenPrompt(&other).chunk_hashes(4, 100, false, &mut o);
        assert_eq!(o[0], full[0]);
        assert_ne!(o[1], full[1]);
    }
}
