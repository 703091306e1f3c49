//! Block keys of a request, computed incrementally as its tokens become known.
//!
//! Two modes: [`BlockHasher::Fast`] (xxh3 chained keys, the default when no
//! external system sees the hashes) and [`BlockHasher::Vllm`] (vLLM's exact
//! algorithms; the key is the 64-bit event hash of the digest).

use super::block_key::{fast_chain, fast_root};
use super::hash::{BlockDigest, ExtraKeys, VllmBlockHasher};
use crate::trace::request::Prompt;

/// How block keys are computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockHasher {
    /// Fast non-cryptographic chained keys (see [`super::block_key`]).
    Fast,
    /// vLLM's own algorithm and NONE_HASH; key = last 8 bytes of the digest, big-endian.
    Vllm(Box<VllmBlockHasher>),
}

/// Where a request's hash chain stands.
#[derive(Clone, Debug, Default)]
pub struct ChainState {
    last_key: Option<u64>,
    last_digest: Option<BlockDigest>,
}

impl BlockHasher {
    /// Key of block `block_idx` holding `tokens`, extending `chain`.
    pub fn next_key(
        &self,
        chain: &mut ChainState,
        block_idx: u32,
        tokens: &[u32],
        cache_salt: Option<&str>,
    ) -> u64 {
        match self {
            BlockHasher::Fast => {
                let parent = match chain.last_key {
                    Some(k) if block_idx > 0 => k,
                    _ => fast_root(cache_salt),
                };
                let k = fast_chain(parent, tokens);
                chain.last_key = Some(k);
                k
            }
            BlockHasher::Vllm(h) => {
                let (parent, extra) = if block_idx == 0 {
                    (None, ExtraKeys::first_block(h.version(), cache_salt))
                } else {
                    (chain.last_digest.as_ref(), None)
                };
                let d = h.hash_block(parent, tokens, extra.as_ref());
                let k = d.event_hash();
                chain.last_digest = Some(d);
                chain.last_key = Some(k);
                k
            }
        }
    }

    /// Keys of every full prompt block, appended to `out`; leaves `chain` at the last one.
    pub fn prompt_keys(
        &self,
        prompt: &Prompt,
        block_size: u32,
        cache_salt: Option<&str>,
        chain: &mut ChainState,
        out: &mut Vec<u64>,
    ) {
        let n_full = prompt.n_tokens() / block_size;
        match self {
            BlockHasher::Fast => {
                let start = out.len();
                prompt.append_block_keys(block_size, cache_salt, out);
                chain.last_key = out[start..].last().copied();
            }
            BlockHasher::Vllm(_) => {
                let mut buf = Vec::with_capacity(block_size as usize);
                for j in 0..n_full {
                    buf.clear();
                    let start = j * block_size;
                    buf.extend((start..start + block_size).map(|p| prompt_token_at(prompt, p)));
                    out.push(self.next_key(chain, j, &buf, cache_salt));
                }
            }
        }
    }
}

/// Token at `pos` of the prompt; hash-id prompts get deterministic synthetic
/// tokens derived from (hash id, position), so equal ids give equal tokens.
pub fn prompt_token_at(prompt: &Prompt, pos: u32) -> u32 {
    match prompt {
        Prompt::Tokens(t) => t[pos as usize],
        Prompt::HashIds {
            ids, tokens_per_id, ..
        } => {
            let id = ids[(pos / tokens_per_id) as usize];
            synth_token(id, pos)
        }
    }
}

/// A synthetic token id in `0..128000` from a seed and a position.
pub fn synth_token(seed: u64, pos: u32) -> u32 {
    let mut z = seed ^ (pos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 128_000) as u32
}
