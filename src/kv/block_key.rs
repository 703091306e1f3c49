//! Fast, non-cryptographic block keys for simulation.
//!
//! The default hash mode of the simulator: nothing outside the process sees
//! these keys, so they only need to be deterministic, chained (equal key ⇒
//! equal whole prefix, up to 64-bit collisions) and cheap. When an external
//! system must see real vLLM hashes (KV events read by an indexer that hashes
//! tokens itself, or `kvsim hash`), the exact algorithms in [`super::hash`]
//! are used instead.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Parent used for the first block of a chain (no cache salt).
pub const FAST_ROOT: u64 = 0x6b76_7369_6d5f_726f; // "kvsim_ro"

/// Key of a block of `tokens` whose prefix has key `parent`.
pub fn fast_chain(parent: u64, tokens: &[u32]) -> u64 {
    // Hash the little-endian token bytes seeded with the parent key.
    let mut buf = [0u8; 4 * 64];
    if tokens.len() <= 64 {
        for (i, t) in tokens.iter().enumerate() {
            buf[4 * i..4 * i + 4].copy_from_slice(&t.to_le_bytes());
        }
        return xxh3_64_with_seed(&buf[..4 * tokens.len()], parent);
    }
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    xxh3_64_with_seed(&bytes, parent)
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
        assert_ne!(
            fast_chain(FAST_ROOT, &long),
            fast_chain(FAST_ROOT, &long[..99])
        );
    }

    #[test]
    fn salt_changes_root() {
        assert_eq!(fast_root(None), FAST_ROOT);
        assert_ne!(fast_root(Some("a")), fast_root(Some("b")));
    }
}
