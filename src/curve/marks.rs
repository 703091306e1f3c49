//! A set of time positions with fast rank queries: a bitset plus a Fenwick
//! tree over 1024-bit chunks.
//!
//! The tree has one node per chunk, so it stays small enough to live in
//! cache and updates are cheap; a rank query adds the chunk prefix from the
//! tree to a popcount inside the chunk.

use super::fenwick::Fenwick;

const CHUNK_BITS: usize = 1024;
const CHUNK_WORDS: usize = CHUNK_BITS / 64;

/// Set of non-negative integer positions.
#[derive(Clone, Debug)]
pub struct MarkSet {
    bits: Vec<u64>,
    /// Marks per chunk; chunk `c` is tree position `c + 1`.
    chunks: Fenwick,
}

impl Default for MarkSet {
    fn default() -> Self {
        MarkSet::new()
    }
}

impl MarkSet {
    /// An empty set.
    pub fn new() -> MarkSet {
        MarkSet {
            bits: Vec::new(),
            chunks: Fenwick::with_capacity(64),
        }
    }

    /// Adds (`on`) or removes position `t`; a no-op if already so.
    pub fn set(&mut self, t: usize, on: bool) {
        let w = t / 64;
        if w >= self.bits.len() {
            self.bits
                .resize((w + 1).next_power_of_two().max(CHUNK_WORDS), 0);
        }
        let bit = 1u64 << (t % 64);
        if (self.bits[w] & bit != 0) == on {
            return;
        }
        self.bits[w] ^= bit;
        self.chunks.add(t / CHUNK_BITS + 1, if on { 1 } else { -1 });
    }

    /// Number of positions in the set.
    pub fn total(&self) -> usize {
        self.chunks.total() as usize
    }

    /// Number of positions `< t`.
    pub fn count_below(&self, t: usize) -> usize {
        let chunk = t / CHUNK_BITS;
        let mut c = self.chunks.prefix(chunk) as usize;
        let first_word = chunk * CHUNK_WORDS;
        let w_end = t / 64;
        for w in first_word..w_end.min(self.bits.len()) {
            c += self.bits[w].count_ones() as usize;
        }
        if t % 64 != 0 {
            if let Some(word) = self.bits.get(w_end) {
                c += (word & ((1u64 << (t % 64)) - 1)).count_ones() as usize;
            }
        }
        c
    }

    /// Number of positions in `[from, to)`, scanning words (for short ranges).
    pub fn count_range_scan(&self, from: usize, to: usize) -> usize {
        let mut c = 0usize;
        let mut t = from;
        while t < to {
            let (w, b) = (t / 64, t % 64);
            let word = self.bits.get(w).copied().unwrap_or(0) >> b;
            let span = (64 - b).min(to - t);
            let mask = if span == 64 {
                u64::MAX
            } else {
                (1u64 << span) - 1
            };
            c += (word & mask).count_ones() as usize;
            t += span;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranks_match_a_sorted_set(ops in proptest::collection::vec((0usize..5000, any::<bool>()), 1..300), probes in proptest::collection::vec(0usize..5100, 1..20)) {
            let mut m = MarkSet::new();
            let mut naive = std::collections::BTreeSet::new();
            for (t, on) in ops {
                m.set(t, on);
                if on { naive.insert(t); } else { naive.remove(&t); }
            }
            prop_assert_eq!(m.total(), naive.len());
            for p in probes {
                prop_assert_eq!(m.count_below(p), naive.range(..p).count());
                let q = p + 77;
                prop_assert_eq!(m.count_range_scan(p, q), naive.range(p..q).count());
            }
        }
    }
}
