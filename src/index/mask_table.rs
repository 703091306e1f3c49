//! Pod bitmasks per block key: the index's store when a key's entries are
//! just a set of pods (see `memory::Store::Masks`).
//!
//! Dense keys (trace hash ids, [`hash_id_block_key`]) are small integers
//! whose neighbours belong to the same prefix, so they live in a paged array
//! indexed by the key itself: one load per key, and the keys of a prompt read
//! neighbouring words. Hashed keys go to a hash map.
//!
//! [`hash_id_block_key`]: crate::kv::block_key::hash_id_block_key

use crate::kv::block_key::BlockKeyMap;

/// Bit marking a key as present, so a present key whose pods were all
/// removed (`remove_empty_keys = false`) differs from an absent one (0).
pub const PRESENT: u64 = 1 << 63;

/// Highest pod id a mask can hold (bit 63 is [`PRESENT`]).
pub const MAX_POD: u32 = 62;

const PAGE_BITS: u32 = 12;
const PAGE_LEN: usize = 1 << PAGE_BITS;
/// Keys below this use the paged array (at most 2^20 page slots).
const DENSE_LIMIT: u64 = 1 << 32;

/// Key → `PRESENT | pod bits`, 0 when absent.
#[derive(Clone, Debug, Default)]
pub struct MaskTable {
    pages: Vec<Option<Box<[u64; PAGE_LEN]>>>,
    sparse: BlockKeyMap<u64, u64>,
    n_keys: usize,
}

impl MaskTable {
    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.n_keys
    }

    /// The mask of `key` (0 when absent).
    #[inline]
    pub fn get(&self, key: u64) -> u64 {
        if key < DENSE_LIMIT {
            let (page, slot) = split(key);
            match self.pages.get(page) {
                Some(Some(p)) => p[slot],
                _ => 0,
            }
        } else {
            self.sparse.get(&key).copied().unwrap_or(0)
        }
    }

    /// Replaces the mask of `key` with `f(old)` (0 removes the key).
    #[inline]
    pub fn update(&mut self, key: u64, f: impl FnOnce(u64) -> u64) {
        let (old, new) = if key < DENSE_LIMIT {
            let (page, slot) = split(key);
            if self.pages.len() <= page {
                self.pages.resize_with(page + 1, || None);
            }
            let p = self.pages[page].get_or_insert_with(|| Box::new([0; PAGE_LEN]));
            let old = p[slot];
            p[slot] = f(old);
            (old, p[slot])
        } else {
            match self.sparse.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let old = *o.get();
                    let new = f(old);
                    if new == 0 {
                        o.remove();
                    } else {
                        *o.get_mut() = new;
                    }
                    (old, new)
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    let new = f(0);
                    if new != 0 {
                        v.insert(new);
                    }
                    (0, new)
                }
            }
        };
        match (old, new) {
            (0, n) if n != 0 => self.n_keys += 1,
            (o, 0) if o != 0 => self.n_keys -= 1,
            _ => {}
        }
    }

    /// Applies `f` to every present mask (0 removes the key).
    pub fn update_all(&mut self, mut f: impl FnMut(u64) -> u64) {
        let mut n_keys = 0;
        for m in self.pages.iter_mut().flatten().flat_map(|p| p.iter_mut()) {
            if *m != 0 {
                *m = f(*m);
                n_keys += usize::from(*m != 0);
            }
        }
        self.sparse.retain(|_, m| {
            *m = f(*m);
            *m != 0
        });
        self.n_keys = n_keys + self.sparse.len();
    }

    /// Every present (key, mask), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let dense = self.pages.iter().enumerate().flat_map(|(i, p)| {
            p.iter().flat_map(move |p| {
                p.iter()
                    .enumerate()
                    .filter(|(_, &m)| m != 0)
                    .map(move |(s, &m)| (((i << PAGE_BITS) + s) as u64, m))
            })
        });
        dense.chain(self.sparse.iter().map(|(&k, &m)| (k, m)))
    }
}

fn split(key: u64) -> (usize, usize) {
    ((key >> PAGE_BITS) as usize, (key as usize) & (PAGE_LEN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_keys_count_and_remove_alike() {
        let mut t = MaskTable::default();
        for k in [5, 4096 * 3 + 1, u64::MAX - 1] {
            assert_eq!(t.get(k), 0);
            t.update(k, |m| m | PRESENT | 0b10);
            assert_eq!(t.get(k), PRESENT | 0b10);
        }
        assert_eq!(t.len(), 3);
        let mut seen: Vec<u64> = t.iter().map(|(k, _)| k).collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![5, 4096 * 3 + 1, u64::MAX - 1]);
        t.update(5, |_| 0);
        assert_eq!((t.get(5), t.len()), (0, 2));
        t.update_all(|m| if m & 0b10 != 0 { PRESENT } else { m });
        assert_eq!(t.get(u64::MAX - 1), PRESENT);
        t.update_all(|_| 0);
        assert_eq!(t.len(), 0);
        assert_eq!(t.iter().count(), 0);
    }
}
