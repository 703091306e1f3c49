//! Map from block keys to small values, built for dense keys.
//!
//! Dense keys (trace hash ids, [`hash_id_block_key`]) are small integers, and
//! the blocks of one prefix have neighbouring keys. Such keys live in a paged
//! array indexed by the key itself: a lookup is two loads, and the keys of a
//! prompt, read or written in order, touch the same page. A page whose last
//! entry goes is recycled, so memory follows the live keys, not the key
//! range a long trace sweeps. Other keys (64-bit hashes) go to a hash map.
//!
//! [`hash_id_block_key`]: super::block_key::hash_id_block_key

use super::block_key::BlockKeyMap;

/// A value type with a reserved "absent" value.
pub trait Slot: Copy + PartialEq + std::fmt::Debug {
    /// The value an absent key reads as; never stored.
    const EMPTY: Self;
}

impl Slot for u32 {
    const EMPTY: u32 = u32::MAX;
}

impl Slot for u16 {
    const EMPTY: u16 = 0;
}

impl Slot for u64 {
    const EMPTY: u64 = 0;
}

const PAGE_BITS: u32 = 8;
const PAGE_LEN: usize = 1 << PAGE_BITS;
/// Keys below this use pages: the page table stays within 2^20 entries.
const DENSE_LIMIT: u64 = 1 << 28;
const NO_PAGE: u32 = u32::MAX;

/// Key → value, [`Slot::EMPTY`] meaning absent.
#[derive(Clone, Debug)]
pub struct DenseKeyMap<V: Slot> {
    /// `key >> PAGE_BITS` → page number, or `NO_PAGE`.
    page_of: Vec<u32>,
    /// Page `p` is `slots[p * PAGE_LEN..][..PAGE_LEN]`: one flat array, so
    /// a lookup is two dependent loads.
    slots: Vec<V>,
    /// Per page, its keys held.
    n_live: Vec<u32>,
    free_pages: Vec<u32>,
    sparse: BlockKeyMap<u64, V>,
    len: usize,
}

impl<V: Slot> Default for DenseKeyMap<V> {
    fn default() -> Self {
        DenseKeyMap {
            page_of: Vec::new(),
            slots: Vec::new(),
            n_live: Vec::new(),
            free_pages: Vec::new(),
            sparse: BlockKeyMap::default(),
            len: 0,
        }
    }
}

impl<V: Slot> DenseKeyMap<V> {
    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key` ([`Slot::EMPTY`] when absent).
    #[inline]
    pub fn get(&self, key: u64) -> V {
        if key < DENSE_LIMIT {
            match self.page_of.get((key >> PAGE_BITS) as usize) {
                Some(&p) if p != NO_PAGE => self.slots[slot_index(p, key)],
                _ => V::EMPTY,
            }
        } else {
            self.sparse.get(&key).copied().unwrap_or(V::EMPTY)
        }
    }

    /// How many of `keys` continue `key` one apart within its page
    /// ([`consecutive_in_page`]) and read as `value` there (absent keys
    /// read as [`Slot::EMPTY`]): a prompt's keys are mostly consecutive, so
    /// a lookup takes such a stretch from the page at once.
    pub fn count_same_after(&self, key: u64, keys: &[u64], value: V) -> usize {
        let n = consecutive_in_page(key, keys);
        let page = self
            .page_of
            .get((key >> PAGE_BITS) as usize)
            .copied()
            .filter(|&p| p != NO_PAGE);
        match page {
            Some(p) => {
                let start = slot_index(p, key) + 1;
                self.slots[start..start + n]
                    .iter()
                    .take_while(|&&v| v == value)
                    .count()
            }
            None if value == V::EMPTY => n,
            None => 0,
        }
    }

    /// Replaces the value of `key` with `f(old)`; [`Slot::EMPTY`] removes
    /// the key. Returns the old value.
    #[inline]
    pub fn update(&mut self, key: u64, f: impl FnOnce(V) -> V) -> V {
        let (old, new) = if key < DENSE_LIMIT {
            self.update_dense(key, f)
        } else {
            match self.sparse.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let old = *o.get();
                    let new = f(old);
                    if new == V::EMPTY {
                        o.remove();
                    } else {
                        *o.get_mut() = new;
                    }
                    (old, new)
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    let new = f(V::EMPTY);
                    if new != V::EMPTY {
                        v.insert(new);
                    }
                    (V::EMPTY, new)
                }
            }
        };
        match (old == V::EMPTY, new == V::EMPTY) {
            (true, false) => self.len += 1,
            (false, true) => self.len -= 1,
            _ => {}
        }
        old
    }

    /// [`DenseKeyMap::update`] of each of `keys` in order. Faster on runs of
    /// neighbouring keys (a prompt's blocks): their page is looked up once.
    pub fn update_each(&mut self, keys: &[u64], mut f: impl FnMut(V) -> V) {
        // The page of the previous key, while it is live.
        let mut last: Option<(usize, u32)> = None;
        for &key in keys {
            let pi = (key >> PAGE_BITS) as usize;
            let p = match last {
                Some((lpi, p)) if lpi == pi && key < DENSE_LIMIT => p,
                _ => match self.page_of.get(pi) {
                    Some(&p) if p != NO_PAGE && key < DENSE_LIMIT => p,
                    _ => {
                        self.update(key, &mut f);
                        last = None;
                        continue;
                    }
                },
            };
            let s = &mut self.slots[slot_index(p, key)];
            let old = *s;
            let new = f(old);
            *s = new;
            last = Some((pi, p));
            let n_live = &mut self.n_live[p as usize];
            match (old == V::EMPTY, new == V::EMPTY) {
                (true, false) => {
                    *n_live += 1;
                    self.len += 1;
                }
                (false, true) => {
                    *n_live -= 1;
                    self.len -= 1;
                    if *n_live == 0 {
                        self.release_page(pi, p);
                        last = None;
                    }
                }
                _ => {}
            }
        }
    }

    /// [`DenseKeyMap::update`] of each key in `lo..lo + n` with a pure
    /// `f`, a page at a time: the keys of a page are one slice, and a page
    /// absent where `f` keeps absent keys absent (a removal) is skipped.
    pub fn update_range(&mut self, lo: u64, n: u32, f: impl Fn(V) -> V) {
        let mut key = lo;
        let mut left = u64::from(n);
        while left > 0 {
            if key >= DENSE_LIMIT {
                self.update(key, &f);
                left -= 1;
                key = key.wrapping_add(1); // wraps only past the last key
                continue;
            }
            let pi = (key >> PAGE_BITS) as usize;
            let n_here = ((((pi as u64) + 1) << PAGE_BITS) - key).min(left);
            let p = self.page_of.get(pi).copied().unwrap_or(NO_PAGE);
            if p == NO_PAGE {
                if f(V::EMPTY) == V::EMPTY {
                    key += n_here;
                    left -= n_here;
                } else {
                    self.update(key, &f); // makes the page
                    key += 1;
                    left -= 1;
                }
                continue;
            }
            let start = slot_index(p, key);
            let slots = &mut self.slots[start..start + n_here as usize];
            let (mut added, mut removed) = (0u32, 0u32);
            for s in slots {
                let old = *s;
                let new = f(old);
                *s = new;
                added += u32::from(old == V::EMPTY && new != V::EMPTY);
                removed += u32::from(old != V::EMPTY && new == V::EMPTY);
            }
            let n_live = &mut self.n_live[p as usize];
            *n_live = *n_live + added - removed;
            self.len = self.len + added as usize - removed as usize;
            if *n_live == 0 {
                self.release_page(pi, p);
            }
            key += n_here;
            left -= n_here;
        }
    }

    /// Removes each of `keys`, a run of consecutive keys (up or down) at a
    /// time through [`DenseKeyMap::update_range`]: a pool evicts the blocks
    /// of one prompt together.
    pub fn remove_each(&mut self, keys: &[u64]) {
        let mut i = 0;
        while i < keys.len() {
            let n = run_len(&keys[i..]);
            let (a, b) = (keys[i], keys[i + n - 1]);
            self.update_range(a.min(b), n as u32, |_| V::EMPTY);
            i += n;
        }
    }

    /// For each `i`, sets key `lo + i` to `values[i]` (not [`Slot::EMPTY`])
    /// if it is absent; a key already held keeps its value and `held(i)` is
    /// called, in order. A page at a time, like [`DenseKeyMap::update_range`].
    pub fn insert_absent_range(&mut self, lo: u64, values: &[V], mut held: impl FnMut(usize)) {
        debug_assert!(values.iter().all(|&v| v != V::EMPTY));
        debug_assert!(values.is_empty() || lo.checked_add(values.len() as u64 - 1).is_some());
        let mut i = 0;
        while i < values.len() {
            let key = lo + i as u64;
            if key >= DENSE_LIMIT {
                let v = values[i];
                if self.update(key, |old| if old == V::EMPTY { v } else { old }) != V::EMPTY {
                    held(i);
                }
                i += 1;
                continue;
            }
            let pi = (key >> PAGE_BITS) as usize;
            let n_here = (((pi + 1) << PAGE_BITS) - key as usize).min(values.len() - i);
            let p = match self.page_of.get(pi).copied().unwrap_or(NO_PAGE) {
                NO_PAGE => self.claim_page(pi),
                p => p,
            };
            let start = slot_index(p, key);
            let mut added = 0u32;
            let slots = &mut self.slots[start..start + n_here];
            for (j, (s, &v)) in slots.iter_mut().zip(&values[i..i + n_here]).enumerate() {
                if *s == V::EMPTY {
                    *s = v;
                    added += 1;
                } else {
                    held(i + j);
                }
            }
            self.n_live[p as usize] += added;
            self.len += added as usize;
            i += n_here;
        }
    }

    fn update_dense(&mut self, key: u64, f: impl FnOnce(V) -> V) -> (V, V) {
        let pi = (key >> PAGE_BITS) as usize;
        let mut p = self.page_of.get(pi).copied().unwrap_or(NO_PAGE);
        if p == NO_PAGE {
            let new = f(V::EMPTY);
            if new == V::EMPTY {
                return (V::EMPTY, new);
            }
            p = self.claim_page(pi);
            self.slots[slot_index(p, key)] = new;
            self.n_live[p as usize] = 1;
            return (V::EMPTY, new);
        }
        let s = &mut self.slots[slot_index(p, key)];
        let old = *s;
        let new = f(old);
        *s = new;
        let n_live = &mut self.n_live[p as usize];
        match (old == V::EMPTY, new == V::EMPTY) {
            (true, false) => *n_live += 1,
            (false, true) => {
                *n_live -= 1;
                if *n_live == 0 {
                    self.release_page(pi, p);
                }
            }
            _ => {}
        }
        (old, new)
    }

    /// Page `p`, at `pi` in the page table, lost its last key: recycled.
    fn release_page(&mut self, pi: usize, p: u32) {
        self.page_of[pi] = NO_PAGE;
        self.free_pages.push(p);
    }

    /// A free page, entered in the page table at `pi` (it holds no key yet).
    fn claim_page(&mut self, pi: usize) -> u32 {
        let p = self.new_page();
        if self.page_of.len() <= pi {
            self.page_of.resize(pi + 1, NO_PAGE);
        }
        self.page_of[pi] = p;
        p
    }

    fn new_page(&mut self) -> u32 {
        self.free_pages.pop().unwrap_or_else(|| {
            self.slots.resize(self.slots.len() + PAGE_LEN, V::EMPTY);
            self.n_live.push(0);
            (self.n_live.len() - 1) as u32
        })
    }

    /// Sets `key` to `value` (not [`Slot::EMPTY`]); returns the old value.
    pub fn insert(&mut self, key: u64, value: V) -> V {
        debug_assert!(value != V::EMPTY, "EMPTY is reserved for absent keys");
        self.update(key, |_| value)
    }

    /// Removes `key`; returns its value ([`Slot::EMPTY`] if it was absent).
    pub fn remove(&mut self, key: u64) -> V {
        self.update(key, |_| V::EMPTY)
    }

    /// Applies `f` to every value ([`Slot::EMPTY`] removes the key).
    pub fn update_all(&mut self, mut f: impl FnMut(V) -> V) {
        let keys: Vec<u64> = self.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.update(k, &mut f);
        }
    }

    /// Every (key, value), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, V)> + '_ {
        let dense = self
            .page_of
            .iter()
            .enumerate()
            .filter(|(_, &p)| p != NO_PAGE)
            .flat_map(move |(pi, &p)| {
                self.slots[slot_index(p, 0)..][..PAGE_LEN]
                    .iter()
                    .enumerate()
                    .filter(|(_, &v)| v != V::EMPTY)
                    .map(move |(s, &v)| (((pi << PAGE_BITS) + s) as u64, v))
            });
        dense.chain(self.sparse.iter().map(|(&k, &v)| (k, v)))
    }
}

/// Whether `key` lives in the pages (else in the hash map).
pub fn is_dense(key: u64) -> bool {
    key < DENSE_LIMIT
}

/// How many of `keys` continue dense `key` one apart (`key + 1`, `key + 2`,
/// …) without leaving its page (0 for a key that is not dense).
pub fn consecutive_in_page(key: u64, keys: &[u64]) -> usize {
    if !is_dense(key) {
        return 0;
    }
    let in_page = PAGE_LEN - 1 - (key as usize & (PAGE_LEN - 1));
    keys[..keys.len().min(in_page)]
        .iter()
        .zip(key + 1..)
        .take_while(|&(&k, want)| k == want)
        .count()
}

/// Length of the run of consecutive keys, up or down, that starts `keys`
/// (0 only for no keys).
pub fn run_len(keys: &[u64]) -> usize {
    leading_run(keys).0
}

/// The run of consecutive keys, up or down, that starts `keys`: its length
/// (0 only for no keys) and whether it goes down (never for one key). A
/// step past either end of the u64 range ends a run.
pub fn leading_run(keys: &[u64]) -> (usize, bool) {
    let (a, b) = match keys {
        [] => return (0, false),
        [_] => return (1, false),
        [a, b, ..] => (*a, *b),
    };
    let down = a.checked_sub(1) == Some(b);
    if !down && a.checked_add(1) != Some(b) {
        return (1, false);
    }
    // Key i of the run is a ± i. Compare eight keys at a time (the loop
    // vectorises), then one by one; the sums wrap, so the run is then cut
    // where it would pass an end of the range.
    let step = if down { u64::MAX } else { 1 };
    let key_at = |i: usize| a.wrapping_add((i as u64).wrapping_mul(step));
    let mut n = 2;
    while n + 8 <= keys.len() && (0..8).fold(true, |ok, j| ok & (keys[n + j] == key_at(n + j))) {
        n += 8;
    }
    while n < keys.len() && keys[n] == key_at(n) {
        n += 1;
    }
    let steps_left = if down { a } else { u64::MAX - a };
    let cap = usize::try_from(steps_left).map_or(usize::MAX, |s| s.saturating_add(1));
    (n.min(cap), down)
}

/// Where `key` lives in page `p`.
fn slot_index(p: u32, key: u64) -> usize {
    ((p as usize) << PAGE_BITS) | (key as usize & (PAGE_LEN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Agrees with a BTreeMap under any mix of dense and hashed keys, and
        /// recycles pages: after removing everything no page is live.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(
            (prop_oneof![0u64..2000, (DENSE_LIMIT - 300)..(DENSE_LIMIT + 300), any::<u64>()],
             prop_oneof![Just(u32::MAX), 0u32..5]),
            1..400,
        )) {
            let mut m = DenseKeyMap::<u32>::default();
            let mut model = BTreeMap::new();
            for (k, v) in ops {
                let old = if v == u32::MAX { m.remove(k) } else { m.insert(k, v) };
                let want = if v == u32::MAX { model.remove(&k) } else { model.insert(k, v) };
                prop_assert_eq!(old, want.unwrap_or(u32::MAX));
                prop_assert_eq!(m.get(k), model.get(&k).copied().unwrap_or(u32::MAX));
                prop_assert_eq!(m.len(), model.len());
            }
            prop_assert_eq!(entries(&m), model.iter().map(|(&k, &v)| (k, v)).collect::<Vec<_>>());
            // Runs of neighbouring keys through update_each, as the map would.
            let keys: Vec<u64> = model.keys().copied().chain(0..600)
                .collect::<std::collections::BTreeSet<u64>>().into_iter().collect();
            let mut each = m.clone();
            each.update_each(&keys, |v| if v == u32::MAX { 1 } else if v == 1 { u32::MAX } else { v + 1 });
            for &k in &keys {
                let v = m.get(k);
                let want = if v == u32::MAX { 1 } else if v == 1 { u32::MAX } else { v + 1 };
                prop_assert_eq!(each.get(k), want);
            }
            prop_assert_eq!(each.len(), each.iter().count());
            // Ranges, page by page, as the map key by key, across the end
            // of the dense keys too.
            for (lo, n) in [(0u64, 600u32), (DENSE_LIMIT - 300, 600), (u64::MAX - 5, 6)] {
                let flip = |v: u32| if v == u32::MAX { 1 } else if v == 1 { u32::MAX } else { v + 1 };
                let mut ranged = m.clone();
                let mut keyed = m.clone();
                ranged.update_range(lo, n, flip);
                for i in 0..u64::from(n) {
                    keyed.update(lo + i, flip);
                }
                prop_assert_eq!(entries(&ranged), entries(&keyed));
                prop_assert_eq!(ranged.len(), keyed.len());
                prop_assert!(pages_agree(&ranged));
                // Removing the range leaves no page it emptied live.
                ranged.update_range(lo, n, |_| u32::MAX);
                prop_assert_eq!(ranged.len(), ranged.iter().count());
                prop_assert!(pages_agree(&ranged));
            }
            // Inserting a run where absent, and removing runs of keys in
            // any order, as key by key.
            for (lo, n) in [(250u64, 300u32), (DENSE_LIMIT - 3, 6), (u64::MAX - 3, 4)] {
                let values: Vec<u32> = (0..n).map(|i| i % 7).collect();
                let mut ranged = m.clone();
                let mut keyed = m.clone();
                let mut held = Vec::new();
                ranged.insert_absent_range(lo, &values, |i| held.push(i));
                let mut want_held = Vec::new();
                for (i, &v) in values.iter().enumerate() {
                    let old = keyed.update(lo + i as u64, |o| if o == u32::MAX { v } else { o });
                    if old != u32::MAX {
                        want_held.push(i);
                    }
                }
                prop_assert_eq!(held, want_held);
                prop_assert_eq!(entries(&ranged), entries(&keyed));
                prop_assert_eq!(ranged.len(), keyed.len());
                prop_assert!(pages_agree(&ranged));
                // Down, up and scattered keys.
                let mut gone: Vec<u64> = (0..u64::from(n)).rev().map(|i| lo + i).step_by(2).collect();
                gone.extend(keys.iter().copied().take(50));
                ranged.remove_each(&gone);
                for &k in &gone {
                    keyed.remove(k);
                }
                prop_assert_eq!(entries(&ranged), entries(&keyed));
                prop_assert_eq!(ranged.len(), keyed.len());
                prop_assert!(pages_agree(&ranged));
            }
            // A stretch of keys read at once, as key by key: consecutive
            // keys within a page, with gaps and page ends in the way.
            let mut probe: Vec<u64> = (240u64..300).chain(302..310).chain([700, 701]).collect();
            probe.extend((DENSE_LIMIT - 3)..(DENSE_LIMIT + 2));
            for i in 0..probe.len() {
                let k = probe[i];
                let want = probe[i + 1..]
                    .iter()
                    .zip(k + 1..)
                    .take_while(|&(&next, want)| {
                        next == want && is_dense(k) && next >> PAGE_BITS == k >> PAGE_BITS
                            && m.get(next) == m.get(k)
                    })
                    .count();
                prop_assert_eq!(m.count_same_after(k, &probe[i + 1..], m.get(k)), want, "key {}", k);
            }
            m.update_all(|_| u32::MAX);
            prop_assert!(m.is_empty());
            prop_assert!(m.page_of.iter().all(|&p| p == NO_PAGE));
            prop_assert_eq!(m.free_pages.len(), m.n_live.len());
        }
    }

    /// Every (key, value), sorted.
    fn entries(m: &DenseKeyMap<u32>) -> Vec<(u64, u32)> {
        let mut all: Vec<(u64, u32)> = m.iter().collect();
        all.sort_unstable();
        all
    }

    /// Each live page counts its keys right and holds at least one.
    fn pages_agree(m: &DenseKeyMap<u32>) -> bool {
        m.page_of.iter().filter(|&&p| p != NO_PAGE).all(|&p| {
            let held = m.slots[slot_index(p, 0)..][..PAGE_LEN]
                .iter()
                .filter(|&&v| v != u32::MAX)
                .count() as u32;
            held > 0 && held == m.n_live[p as usize]
        })
    }

    #[test]
    fn a_run_outlives_the_page_it_empties() {
        let mut m = DenseKeyMap::<u32>::default();
        m.insert(7, 1);
        // Removing 7 frees the page; 8, in the same page, needs a new one.
        m.update_each(&[7, 8, 9], |v| if v == 1 { u32::MAX } else { 2 });
        assert_eq!((m.get(7), m.get(8), m.get(9), m.len()), (u32::MAX, 2, 2, 2));
        m.update_each(&[8, 9], |_| u32::MAX);
        assert!(m.is_empty());
        assert!(m.page_of.iter().all(|&p| p == NO_PAGE));
    }

    #[test]
    fn runs_of_keys_go_up_or_down_and_stop_at_the_ends_of_u64() {
        assert_eq!(run_len(&[]), 0);
        assert_eq!(run_len(&[5]), 1);
        assert_eq!(run_len(&[5, 6, 7, 9]), 3);
        assert_eq!(run_len(&[9, 8, 7, 7]), 3);
        assert_eq!(run_len(&[5, 6, 5]), 2);
        assert_eq!(run_len(&[u64::MAX - 1, u64::MAX, 0]), 2);
        assert_eq!(run_len(&[1, 0, u64::MAX]), 2);
        assert_eq!(run_len(&[u64::MAX, 0]), 1);
        // Long runs, past the eight-at-a-time stretch, that wrap late.
        let up: Vec<u64> = (0..20).map(|i| (u64::MAX - 12).wrapping_add(i)).collect();
        assert_eq!(leading_run(&up), (13, false));
        let down: Vec<u64> = (0..20).map(|i| 11u64.wrapping_sub(i)).collect();
        assert_eq!(leading_run(&down), (12, true));
    }

    proptest! {
        /// The run found equals the one found key by key.
        #[test]
        fn leading_run_matches_a_key_by_key_scan(
            start in prop_oneof![0u64..4, Just(u64::MAX - 20), any::<u64>()],
            len in 0usize..30,
            down in any::<bool>(),
            break_at in 0usize..30,
            other in any::<u64>(),
        ) {
            let mut keys: Vec<u64> = (0..len as u64)
                .map(|i| if down { start.wrapping_sub(i) } else { start.wrapping_add(i) })
                .collect();
            if break_at < len {
                keys[break_at] = other;
            }
            let mut n = keys.len().min(1);
            let dir = keys.get(1).map(|&b| keys[0].checked_sub(1) == Some(b));
            while n < keys.len() {
                let next = match dir {
                    Some(true) => keys[n - 1].checked_sub(1),
                    _ => keys[n - 1].checked_add(1),
                };
                if next != Some(keys[n]) {
                    break;
                }
                n += 1;
            }
            prop_assert_eq!(leading_run(&keys), (n, n > 1 && dir == Some(true)));
        }
    }

    #[test]
    fn pages_are_reused() {
        let mut m = DenseKeyMap::<u64>::default();
        m.insert(5, 1);
        m.remove(5);
        m.insert(100_000, 2);
        assert_eq!(m.n_live.len(), 1, "the freed page served the new key");
        assert_eq!((m.get(100_000), m.get(5)), (2, 0));
    }
}
