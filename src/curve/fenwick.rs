//! A growable Fenwick (binary indexed) tree of counts over positions 1..=n.

/// Prefix sums of per-position counts with O(log n) update and query.
///
/// The size is a power of two and doubles on demand: after doubling from `n`
/// to `2n`, only node `2n` (covering `(0, 2n]`) is non-zero among the new
/// nodes, and it holds the total, so growth is O(n) amortized.
#[derive(Clone, Debug)]
pub struct Fenwick {
    /// 1-based nodes; `tree[0]` unused.
    tree: Vec<i32>,
    total: i64,
}

impl Fenwick {
    /// An empty tree of capacity `n` (rounded up to a power of two).
    pub fn with_capacity(n: usize) -> Fenwick {
        let n = n.max(1).next_power_of_two();
        Fenwick {
            tree: vec![0; n + 1],
            total: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.tree.len() - 1
    }

    /// Adds `delta` at position `pos` (1-based), growing as needed.
    pub fn add(&mut self, pos: usize, delta: i32) {
        while pos > self.capacity() {
            let n = self.capacity();
            self.tree.resize(2 * n + 1, 0);
            self.tree[2 * n] = self.total as i32;
        }
        self.total += delta as i64;
        let mut i = pos;
        while i < self.tree.len() {
            self.tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of positions `1..=pos`.
    pub fn prefix(&self, pos: usize) -> i64 {
        let mut i = pos.min(self.capacity());
        let mut s = 0i64;
        while i > 0 {
            s += self.tree[i] as i64;
            i &= i - 1;
        }
        s
    }

    /// Sum over all positions.
    pub fn total(&self) -> i64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_naive_prefix_sums(ops in proptest::collection::vec((1usize..300, -3i32..4), 1..200)) {
            let mut f = Fenwick::with_capacity(1);
            let mut naive = vec![0i64; 301];
            for (pos, d) in ops {
                f.add(pos, d);
                naive[pos] += d as i64;
            }
            let mut run = 0;
            for (p, v) in naive.iter().enumerate().skip(1) {
                run += v;
                prop_assert_eq!(f.prefix(p), run);
            }
            prop_assert_eq!(f.total(), run);
        }
    }
}
