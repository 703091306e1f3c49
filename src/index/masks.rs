//! Per-model tables of block key → pod bitmask, stored in the narrowest
//! word that holds the pods.
//!
//! Why narrow: the index holds every pod's cached blocks and a KV event
//! touches keys all over it, so its size decides how much of it stays in
//! cache. With at most 15 pods a mask fits 16 bits, a quarter of the
//! memory of 64: measured on the Mooncake benchmark (8 pods), index work
//! fell by a fifth and the pods, sharing the cache, ran faster too.
//!
//! Callers see every mask as a `u64` with [`PRESENT`] as bit 63.

use crate::kv::dense_map::{consecutive_in_page, DenseKeyMap, Slot};

/// Bit marking a key as present, so a present key whose pods were all
/// removed (`remove_empty_keys = false`) differs from an absent one (0).
pub const PRESENT: u64 = 1 << 63;

/// Highest pod id a mask can hold.
pub const MAX_POD: u32 = 62;

/// Highest pod id a narrow mask can hold (bit 15 is its present bit).
const MAX_NARROW_POD: u32 = 14;

/// A stored mask.
trait MaskWord:
    Slot
    + std::ops::BitOr<Output = Self>
    + std::ops::BitAnd<Output = Self>
    + std::ops::Not<Output = Self>
{
    /// The pod bits a word holds.
    const PODS: u64;
    fn widen(self) -> u64;
    fn narrow(mask: u64) -> Self;
}

impl MaskWord for u16 {
    const PODS: u64 = 0x7fff;
    fn widen(self) -> u64 {
        u64::from(self & 0x7fff) | (u64::from(self >> 15) << 63)
    }
    fn narrow(mask: u64) -> u16 {
        debug_assert_eq!(mask & !PRESENT & !0x7fff, 0, "a pod above the narrow range");
        (mask & 0x7fff) as u16 | ((mask >> 63) as u16) << 15
    }
}

impl MaskWord for u64 {
    const PODS: u64 = !PRESENT;
    fn widen(self) -> u64 {
        self
    }
    fn narrow(mask: u64) -> u64 {
        mask
    }
}

/// Key → mask, one table per model id.
#[derive(Debug)]
pub struct MaskTables(Width);

#[derive(Debug)]
enum Width {
    Narrow(Vec<DenseKeyMap<u16>>),
    Wide(Vec<DenseKeyMap<u64>>),
}

impl MaskTables {
    /// Empty tables for pods `0..n_pods` (`n_pods <= MAX_POD + 1`).
    pub fn new(n_pods: u32) -> MaskTables {
        debug_assert!(n_pods <= MAX_POD + 1);
        MaskTables(if n_pods <= MAX_NARROW_POD + 1 {
            Width::Narrow(Vec::new())
        } else {
            Width::Wide(Vec::new())
        })
    }

    /// Keys held, over all models.
    pub fn len(&self) -> usize {
        match &self.0 {
            Width::Narrow(t) => t.iter().map(DenseKeyMap::len).sum(),
            Width::Wide(t) => t.iter().map(DenseKeyMap::len).sum(),
        }
    }

    /// Model `m`'s table, for reading many keys.
    pub fn table(&self, m: u32) -> TableRef<'_> {
        match &self.0 {
            Width::Narrow(t) => TableRef::Narrow(t.get(m as usize)),
            Width::Wide(t) => TableRef::Wide(t.get(m as usize)),
        }
    }

    /// Replaces the mask of each of `keys` in model `m` with `f(mask)`, in
    /// order (0 removes the key).
    pub fn update_each(&mut self, m: u32, keys: &[u64], f: impl FnMut(u64) -> u64) {
        match &mut self.0 {
            Width::Narrow(t) => update_each(t, m, keys, f),
            Width::Wide(t) => update_each(t, m, keys, f),
        }
    }

    /// Adds the pods in `bits` to each key in `lo..lo + n` of model `m`,
    /// marking it present.
    pub fn add_range(&mut self, m: u32, lo: u64, n: u32, bits: u64) {
        // In the word itself: the loop over a page's masks then vectorises.
        fn add<W: MaskWord>(t: &mut Vec<DenseKeyMap<W>>, m: u32, lo: u64, n: u32, bits: u64) {
            let set = W::narrow(PRESENT | bits);
            table_mut(t, m).update_range(lo, n, |w| w | set);
        }
        match &mut self.0 {
            Width::Narrow(t) => add(t, m, lo, n, bits),
            Width::Wide(t) => add(t, m, lo, n, bits),
        }
    }

    /// Removes the pods in `bits` from each key in `lo..lo + n` of model
    /// `m`; a key left without pods goes when `remove_empty`, else stays
    /// present.
    pub fn remove_range(&mut self, m: u32, lo: u64, n: u32, bits: u64, remove_empty: bool) {
        fn remove<W: MaskWord>(
            t: &mut [DenseKeyMap<W>],
            m: u32,
            lo: u64,
            n: u32,
            bits: u64,
            remove_empty: bool,
        ) {
            // Pods a word cannot hold are in none of its masks.
            let (clear, present) = (W::narrow(bits & W::PODS), W::narrow(PRESENT));
            let empty = if remove_empty { present } else { W::EMPTY };
            let Some(t) = t.get_mut(m as usize) else {
                return; // a model never stored holds no key
            };
            t.update_range(lo, n, |w| {
                let rest = w & !clear;
                if rest == empty {
                    W::EMPTY
                } else {
                    rest
                }
            });
        }
        match &mut self.0 {
            Width::Narrow(t) => remove(t, m, lo, n, bits, remove_empty),
            Width::Wide(t) => remove(t, m, lo, n, bits, remove_empty),
        }
    }

    /// Replaces every mask with `f(mask)` (0 removes the key).
    pub fn update_all(&mut self, mut f: impl FnMut(u64) -> u64) {
        match &mut self.0 {
            Width::Narrow(t) => t
                .iter_mut()
                .for_each(|t| t.update_all(|w| MaskWord::narrow(f(w.widen())))),
            Width::Wide(t) => t.iter_mut().for_each(|t| t.update_all(&mut f)),
        }
    }

    /// Every (model, key, mask), in no particular order.
    pub fn entries(&self) -> Vec<(u32, u64, u64)> {
        fn all<W: MaskWord>(t: &[DenseKeyMap<W>]) -> Vec<(u32, u64, u64)> {
            let per_model = t.iter().enumerate();
            per_model
                .flat_map(|(m, t)| t.iter().map(move |(k, w)| (m as u32, k, w.widen())))
                .collect()
        }
        match &self.0 {
            Width::Narrow(t) => all(t),
            Width::Wide(t) => all(t),
        }
    }
}

/// One model's table (`None`: a model never stored, whose keys all read
/// as absent).
#[derive(Clone, Copy, Debug)]
pub enum TableRef<'a> {
    /// 16-bit masks.
    Narrow(Option<&'a DenseKeyMap<u16>>),
    /// 64-bit masks.
    Wide(Option<&'a DenseKeyMap<u64>>),
}

impl TableRef<'_> {
    /// [`DenseKeyMap::count_same_after`] for masks: how many of `keys`
    /// continue `key` in its page with mask `mask`.
    #[inline]
    pub fn count_same_after(self, key: u64, keys: &[u64], mask: u64) -> usize {
        match self {
            TableRef::Narrow(Some(t)) => t.count_same_after(key, keys, u16::narrow(mask)),
            TableRef::Wide(Some(t)) => t.count_same_after(key, keys, mask),
            // No table: every key reads 0.
            TableRef::Narrow(None) | TableRef::Wide(None) if mask == 0 => {
                consecutive_in_page(key, keys)
            }
            TableRef::Narrow(None) | TableRef::Wide(None) => 0,
        }
    }

    /// The mask of `key` (0 when absent).
    #[inline]
    pub fn get(self, key: u64) -> u64 {
        match self {
            TableRef::Narrow(t) => t.map_or(0, |t| t.get(key).widen()),
            TableRef::Wide(t) => t.map_or(0, |t| t.get(key)),
        }
    }
}

/// Model `m`'s table, made if new.
fn table_mut<W: MaskWord>(tables: &mut Vec<DenseKeyMap<W>>, m: u32) -> &mut DenseKeyMap<W> {
    if tables.len() <= m as usize {
        tables.resize_with(m as usize + 1, Default::default);
    }
    &mut tables[m as usize]
}

fn update_each<W: MaskWord>(
    tables: &mut Vec<DenseKeyMap<W>>,
    m: u32,
    keys: &[u64],
    mut f: impl FnMut(u64) -> u64,
) {
    table_mut(tables, m).update_each(keys, |w| W::narrow(f(w.widen())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_words_keep_pods_and_presence() {
        for mask in [0, PRESENT, PRESENT | 1, PRESENT | 0x4001, 0x7fff | PRESENT] {
            assert_eq!(<u16 as MaskWord>::narrow(mask).widen(), mask);
        }
    }

    #[test]
    fn both_widths_store_the_same_masks() {
        let mut narrow = MaskTables::new(15);
        let mut wide = MaskTables::new(16);
        assert!(matches!(narrow.0, Width::Narrow(_)));
        assert!(matches!(wide.0, Width::Wide(_)));
        for t in [&mut narrow, &mut wide] {
            t.update_each(1, &[3, 4, 5], |m| m | PRESENT | 1 << 14);
            t.update_each(1, &[4], |m| m & !(1 << 14));
            t.update_each(1, &[5], |_| 0);
            t.add_range(1, 8, 3, 1 << 2);
            t.remove_range(1, 9, 1, 1 << 2, true);
            t.add_range(1, 20, 2, 1 << 3);
            t.remove_range(1, 20, 2, 1 << 3, false);
            t.remove_range(5, 20, 2, 1 << 3, true);
            t.update_all(|m| m | 1);
        }
        for t in [&narrow, &wide] {
            assert_eq!(t.len(), 6);
            assert_eq!(
                (t.table(1).get(20), t.table(1).get(21)),
                (PRESENT | 1, PRESENT | 1)
            );
            assert_eq!(t.table(1).get(8), PRESENT | 1 << 2 | 1);
            assert_eq!(t.table(1).get(9), 0);
            assert_eq!(t.table(1).get(10), PRESENT | 1 << 2 | 1);
            let (t0, t1, t7) = (t.table(0), t.table(1), t.table(7));
            assert_eq!(t1.get(3), PRESENT | 1 << 14 | 1);
            assert_eq!(t1.get(4), PRESENT | 1);
            assert_eq!((t1.get(5), t0.get(3), t7.get(3)), (0, 0, 0));
        }
    }
}
