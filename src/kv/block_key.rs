//! Fast, non-cryptographic block keys for simulation.
//!
//! The default hash mode of the simulator: nothing outside the process sees
//! these keys, so they only need to be deterministic, chained (equal key ⇒
//! equal whole prefix, up to 64-bit collisions) and cheap. When an external
//! system must see real vLLM hashes (KV events read by an indexer that hashes
//! tokens itself, or `kvsim hash`), the exact algorithms in [`super::hash`]
//! are used instead.

use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

/// Parent used for the first block of a chain (no cache salt).
pub const FAST_ROOT: u64 = 0x6b76_7369_6d5f_726f; // "kvsim_ro"

/// Key of a block of `tokens` whose prefix has key `parent`.
pub fn fast_chain(parent: u64, tokens: &[u32]) -> u64 {
    // Hash the little-endian token bytes seeded with the parent key, 64
    // tokens at a time through a stack buffer (no allocation).
    let mut buf = [0u8; 4 * 64];
    if tokens.len() <= 64 {
        return xxh3_64_with_seed(le_bytes(&mut buf, tokens), parent);
    }
    let mut h = Xxh3::with_seed(parent);
    for chunk in tokens.chunks(64) {
        h.update(le_bytes(&mut buf, chunk));
    }
    h.digest()
}

/// The little-endian bytes of `tokens` (at most 64) in `buf`.
fn le_bytes<'a>(buf: &'a mut [u8; 4 * 64], tokens: &[u32]) -> &'a [u8] {
    for (dst, t) in buf.chunks_exact_mut(4).zip(tokens) {
        dst.copy_from_slice(&t.to_le_bytes());
    }
    &buf[..4 * tokens.len()]
}

/// Root key for a chain that carries a cache salt (salt changes every key).
pub fn fast_root(cache_salt: Option<&str>) -> u64 {
    match cache_salt {
        None => FAST_ROOT,
        Some(salt) => xxh3_64_with_seed(salt.as_bytes(), FAST_ROOT),
    }
}

/// Key of the KV block ending at token `end` (exclusive) of a prompt given as
/// chained hash ids, where `id_at_end` is the id of the hash block holding
/// token `end - 1` and `end` is measured from the prompt start.
///
/// Hash ids are chained (an equal id means an equal whole prefix up to the end
/// of its hash block), so `(id, end)` identifies the prefix `[0, end)` exactly.
pub fn fast_hash_id_block(id_at_end: u64, end: u32, salt_root: u64) -> u64 {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&id_at_end.to_le_bytes());
    b[8..].copy_from_slice(&end.to_le_bytes());
    xxh3_64_with_seed(&b, salt_root ^ 0x4841_5348_4944_5321)
}

/// Key of the KV block ending at token `end` of a hash-id prompt with
/// `tokens_per_id` tokens per id and `block_size`-token KV blocks.
///
/// Unsalted keys are dense: `id * ceil(tokens_per_id / block_size) + j`, with
/// `j` the block's rank among the KV blocks ending inside hash block `id`.
/// Trace ids are small integers handed out in order of first appearance, so
/// the blocks of one prefix get neighbouring keys, which keeps the hash maps
/// keyed by them ([`BlockKeyHasher`]) cache-friendly. The pair is unique
/// because an id always sits at the same position of a prompt. Salted
/// prompts, and ids too large for the dense form, fall back to
/// [`fast_hash_id_block`].
pub fn hash_id_block_key(
    id_at_end: u64,
    end: u32,
    tokens_per_id: u32,
    block_size: u32,
    salt_root: u64,
) -> u64 {
    let per_id = tokens_per_id.div_ceil(block_size.max(1)) as u64;
    let rank = ((end - 1) % tokens_per_id.max(1) / block_size.max(1)) as u64;
    match dense_base(id_at_end, per_id, salt_root) {
        Some(base) => base + rank,
        None => fast_hash_id_block(id_at_end, end, salt_root),
    }
}

/// `id * per_id` when the id's keys can be dense (no salt, all below the limit).
fn dense_base(id: u64, per_id: u64, salt_root: u64) -> Option<u64> {
    let base = id.checked_mul(per_id)?;
    (salt_root == FAST_ROOT && base < DENSE_KEY_LIMIT - per_id).then_some(base)
}

/// Appends the keys of the first `n_blocks` KV blocks of a prompt given as
/// hash `ids` ([`hash_id_block_key`] for each, computed a hash block at a
/// time: two divisions per hash block, none per KV block; within one hash
/// block the ranks are consecutive).
pub fn append_hash_id_keys(
    ids: &[u64],
    tokens_per_id: u32,
    block_size: u32,
    n_blocks: usize,
    salt_root: u64,
    out: &mut Vec<u64>,
) {
    let (tpi, bs) = (
        u64::from(tokens_per_id.max(1)),
        u64::from(block_size.max(1)),
    );
    let per_id = tpi.div_ceil(bs);
    let n_blocks = n_blocks as u64;
    out.reserve(n_blocks as usize);
    let mut b = 1;
    while b <= n_blocks {
        let end = b * bs;
        let idx = (end - 1) / tpi;
        let id = ids[idx as usize];
        // The last KV block ending inside hash block `idx`.
        let last = ((idx + 1) * tpi / bs).min(n_blocks);
        match dense_base(id, per_id, salt_root) {
            Some(base) => {
                let first = base + (end - 1 - idx * tpi) / bs;
                out.extend(first..first + (last - b + 1));
            }
            None => {
                out.extend((b..=last).map(|k| fast_hash_id_block(id, (k * bs) as u32, salt_root)))
            }
        }
        b = last + 1;
    }
}

/// Dense hash-id keys stay below this; every other key is a 64-bit hash, which
/// lands below it with probability 2^-6 but then equals a given dense key with
/// probability 2^-58, the same odds as any two hashed keys colliding.
pub const DENSE_KEY_LIMIT: u64 = 1 << 58;

/// [`std::hash::Hasher`] for maps keyed by block keys (or `(model, key)`).
///
/// Block keys are either hashes already or dense ids
/// ([`hash_id_block_key`]), so the hasher keeps runs of 8 neighbouring keys
/// together (their low 3 bits pass through: one prefix touches few cache
/// lines) and scatters the runs with a multiplicative mix, which avoids the
/// long probe chains that fully identity-placed runs cause. The top seven
/// bits, hashbrown's per-slot tag, are mixed from the whole key. Not
/// DoS-resistant: keys come from the simulator, not the network.
#[derive(Copy, Clone, Debug, Default)]
pub struct BlockKeyHasher(u64);

impl std::hash::Hasher for BlockKeyHasher {
    fn finish(&self) -> u64 {
        const TAG: u64 = 0xFE00_0000_0000_0000;
        let k = self.0;
        let run = ((k >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) << 3) | (k & 7);
        (run & !TAG) | (k.wrapping_mul(0xD6E8_FEB8_6659_FD93) & TAG)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        // A model id written before the key ends up in the high bits.
        self.0 = self.0.rotate_left(40) ^ n;
    }
}

/// `HashMap` keyed by block keys.
pub type BlockKeyMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<BlockKeyHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_parent_and_tokens() {
        let a = fast_chain(FAST_ROOT, &[1, 2, 3]);
        assert_eq!(a, fast_chain(FAST_ROOT, &[1, 2, 3]));
        assert_ne!(a, fast_chain(FAST_ROOT, &[1, 2, 4]));
        assert_ne!(a, fast_chain(a, &[1, 2, 3]));
        let long: Vec<u32> = (0..100).collect();
        // Streamed in 64-token pieces, the same as hashing all bytes at once.
        let bytes: Vec<u8> = long.iter().flat_map(|t| t.to_le_bytes()).collect();
        assert_eq!(fast_chain(a, &long), xxh3_64_with_seed(&bytes, a));
        assert_ne!(
            fast_chain(FAST_ROOT, &long),
            fast_chain(FAST_ROOT, &long[..99])
        );
    }

    #[test]
    fn hash_id_keys_are_dense_unique_and_salted_apart() {
        // 512-token ids, 16-token blocks: 32 keys per id, in order.
        assert_eq!(hash_id_block_key(0, 16, 512, 16, FAST_ROOT), 0);
        assert_eq!(hash_id_block_key(0, 512, 512, 16, FAST_ROOT), 31);
        assert_eq!(
            hash_id_block_key(7, 7 * 512 + 16, 512, 16, FAST_ROOT),
            7 * 32
        );
        // A block size that does not divide 512: ranks 0..=10 per id, no clash.
        let mut seen = std::collections::BTreeSet::new();
        for end in (48..=20 * 512).step_by(48) {
            let id = ((end - 1) / 512) as u64;
            assert!(seen.insert(hash_id_block_key(id, end, 512, 48, FAST_ROOT)));
        }
        // The incremental form agrees, dense or salted.
        let ids: Vec<u64> = (0..20).chain([u64::MAX / 2]).collect();
        for (tpi, bs, root) in [
            (512, 16, FAST_ROOT),
            (512, 48, FAST_ROOT),
            (512, 1024, FAST_ROOT),
            (512, 16, salted_root()),
            (100, 16, FAST_ROOT),
            (7, 3, FAST_ROOT),
            (5, 16, salted_root()),
        ] {
            let full = 21 * tpi / bs;
            for n in [0, 1, full / 2, full - 1, full] {
                let mut got = Vec::new();
                append_hash_id_keys(&ids, tpi, bs, n as usize, root, &mut got);
                let want: Vec<u64> = (1..=n)
                    .map(|b| {
                        let id = ids[((b * bs - 1) / tpi) as usize];
                        hash_id_block_key(id, b * bs, tpi, bs, root)
                    })
                    .collect();
                assert_eq!(
                    got, want,
                    "{tpi} tokens per id, block size {bs}, {n} blocks"
                );
            }
        }
        // Blocks larger than a hash block: one key per id.
        assert_eq!(hash_id_block_key(3, 2048, 512, 1024, FAST_ROOT), 3);
        let salted = fast_root(Some("tenant"));
        assert_eq!(
            hash_id_block_key(0, 16, 512, 16, salted),
            fast_hash_id_block(0, 16, salted)
        );
        assert_eq!(
            hash_id_block_key(u64::MAX, 16, 512, 16, FAST_ROOT),
            fast_hash_id_block(u64::MAX, 16, FAST_ROOT)
        );
    }

    fn salted_root() -> u64 {
        fast_root(Some("tenant"))
    }

    #[test]
    fn key_hasher_keeps_low_bits_and_tags_top_bits() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let b = BuildHasherDefault::<BlockKeyHasher>::default();
        let h = |k: u64| b.hash_one(k);
        const TAG: u64 = 0xFE00_0000_0000_0000;
        // 1000..=1007 form one aligned run of 8: same buckets up to the low bits.
        assert_eq!((h(1000) ^ h(1007)) & !TAG, 7);
        assert_ne!(h(1000) >> 57, h(1001) >> 57, "tags still differ");
        // The next run lands elsewhere.
        assert_ne!((h(1000) ^ h(1008)) & !TAG & !7, 0);
        assert_ne!(b.hash_one((0u32, 5u64)), b.hash_one((1u32, 5u64)));
    }

    #[test]
    fn salt_changes_root() {
        assert_eq!(fast_root(None), FAST_ROOT);
        assert_ne!(fast_root(Some("a")), fast_root(Some("b")));
    }
}
