//! A request inside one vLLM engine: vLLM's `Request` fields that matter to
//! scheduling and the KV cache.

use crate::kv::hasher::{prompt_token_at, synth_token, BlockHasher, ChainState};
use crate::trace::request::Prompt;

/// Where a request is in the engine (`RequestStatus`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReqStatus {
    /// New, never scheduled.
    Waiting,
    /// Admitted and holding blocks.
    Running,
    /// Preempted (recompute); back in the waiting queue.
    Preempted,
    /// P/D decode side: blocks allocated, waiting for the KV pull from the prefill pod.
    WaitingForRemoteKvs,
    /// Done (length-capped).
    Finished,
}

/// A request's part in P/D disaggregation (vLLM's `kv_transfer_params`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvTransfer {
    /// Served entirely by this pod.
    #[default]
    Local,
    /// Prefill side (`do_remote_decode`): on finish, keep the blocks for the
    /// decode pod to pull instead of freeing them.
    Produce,
    /// Decode side (`do_remote_prefill`): pull what the local prefix cache
    /// lacks from the prefill pod, then recompute the last prompt token.
    Consume,
}

/// What the engine emits as output tokens.
#[derive(Clone, Debug)]
pub enum OutputTokens {
    /// The same token every time (the conformance oracle's `sample_token_id`).
    Constant(u32),
    /// Given ids (e.g. a multi-turn generator's answer), then synthetic past their end.
    Given(Vec<u32>),
    /// Synthetic ids unique to this request (derived from the seed).
    Synthetic(u64),
}

/// Where a new request's prompt block keys come from.
#[derive(Clone, Copy, Debug)]
pub enum PromptKeys<'a> {
    /// Hash the prompt with this hasher.
    Hash(&'a BlockHasher),
    /// Hashed by the pod's own hasher when the request reaches it
    /// ([`PodRequest::hash_prompt`]): on the pod's thread, not the router's.
    Deferred,
}

/// One request's engine-side state.
#[derive(Clone, Debug)]
pub struct PodRequest {
    /// Caller's id (global request id).
    pub id: u64,
    /// Prompt content.
    pub prompt: Prompt,
    /// vLLM cache salt.
    pub cache_salt: Option<String>,
    /// Output tokens the engine samples.
    pub output: OutputTokens,
    /// Prompt length in tokens.
    pub prompt_len: u32,
    /// `max_tokens`: the request finishes after this many output tokens.
    pub max_tokens: u32,
    /// Scheduling priority (lower runs first under the `priority` policy).
    pub priority: i32,
    /// Arrival order key for the `priority` policy (arrival time or step).
    pub arrival_key: u64,
    /// Output tokens appended so far.
    pub num_output_tokens: u32,
    /// Tokens whose KV is computed or scheduled (advanced at schedule time).
    pub num_computed_tokens: u32,
    /// Async scheduling: tokens sampled by in-flight steps, not yet appended.
    pub num_output_placeholders: u32,
    /// Times preempted.
    pub num_preemptions: u32,
    /// Status.
    pub status: ReqStatus,
    /// Keys of every full block of tokens known so far (prompt and output);
    /// emptied when the request finishes.
    pub block_hashes: Vec<u64>,
    chain: ChainState,
    /// Block table: physical block ids in logical order.
    pub blocks: Vec<u32>,
    /// Built with [`PromptKeys::Deferred`] and not hashed yet.
    keys_deferred: bool,
    /// Leading blocks of the table that are already cached (hashed).
    pub num_cached_blocks: u32,
    /// Prefix-cache hit (tokens) at first admission, once admitted.
    pub num_cached_tokens: Option<u32>,
    /// Tokens scheduled in total, recompute after preemption included.
    pub num_scheduled_tokens_total: u64,
    /// Simulated timestamps, filled in by the timed pod.
    pub times: RequestTimes,
    /// P/D role of this request on this pod.
    pub kv_transfer: KvTransfer,
}

/// When things happened to a request, in ns since scenario start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTimes {
    /// Arrival at the router.
    pub arrival_ns: u64,
    /// Arrival at the pod (after routing).
    pub dispatch_ns: u64,
    /// First admission into a step.
    pub first_scheduled_ns: Option<u64>,
    /// First output token.
    pub first_token_ns: Option<u64>,
    /// Latest output token.
    pub last_token_ns: Option<u64>,
}

impl PodRequest {
    /// Builds a request with the keys of its full prompt blocks (vLLM hashes
    /// eagerly).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        prompt: Prompt,
        cache_salt: Option<String>,
        output: OutputTokens,
        max_tokens: u32,
        priority: i32,
        arrival_key: u64,
        keys: PromptKeys<'_>,
        block_size: u32,
    ) -> PodRequest {
        let prompt_len = prompt.n_tokens();
        let deferred = matches!(keys, PromptKeys::Deferred);
        let n_reserved = if deferred {
            0
        } else {
            seq_blocks(prompt_len, max_tokens, block_size)
        };
        let mut block_hashes = Vec::with_capacity(n_reserved);
        let chain = match keys {
            PromptKeys::Hash(hasher) => {
                let mut chain = ChainState::default();
                hasher.prompt_keys(
                    &prompt,
                    block_size,
                    cache_salt.as_deref(),
                    &mut chain,
                    &mut block_hashes,
                );
                chain
            }
            PromptKeys::Deferred => ChainState::default(),
        };
        PodRequest {
            id,
            prompt,
            cache_salt,
            output,
            prompt_len,
            max_tokens,
            priority,
            arrival_key,
            num_output_tokens: 0,
            num_computed_tokens: 0,
            num_output_placeholders: 0,
            num_preemptions: 0,
            status: ReqStatus::Waiting,
            block_hashes,
            chain,
            blocks: Vec::with_capacity(n_reserved),
            keys_deferred: deferred,
            num_cached_blocks: 0,
            num_cached_tokens: None,
            num_scheduled_tokens_total: 0,
            times: RequestTimes::default(),
            kv_transfer: KvTransfer::Local,
        }
    }

    /// Hashes the prompt with `hasher` at `block_size` if it was built with
    /// [`PromptKeys::Deferred`] (a pod calls this as the request reaches it).
    pub fn hash_prompt(&mut self, hasher: &BlockHasher, block_size: u32) {
        if !std::mem::take(&mut self.keys_deferred) {
            return;
        }
        let n_seq_blocks = seq_blocks(self.prompt_len, self.max_tokens, block_size);
        self.block_hashes.reserve_exact(n_seq_blocks);
        self.blocks.reserve_exact(n_seq_blocks);
        hasher.prompt_keys(
            &self.prompt,
            block_size,
            self.cache_salt.as_deref(),
            &mut self.chain,
            &mut self.block_hashes,
        );
    }

    /// Prompt plus appended output tokens.
    pub fn num_tokens(&self) -> u32 {
        self.prompt_len + self.num_output_tokens
    }

    /// The token ids at positions `start..start + out.len()`: a block's
    /// worth at a time, the output kind decided once per call.
    pub fn fill_tokens(&self, start: u32, out: &mut [u32]) {
        let n_prompt = (self.prompt_len.saturating_sub(start) as usize).min(out.len());
        let (prompt, output) = out.split_at_mut(n_prompt);
        for (pos, t) in (start..).zip(prompt) {
            *t = prompt_token_at(&self.prompt, pos);
        }
        let first = start + n_prompt as u32;
        match &self.output {
            OutputTokens::Constant(c) => output.fill(*c),
            OutputTokens::Synthetic(seed) => {
                for (pos, t) in (first..).zip(output) {
                    *t = synth_token(*seed, pos);
                }
            }
            OutputTokens::Given(ids) => {
                for (pos, t) in (first..).zip(output) {
                    let k = (pos - self.prompt_len) as usize;
                    *t = match ids.get(k) {
                        Some(&id) => id,
                        None => synth_token(self.id ^ 0x6f75_7470_7574, pos),
                    };
                }
            }
        }
    }

    /// Appends one sampled output token, hashing a block it completes.
    /// Returns true when the request reached `max_tokens`.
    #[inline]
    pub fn append_output_token(&mut self, hasher: &BlockHasher, block_size: u32) -> bool {
        self.num_output_tokens += 1;
        // Most tokens complete no block: decided inline, with no division.
        if self.num_tokens() >= (self.block_hashes.len() as u32 + 1) * block_size {
            self.hash_full_blocks(hasher, block_size);
        }
        self.num_output_tokens >= self.max_tokens
    }

    /// Hashes the blocks the tokens so far fill and the block hashes lack.
    #[inline(never)]
    fn hash_full_blocks(&mut self, hasher: &BlockHasher, block_size: u32) {
        let n_full = self.num_tokens() / block_size;
        while (self.block_hashes.len() as u32) < n_full {
            let idx = self.block_hashes.len() as u32;
            let start = idx * block_size;
            let mut toks: smallvec::SmallVec<[u32; 64]> =
                smallvec::smallvec![0; block_size as usize];
            self.fill_tokens(start, &mut toks);
            let k = hasher.next_key(&mut self.chain, idx, &toks, self.cache_salt.as_deref());
            self.block_hashes.push(k);
        }
    }
}

/// Blocks of a whole sequence: the block table and keys are sized for it,
/// since growing them per decode block costs a copy of the table each time.
fn seq_blocks(prompt_len: u32, max_tokens: u32, block_size: u32) -> usize {
    (prompt_len + max_tokens).div_ceil(block_size.max(1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Token `pos` as the trace and the output kind define it, one at a time.
    fn token(r: &PodRequest, pos: u32) -> u32 {
        if pos < r.prompt_len {
            return prompt_token_at(&r.prompt, pos);
        }
        let k = (pos - r.prompt_len) as usize;
        match &r.output {
            OutputTokens::Constant(t) => *t,
            OutputTokens::Given(ids) if k < ids.len() => ids[k],
            OutputTokens::Given(_) => synth_token(r.id ^ 0x6f75_7470_7574, pos),
            OutputTokens::Synthetic(seed) => synth_token(*seed, pos),
        }
    }

    proptest! {
        /// A stretch of tokens, across the prompt's end or not, is the
        /// tokens one by one.
        #[test]
        fn filled_tokens_are_the_tokens_one_by_one(
            prompt in prop::collection::vec(0u32..1000, 1..40),
            kind in 0u8..3,
            given in prop::collection::vec(0u32..1000, 0..10),
            start in 0u32..60,
            len in 0usize..40,
        ) {
            let output = match kind {
                0 => OutputTokens::Constant(7),
                1 => OutputTokens::Given(given),
                _ => OutputTokens::Synthetic(99),
            };
            let r = PodRequest::new(
                5,
                Prompt::Tokens(prompt),
                None,
                output,
                100,
                0,
                0,
                PromptKeys::Deferred,
                16,
            );
            let mut got = vec![0; len];
            r.fill_tokens(start, &mut got);
            let want: Vec<u32> = (start..start + len as u32).map(|p| token(&r, p)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
