//! The request record every workload source produces.

use crate::kv::block_key::{append_hash_id_keys, fast_chain, fast_root};

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
    /// The exact output tokens the pod must emit, when the workload needs them.
    ///
    /// Multi-turn generators set this: the next turn's prompt contains this
    /// answer verbatim, so the pod must produce these tokens (not arbitrary
    /// ones) for the next turn's prefix to hit the blocks the answer filled.
    /// When set, `len() == output_len`. `None`: the pod may emit any tokens.
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

    /// Number of full KV blocks of `block_size` tokens the prompt fills
    /// (what [`Prompt::block_keys`] returns the keys of).
    pub fn n_full_blocks(&self, block_size: u32) -> usize {
        if block_size == 0 {
            return 0;
        }
        match self {
            Prompt::Tokens(t) => t.len() / block_size as usize,
            Prompt::HashIds {
                ids,
                tokens_per_id,
                n_tokens,
            } => {
                // Tokens the ids actually cover, so a malformed record (too few
                // ids) yields fewer keys instead of an out-of-bounds index.
                let covered = (ids.len() as u64 * *tokens_per_id as u64).min(*n_tokens as u64);
                (covered / block_size as u64) as usize
            }
        }
    }

    /// The fast keys of every full KV block of the prompt, in order.
    ///
    /// Tokens: `k[i] = fast_chain(k[i-1], block i)` from `fast_root(salt)`.
    /// Hash ids: `k[i] = hash_id_block_key(id holding token end-1, end, ..,
    /// fast_root(salt))` with `end = (i+1) * block_size`, so two prompts share
    /// exactly the KV blocks that lie inside their common hash-id prefix; a
    /// partial last hash block yields only its full KV blocks.
    pub fn block_keys(&self, block_size: u32, cache_salt: Option<&str>) -> Vec<u64> {
        let mut out = Vec::new();
        self.block_keys_into(block_size, cache_salt, &mut out);
        out
    }

    /// [`Prompt::block_keys`] into a caller-owned buffer (cleared first), so a
    /// hot loop allocates nothing per request once the buffer has grown.
    pub fn block_keys_into(&self, block_size: u32, cache_salt: Option<&str>, out: &mut Vec<u64>) {
        out.clear();
        self.append_block_keys(block_size, cache_salt, out);
    }

    /// [`Prompt::block_keys`] appended to `out`.
    pub fn append_block_keys(&self, block_size: u32, cache_salt: Option<&str>, out: &mut Vec<u64>) {
        let n_blocks = self.n_full_blocks(block_size);
        if n_blocks == 0 {
            return;
        }
        out.reserve(n_blocks);
        let root = fast_root(cache_salt);
        let bs = block_size as usize;
        match self {
            Prompt::Tokens(tokens) => {
                let mut parent = root;
                for block in tokens.chunks_exact(bs) {
                    parent = fast_chain(parent, block);
                    out.push(parent);
                }
            }
            Prompt::HashIds {
                ids, tokens_per_id, ..
            } => append_hash_id_keys(ids, *tokens_per_id, block_size, n_blocks, root, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_prompt(ids: &[u64], n_tokens: u32) -> Prompt {
        Prompt::HashIds {
            ids: ids.to_vec(),
            tokens_per_id: 512,
            n_tokens,
        }
    }

    #[test]
    fn two_shared_512_blocks_share_exactly_64_kv_blocks_at_16() {
        // A = [0,1,2] over 1500 tokens, B = [0,1,7] over 1100 tokens: they share
        // hash blocks 0 and 1 (tokens 0..1024) = 1024/16 = 64 KV blocks.
        let a = hash_prompt(&[0, 1, 2], 1500).block_keys(16, None);
        let b = hash_prompt(&[0, 1, 7], 1100).block_keys(16, None);
        assert_eq!(a.len(), 1500 / 16);
        assert_eq!(b.len(), 1100 / 16);
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert_eq!(common, 64);
        let b_set: std::collections::BTreeSet<u64> = b.iter().copied().collect();
        assert_eq!(a.iter().filter(|k| b_set.contains(k)).count(), 64);
    }

    #[test]
    fn partial_last_hash_block_yields_only_full_kv_blocks() {
        // 600 tokens = one full 512 block + 88 tokens: 37 full 16-blocks.
        let p = hash_prompt(&[5, 6], 600);
        assert_eq!(p.block_keys(16, None).len(), 37);
        // Too few ids for n_tokens: keys stop where the ids stop, no panic.
        let short = hash_prompt(&[5], 2000);
        assert_eq!(short.block_keys(16, None).len(), 32);
        assert!(hash_prompt(&[5], 100).block_keys(0, None).is_empty());
    }

    #[test]
    fn salt_changes_every_key() {
        let p = Prompt::Tokens((0..64).collect());
        let plain = p.block_keys(16, None);
        let salted = p.block_keys(16, Some("tenant-a"));
        assert_eq!(plain.len(), 4);
        assert!(plain.iter().zip(&salted).all(|(a, b)| a != b));
    }

    #[test]
    fn token_keys_match_fast_chain_for_small_and_large_blocks() {
        let tokens: Vec<u32> = (0..1000).map(|i| i * 7 + 3).collect();
        for bs in [16u32, 64, 128, 256] {
            let keys = Prompt::Tokens(tokens.clone()).block_keys(bs, Some("s"));
            let mut parent = fast_root(Some("s"));
            let expect: Vec<u64> = tokens
                .chunks_exact(bs as usize)
                .map(|c| {
                    parent = fast_chain(parent, c);
                    parent
                })
                .collect();
            assert_eq!(keys, expect, "block size {bs}");
        }
    }

    #[test]
    fn tokens_sharing_a_prefix_share_its_blocks() {
        let a: Vec<u32> = (0..100).collect();
        let mut b = a[..40].to_vec();
        b.extend(1000..1060);
        let ka = Prompt::Tokens(a).block_keys(16, None);
        let kb = Prompt::Tokens(b).block_keys(16, None);
        assert_eq!(ka[..2], kb[..2]);
        assert_ne!(ka[2], kb[2]);
    }
}
