//! In-memory KV-block index: `LRU<(model, key), PodCache>` bounded at
//! `size` keys (1e8), each `PodCache` an LRU of at most `pod_cache_size` (10)
//! [`PodEntry`]s.
//!
//! **Lookup** walks the keys in prompt order and, per [`LookupStop`]:
//! - `InMemory` (upstream in-memory backend): skips absent keys and stops at a
//!   key that is present but holds no entry at all;
//! - `Redis` (Redis/Valkey backend: pipelined `HKEYS`): stops at the first key
//!   with no entry among the requested pods (absent keys included).
//!
//! The LongestPrefix scorer cuts at the first key without its pod anyway, so
//! the two modes only differ in what a caller sees of the keys after a gap.
//! A lookup ([`KvBlockLookup::lookup`], the EPP's path) touches the keys it
//! reads (LRU recency), as `lru.Get` does, and purges the expired
//! speculative entries it meets; [`KvIndex::peek`] reads without changing
//! anything (diagnostics, tests).
//!
//! **Events**: `BlockStored` adds `(pod, tier = lowercase(medium) or gpu)` for
//! each hash; `BlockRemoved` removes that entry and drops the key when it is
//! left empty (or keeps it empty with `remove_empty_keys = false`, as older
//! versions did, which makes the in-memory stop rule fire); `AllBlocksCleared`
//! is ignored (upstream until llm-d-kv-cache PR #593) or removes every entry
//! of the pod ([`ClearedPolicy`]).
//!
//! **Speculative entries** carry an expiry time; a lookup at or after it does
//! not see them, and they are purged lazily. They participate in scoring
//! exactly like confirmed entries.
//!
//! Keys are the engines' block hashes unchanged; how the router's prompt
//! keys relate to them (request or engine keys) is
//! [`crate::cluster::key_spaces`]'s business.

use crate::epp::lru::LruMap;
use crate::epp::plugin::{KeyEntries, KvBlockLookup, PodEntry, SpeculativeIndex, Tier};
use crate::epp::view::EndpointId;
use crate::index::event::KvEvent;
use crate::index::key_ops::{KeyBatch, KeyOp};
use crate::index::masks::{MaskTables, MAX_POD, PRESENT};
use rustc_hash::FxHashMap;

/// A model as the index numbers it ([`KvIndex::intern_model`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ModelId(u32);

/// Where a lookup stops.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LookupStop {
    /// Skip absent keys, stop at a present-but-empty key.
    #[default]
    InMemory,
    /// Stop at the first key with no entry among the requested pods.
    Redis,
}

/// What `AllBlocksCleared` does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ClearedPolicy {
    /// No-op (upstream until May 2026).
    #[default]
    Ignore,
    /// Remove every entry of the pod (llm-d-kv-cache PR #593).
    RemovePod,
}

/// Index parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexConfig {
    /// Maximum number of keys (`inMemoryConfig.size`, 1e8).
    pub size: usize,
    /// Maximum entries per key (`podCacheSize`, 10).
    pub pod_cache_size: usize,
    /// Lookup stop rule.
    pub stop: LookupStop,
    /// `AllBlocksCleared` handling.
    pub cleared: ClearedPolicy,
    /// Drop a key when its last entry is evicted (current upstream).
    pub remove_empty_keys: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            size: 100_000_000,
            pod_cache_size: 10,
            stop: LookupStop::InMemory,
            cleared: ClearedPolicy::Ignore,
            remove_empty_keys: true,
        }
    }
}

/// One stored entry with its expiry (`u64::MAX` for confirmed entries).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Slot {
    entry: PodEntry,
    expires_at_ns: u64,
}

/// Per-key LRU of entries, oldest first.
#[derive(Clone, Debug, Default)]
struct PodCache(smallvec::SmallVec<[Slot; 2]>);

impl PodCache {
    fn add(&mut self, entry: PodEntry, expires_at_ns: u64, cap: usize) {
        if let Some(i) = self.0.iter().position(|s| s.entry == entry) {
            let mut s = self.0.remove(i);
            s.expires_at_ns = s.expires_at_ns.max(expires_at_ns);
            self.0.push(s);
        } else {
            if self.0.len() >= cap.max(1) {
                self.0.remove(0);
            }
            self.0.push(Slot {
                entry,
                expires_at_ns,
            });
        }
    }

    fn purge(&mut self, now_ns: u64) {
        self.0.retain(|s| s.expires_at_ns > now_ns);
    }
}

/// The in-memory KV-block index.
pub struct KvIndex {
    cfg: IndexConfig,
    models: Vec<String>,
    model_ids: FxHashMap<String, u32>,
    data: Store,
    /// Pods `0..mask_pods` may live in [`Store::Masks`].
    mask_pods: u32,
}

/// The key store.
enum Store {
    /// The plain map for the case the simulator runs almost always: only
    /// confirmed GPU entries of pods `0..mask_pods` (at most
    /// `min(pod_cache_size, MAX_POD + 1)` of them), so a key's entries are a
    /// set of pods (the per-key LRU can never overflow and its order is never
    /// read) and fit one bitmask ([`MaskTables`]). Anything else
    /// converts it to [`Slots::Plain`] first ([`Store::slots_mut`]).
    Masks(MaskTables),
    /// Keys with their per-key entry caches.
    Slots(Slots),
}

/// Keys with their [`PodCache`]s: an LRU bounded by `size`, or a plain map
/// when the caller guarantees the bound can never be reached (then LRU order
/// is unobservable and maintaining it is wasted work).
enum Slots {
    Lru(LruMap<(u32, u64), PodCache>),
    Plain(FxHashMap<(u32, u64), PodCache>),
}

/// `mask` without the pods of `bits`; a key left without pods is dropped
/// (0) when `remove_empty`, else stays present.
fn mask_without(mask: u64, bits: u64, remove_empty: bool) -> u64 {
    match mask & !bits {
        PRESENT if remove_empty => 0,
        rest => rest,
    }
}

/// The mask bit of `pod` in [`Store::Masks`].
fn pod_bit(pod: EndpointId) -> u64 {
    1 << pod.0
}

/// Entries of the pods in `mask`, lowest pod first.
fn mask_entries(mask: u64) -> impl Iterator<Item = PodEntry> {
    let mut mask = mask & !PRESENT;
    std::iter::from_fn(move || {
        let pod = EndpointId(mask.trailing_zeros());
        (mask != 0).then(|| {
            mask &= mask - 1;
            PodEntry {
                pod,
                tier: Tier::Gpu,
                speculative: false,
            }
        })
    })
}

impl Store {
    fn len(&self) -> usize {
        match self {
            Store::Masks(ms) => ms.len(),
            Store::Slots(s) => s.len(),
        }
    }

    /// The slot store, converting masks first (entries in pod order).
    fn slots_mut(&mut self) -> &mut Slots {
        if let Store::Masks(ms) = self {
            let mut plain = FxHashMap::default();
            for (model, k, mask) in ms.entries() {
                let slots = mask_entries(mask).map(|entry| Slot {
                    entry,
                    expires_at_ns: u64::MAX,
                });
                plain.insert((model, k), PodCache(slots.collect()));
            }
            *self = Store::Slots(Slots::Plain(plain));
        }
        match self {
            Store::Slots(s) => s,
            Store::Masks(_) => unreachable!("converted above"),
        }
    }
}

impl Slots {
    fn len(&self) -> usize {
        match self {
            Slots::Lru(m) => m.len(),
            Slots::Plain(m) => m.len(),
        }
    }
    fn get_or_insert_default(&mut self, k: (u32, u64)) -> &mut PodCache {
        match self {
            Slots::Lru(m) => m.get_or_insert_default(k),
            Slots::Plain(m) => m.entry(k).or_default(),
        }
    }
    fn get_mut(&mut self, k: &(u32, u64)) -> Option<&mut PodCache> {
        match self {
            Slots::Lru(m) => m.get_mut(k),
            Slots::Plain(m) => m.get_mut(k),
        }
    }
    fn peek(&self, k: &(u32, u64)) -> Option<&PodCache> {
        match self {
            Slots::Lru(m) => m.peek(k),
            Slots::Plain(m) => m.get(k),
        }
    }
    fn remove(&mut self, k: &(u32, u64)) {
        match self {
            Slots::Lru(m) => {
                m.remove(k);
            }
            Slots::Plain(m) => {
                m.remove(k);
            }
        }
    }
    /// Every key (order irrelevant: callers only remove).
    fn keys(&self) -> Vec<(u32, u64)> {
        match self {
            Slots::Lru(m) => m.keys_lru_order(),
            Slots::Plain(m) => m.keys().copied().collect(),
        }
    }
    /// Drops the entries of key `k` that `drop` selects, and the key when
    /// that leaves it empty and `remove_empty` is set. Touches no recency.
    fn remove_where(&mut self, k: (u32, u64), remove_empty: bool, drop: impl Fn(&Slot) -> bool) {
        match self {
            Slots::Plain(map) => {
                // One probe.
                if let std::collections::hash_map::Entry::Occupied(mut o) = map.entry(k) {
                    o.get_mut().0.retain(|s| !drop(s));
                    if o.get().0.is_empty() && remove_empty {
                        o.remove();
                    }
                }
            }
            Slots::Lru(m) => {
                let Some(pc) = m.peek_mut(&k) else {
                    return;
                };
                pc.0.retain(|s| !drop(s));
                if pc.0.is_empty() && remove_empty {
                    m.remove(&k);
                }
            }
        }
    }
}

/// Whether `entry` with `expires_at_ns` fits [`Store::Masks`] of `mask_pods` pods.
fn maskable(entry: &PodEntry, expires_at_ns: u64, mask_pods: u32) -> bool {
    entry.tier == Tier::Gpu
        && !entry.speculative
        && expires_at_ns == u64::MAX
        && entry.pod.0 < mask_pods
}

impl KvIndex {
    /// An empty index.
    pub fn new(cfg: IndexConfig) -> Self {
        let data = Store::Slots(Slots::Lru(LruMap::new(cfg.size)));
        KvIndex {
            cfg,
            models: Vec::new(),
            model_ids: FxHashMap::default(),
            data,
            mask_pods: 0,
        }
    }

    /// An index whose caller guarantees it never holds more than `max_keys`
    /// keys (e.g. the pods' total block count with speculative entries off)
    /// and expects entries of pods `0..n_pods`: when the bound is within
    /// `cfg.size`, the LRU can never evict, so a plain map gives identical
    /// results faster, and a pod bitmask per key when
    /// `n_pods` fits both a mask and `pod_cache_size`.
    ///
    /// An entry a mask cannot hold (another tier, speculative, a pod outside
    /// `0..n_pods`) converts the masks to the plain map, entries in pod order.
    /// Results stay identical unless a key later overflows `pod_cache_size`,
    /// where the general store would have evicted by recency instead.
    pub fn with_key_bound(cfg: IndexConfig, max_keys: u64, n_pods: usize) -> Self {
        if max_keys > cfg.size as u64 {
            return KvIndex::new(cfg);
        }
        let mask_pods = n_pods.min(cfg.pod_cache_size).min(MAX_POD as usize + 1);
        let data = if mask_pods == n_pods {
            Store::Masks(MaskTables::new(mask_pods as u32))
        } else {
            Store::Slots(Slots::Plain(FxHashMap::default()))
        };
        KvIndex {
            data,
            mask_pods: mask_pods as u32,
            ..KvIndex::new(cfg)
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.cfg
    }

    /// Number of keys held.
    pub fn n_keys(&self) -> usize {
        self.data.len()
    }

    /// The id of `model`, if it has one. An index serves one model or a
    /// few, and this runs once per event batch and lookup: comparing a few
    /// names beats hashing the name.
    fn find_model(&self, model: &str) -> Option<u32> {
        if self.models.len() <= 4 {
            self.models
                .iter()
                .position(|m| m == model)
                .map(|i| i as u32)
        } else {
            self.model_ids.get(model).copied()
        }
    }

    fn model_id(&mut self, model: &str) -> u32 {
        if let Some(id) = self.find_model(model) {
            return id;
        }
        let id = self.models.len() as u32;
        self.models.push(model.to_string());
        self.model_ids.insert(model.to_string(), id);
        id
    }

    /// `Add(keys, entries)`: every key gets every entry (confirmed).
    pub fn add(&mut self, model: &str, keys: &[u64], entries: &[PodEntry]) {
        let m = self.model_id(model);
        self.add_with_expiry(m, keys, entries, u64::MAX);
    }

    fn add_with_expiry(&mut self, m: u32, keys: &[u64], entries: &[PodEntry], expires_at_ns: u64) {
        if let Store::Masks(ms) = &mut self.data {
            if entries
                .iter()
                .all(|e| maskable(e, expires_at_ns, self.mask_pods))
            {
                let bits = entries.iter().fold(0, |b, e| b | pod_bit(e.pod));
                ms.update_each(m, keys, |old| old | PRESENT | bits);
                return;
            }
        }
        let cap = self.cfg.pod_cache_size;
        let slots = self.data.slots_mut();
        for &k in keys {
            let pc = slots.get_or_insert_default((m, k));
            for e in entries {
                pc.add(*e, expires_at_ns, cap);
            }
        }
    }

    /// `Evict(key, entries)`: removes the entries; drops the key if left empty
    /// (unless `remove_empty_keys` is off).
    pub fn evict(&mut self, model: &str, key: u64, entries: &[PodEntry]) {
        let Some(m) = self.find_model(model) else {
            return;
        };
        self.evict_keys(m, &[key], entries);
    }

    /// [`KvIndex::evict`] of `entries` from each of `keys`, in order.
    fn evict_keys(&mut self, m: u32, keys: &[u64], entries: &[PodEntry]) {
        let remove_empty = self.cfg.remove_empty_keys;
        match &mut self.data {
            Store::Masks(ms) => {
                // Entries that never fit a mask cannot be in it: removing them is a no-op.
                let bits = entries.iter().fold(0, |b, e| {
                    if e.tier == Tier::Gpu && !e.speculative && e.pod.0 <= MAX_POD {
                        b | pod_bit(e.pod)
                    } else {
                        b
                    }
                });
                ms.update_each(m, keys, |old| mask_without(old, bits, remove_empty));
            }
            Store::Slots(s) => {
                for &k in keys {
                    s.remove_where((m, k), remove_empty, |slot| entries.contains(&slot.entry))
                }
            }
        }
    }

    /// `AllBlocksCleared` from `pod`, per [`ClearedPolicy`].
    fn on_cleared(&mut self, pod: EndpointId) {
        if self.cfg.cleared == ClearedPolicy::RemovePod {
            self.remove_pod(pod);
        }
    }

    /// Applies `events` published by `pod` for `model`, in order.
    pub fn apply(&mut self, pod: EndpointId, model: &str, events: &[KvEvent]) {
        let m = self.model_id(model);
        for ev in events {
            match ev {
                KvEvent::BlockStored {
                    block_hashes,
                    medium,
                    ..
                } => {
                    let e = PodEntry {
                        pod,
                        tier: Tier::from_medium(medium.as_deref()),
                        speculative: false,
                    };
                    self.add_with_expiry(m, block_hashes, &[e], u64::MAX);
                }
                KvEvent::BlockRemoved {
                    block_hashes,
                    medium,
                } => {
                    let e = PodEntry {
                        pod,
                        tier: Tier::from_medium(medium.as_deref()),
                        speculative: false,
                    };
                    self.evict_keys(m, block_hashes, &[e]);
                }
                KvEvent::AllBlocksCleared => self.on_cleared(pod),
            }
        }
    }

    /// `model`'s id, for the calls that take one instead of the name (the
    /// name's lookup costs more than a small batch of events).
    pub fn intern_model(&mut self, model: &str) -> ModelId {
        ModelId(self.model_id(model))
    }

    /// Applies a batch of a vLLM engine's events reduced to key runs (the
    /// simulator's path; GPU tier): the same as applying the events.
    pub fn apply_key_batch(&mut self, pod: EndpointId, model: ModelId, batch: KeyBatch<'_>) {
        let m = model.0;
        let e = PodEntry {
            pod,
            tier: Tier::Gpu,
            speculative: false,
        };
        let remove_empty = self.cfg.remove_empty_keys;
        let mut keys = Vec::new();
        for run in batch.runs {
            // The masks take a run a page at a time (its keys are distinct,
            // so their order does not matter there).
            if let Store::Masks(ms) = &mut self.data {
                let (lo, n) = (run.lowest(), run.n_keys);
                match run.op {
                    KeyOp::Store if maskable(&e, u64::MAX, self.mask_pods) => {
                        ms.add_range(m, lo, n, pod_bit(pod));
                        continue;
                    }
                    KeyOp::Remove if pod.0 <= MAX_POD => {
                        ms.remove_range(m, lo, n, pod_bit(pod), remove_empty);
                        continue;
                    }
                    _ => {}
                }
            }
            keys.clear();
            keys.extend(run.keys());
            match run.op {
                KeyOp::Store => self.add_with_expiry(m, &keys, &[e], u64::MAX),
                KeyOp::Remove => self.evict_keys(m, &keys, &[e]),
                KeyOp::Clear => self.on_cleared(pod),
            }
        }
    }

    /// Removes every entry of `pod` (O(keys)).
    pub fn remove_pod(&mut self, pod: EndpointId) {
        let remove_empty = self.cfg.remove_empty_keys;
        match &mut self.data {
            Store::Masks(ms) => {
                if pod.0 > MAX_POD {
                    return;
                }
                ms.update_all(|old| mask_without(old, pod_bit(pod), remove_empty));
            }
            Store::Slots(s) => {
                for k in s.keys() {
                    s.remove_where(k, remove_empty, |slot| slot.entry.pod == pod);
                }
            }
        }
    }

    /// Entries of one key as a lookup at `now_ns` would see them (no touch).
    pub fn entries(&self, model: &str, key: u64, now_ns: u64) -> Vec<PodEntry> {
        let Some(m) = self.find_model(model) else {
            return Vec::new();
        };
        match &self.data {
            Store::Masks(ms) => mask_entries(ms.table(m).get(key)).collect(),
            Store::Slots(s) => s
                .peek(&(m, key))
                .map(|pc| {
                    pc.0.iter()
                        .filter(|s| s.expires_at_ns > now_ns)
                        .map(|s| s.entry)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What a lookup sees of one key.
enum Seen<I> {
    /// Absent, or holding only expired speculative entries (upstream's TTL
    /// cache would have evicted them and dropped the key).
    Absent,
    /// Present but without any entry.
    Empty,
    /// Present; the live entries of the requested pods (possibly none).
    Entries(I),
}

/// One key of a lookup under the stop rule; returns false when the lookup
/// stops here. The one place both stores' lookups apply [`LookupStop`].
fn lookup_step<I: Iterator<Item = PodEntry>>(
    stop: LookupStop,
    seen: Seen<I>,
    out: &mut KeyEntries,
) -> bool {
    match seen {
        Seen::Absent if stop == LookupStop::Redis => false,
        Seen::Absent => {
            out.push_key([]);
            true
        }
        // Present but empty: both backends stop.
        Seen::Empty => false,
        Seen::Entries(entries) => {
            let mut entries = entries.peekable();
            if stop == LookupStop::Redis && entries.peek().is_none() {
                return false;
            }
            out.push_key(entries);
            true
        }
    }
}

/// [`Seen`] of a key of the slot stores.
fn seen_slots<'a>(
    slots: Option<&'a [Slot]>,
    now_ns: u64,
    pods: &'a [EndpointId],
) -> Seen<impl Iterator<Item = PodEntry> + 'a> {
    let live = move |s: &Slot| s.expires_at_ns > now_ns;
    match slots {
        None => Seen::Absent,
        Some([]) => Seen::Empty,
        Some(sl) if !sl.iter().any(live) => Seen::Absent,
        Some(sl) => Seen::Entries(
            sl.iter()
                .filter(move |s| live(s) && (pods.is_empty() || pods.contains(&s.entry.pod)))
                .map(|s| s.entry),
        ),
    }
}

/// [`Seen`] of a key of [`Store::Masks`], keeping the pods in `wanted`.
fn seen_mask(mask: u64, wanted: u64) -> Seen<impl Iterator<Item = PodEntry>> {
    match mask {
        0 => Seen::Absent,
        PRESENT => Seen::Empty,
        m => Seen::Entries(mask_entries(m & wanted)),
    }
}

impl KvBlockLookup for KvIndex {
    /// Refreshes the recency of the keys read (slot stores; the mask store
    /// has none) and purges the expired speculative entries it meets.
    fn lookup(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    ) {
        out.clear();
        let Some(m) = self.find_model(model) else {
            return;
        };
        let stop = self.cfg.stop;
        let slots = match &mut self.data {
            Store::Slots(s) => s,
            // No speculative entries to purge, no recency to refresh.
            Store::Masks(_) => return self.peek(model, keys, pods, now_ns, out),
        };
        for &k in keys {
            // Expired speculative entries are evicted; a key they leave empty
            // is dropped, as upstream's TTL eviction does.
            let emptied = slots.get_mut(&(m, k)).is_some_and(|pc| {
                let had = !pc.0.is_empty();
                pc.purge(now_ns);
                had && pc.0.is_empty()
            });
            if emptied {
                slots.remove(&(m, k));
            }
            let slots = slots.peek(&(m, k)).map(|pc| &pc.0[..]);
            if !lookup_step(stop, seen_slots(slots, now_ns, pods), out) {
                return;
            }
        }
    }

    /// The mask store changes nothing on a lookup, so it stops where the
    /// prefix of every pod asked for has ended.
    fn lookup_prefix(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    ) {
        match self.data {
            Store::Masks(_) => self.read(model, keys, pods, now_ns, true, out),
            Store::Slots(_) => self.lookup(model, keys, pods, now_ns, out),
        }
    }
}

impl KvIndex {
    /// A lookup that changes nothing: no LRU touch, expired entries hidden
    /// but kept.
    pub fn peek(
        &self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        out: &mut KeyEntries,
    ) {
        self.read(model, keys, pods, now_ns, false, out);
    }

    /// [`KvIndex::peek`]; with `prefix_only`, the mask store stops after
    /// the key that leaves no pod of `pods` holding every key so far.
    fn read(
        &self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        now_ns: u64,
        prefix_only: bool,
        out: &mut KeyEntries,
    ) {
        out.clear();
        let Some(m) = self.find_model(model) else {
            return;
        };
        let stop = self.cfg.stop;
        match &self.data {
            Store::Masks(ms) => {
                let wanted = if pods.is_empty() {
                    u64::MAX
                } else {
                    pods.iter()
                        .filter(|p| p.0 <= MAX_POD)
                        .fold(0, |b, &p| b | pod_bit(p))
                };
                let table = ms.table(m);
                let mut last = None;
                // The wanted pods holding every key so far.
                let mut prefix_pods = wanted;
                let mut i = 0;
                while i < keys.len() {
                    let k = keys[i];
                    i += 1;
                    let mask = table.get(k);
                    // The same mask again: the same entries, and the same
                    // stop decision as last time (which was to go on).
                    if last == Some(mask) {
                        out.repeat_last_key(1);
                    } else if lookup_step(stop, seen_mask(mask, wanted), out) {
                        last = Some(mask);
                    } else {
                        return;
                    }
                    // The keys that continue `k` in its page with the same
                    // mask (a prompt's blocks, cached together or not at
                    // all) read the same: take them at once.
                    let n = table.count_same_after(k, &keys[i..], mask);
                    out.repeat_last_key(n);
                    i += n;
                    prefix_pods &= mask;
                    if prefix_only && prefix_pods & !PRESENT == 0 {
                        return;
                    }
                }
            }
            Store::Slots(s) => {
                for &k in keys {
                    let cache = s.peek(&(m, k)).map(|pc| &pc.0[..]);
                    if !lookup_step(stop, seen_slots(cache, now_ns, pods), out) {
                        return;
                    }
                }
            }
        }
    }
}

impl SpeculativeIndex for KvIndex {
    fn add_speculative(
        &mut self,
        model: &str,
        keys: &[u64],
        pods: &[EndpointId],
        expires_at_ns: u64,
    ) {
        let m = self.model_id(model);
        let entries: Vec<PodEntry> = pods
            .iter()
            .map(|&pod| PodEntry {
                pod,
                tier: Tier::Gpu,
                speculative: true,
            })
            .collect();
        self.add_with_expiry(m, keys, &entries, expires_at_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "model";

    fn e(p: u32) -> PodEntry {
        PodEntry {
            pod: EndpointId(p),
            tier: Tier::Gpu,
            speculative: false,
        }
    }

    fn look(ix: &KvIndex, keys: &[u64], pods: &[u32], now: u64) -> Vec<Vec<u32>> {
        let pods: Vec<EndpointId> = pods.iter().map(|&p| EndpointId(p)).collect();
        let mut out = KeyEntries::default();
        ix.peek(M, keys, &pods, now, &mut out);
        (0..out.n_keys())
            .map(|i| out.key(i).iter().map(|x| x.pod.0).collect())
            .collect()
    }

    #[test]
    fn in_memory_skips_absent_and_stops_at_empty() {
        let mut ix = KvIndex::new(IndexConfig {
            remove_empty_keys: false,
            ..Default::default()
        });
        ix.add(M, &[1, 3, 4, 5], &[e(0)]);
        ix.evict(M, 4, &[e(0)]); // key 4 present but empty
        assert_eq!(
            look(&ix, &[1, 2, 3, 4, 5], &[], 0),
            vec![vec![0], vec![], vec![0]]
        );
        // pod filter: key present with only other pods still counts as non-empty
        assert_eq!(look(&ix, &[1, 3], &[7], 0), vec![Vec::<u32>::new(), vec![]]);
    }

    #[test]
    fn redis_stops_at_first_key_without_filtered_pods() {
        let mut ix = KvIndex::new(IndexConfig {
            stop: LookupStop::Redis,
            ..Default::default()
        });
        ix.add(M, &[1, 3], &[e(0)]);
        ix.add(M, &[1], &[e(1)]);
        assert_eq!(look(&ix, &[1, 2, 3], &[], 0), vec![vec![0, 1]]);
        assert_eq!(look(&ix, &[1, 3], &[1], 0), vec![vec![1]]);
    }

    #[test]
    fn evict_removes_empty_keys_by_default() {
        let mut ix = KvIndex::new(IndexConfig::default());
        ix.add(M, &[1, 2], &[e(0), e(1)]);
        ix.evict(M, 2, &[e(0)]);
        assert_eq!(look(&ix, &[1, 2], &[], 0), vec![vec![0, 1], vec![1]]);
        ix.evict(M, 2, &[e(1)]);
        assert_eq!(ix.n_keys(), 1);
        assert_eq!(
            look(&ix, &[1, 2, 1], &[], 0),
            vec![vec![0, 1], vec![], vec![0, 1]]
        );
    }

    #[test]
    fn events_apply_tiers_and_clear_policy() {
        let mut ix = KvIndex::new(IndexConfig::default());
        ix.apply(
            EndpointId(0),
            M,
            &[
                KvEvent::BlockStored {
                    block_hashes: vec![1, 2],
                    parent: None,
                    tokens: None,
                    medium: None,
                },
                KvEvent::BlockStored {
                    block_hashes: vec![2],
                    parent: Some(1),
                    tokens: None,
                    medium: Some("CPU".into()),
                },
                KvEvent::BlockRemoved {
                    block_hashes: vec![1],
                    medium: Some("GPU".into()),
                },
            ],
        );
        assert!(ix.entries(M, 1, 0).is_empty());
        let tiers: Vec<Tier> = ix.entries(M, 2, 0).iter().map(|x| x.tier).collect();
        assert_eq!(tiers, vec![Tier::Gpu, Tier::Cpu]);
        ix.apply(EndpointId(0), M, &[KvEvent::AllBlocksCleared]);
        assert_eq!(ix.entries(M, 2, 0).len(), 2, "ignored by default");
        let mut ix2 = KvIndex::new(IndexConfig {
            cleared: ClearedPolicy::RemovePod,
            ..Default::default()
        });
        ix2.apply(
            EndpointId(0),
            M,
            &[KvEvent::BlockStored {
                block_hashes: vec![5],
                parent: None,
                tokens: None,
                medium: None,
            }],
        );
        ix2.apply(
            EndpointId(1),
            M,
            &[KvEvent::BlockStored {
                block_hashes: vec![5],
                parent: None,
                tokens: None,
                medium: None,
            }],
        );
        ix2.apply(EndpointId(0), M, &[KvEvent::AllBlocksCleared]);
        assert_eq!(ix2.entries(M, 5, 0), vec![e(1)]);
    }

    #[test]
    fn speculative_entries_expire() {
        let mut ix = KvIndex::new(IndexConfig::default());
        ix.add_speculative(M, &[1, 2], &[EndpointId(3)], 2_000);
        let spec = PodEntry {
            pod: EndpointId(3),
            tier: Tier::Gpu,
            speculative: true,
        };
        assert_eq!(ix.entries(M, 1, 1_999), vec![spec]);
        assert_eq!(look(&ix, &[1, 2], &[], 1_999), vec![vec![3], vec![3]]);
        // expired: the keys read as absent, not as a stop
        assert_eq!(
            look(&ix, &[1, 2], &[], 2_000),
            vec![Vec::<u32>::new(), vec![]]
        );
        // a confirmed entry survives the expiry of the speculative one
        ix.add(M, &[1], &[e(3)]);
        assert_eq!(look(&ix, &[1], &[], 5_000), vec![vec![3]]);
        let mut out = KeyEntries::default();
        ix.lookup(M, &[2], &[], 5_000, &mut out);
        assert_eq!(out.n_keys(), 1);
        assert!(out.key(0).is_empty());
    }

    #[test]
    fn bounds_evict_least_recent() {
        let mut ix = KvIndex::new(IndexConfig {
            size: 2,
            pod_cache_size: 2,
            ..Default::default()
        });
        ix.add(M, &[1, 2], &[e(0)]);
        let mut out = KeyEntries::default();
        ix.peek(M, &[2], &[], 0, &mut out); // a peek touches nothing
        ix.lookup(M, &[1], &[], 0, &mut out); // the EPP's lookup touches 1
        ix.add(M, &[3], &[e(0)]);
        assert!(ix.entries(M, 2, 0).is_empty(), "key 2 was least recent");
        assert_eq!(ix.entries(M, 1, 0), vec![e(0)]);
        ix.add(M, &[1], &[e(1)]);
        ix.add(M, &[1], &[e(2)]);
        assert_eq!(
            ix.entries(M, 1, 0),
            vec![e(1), e(2)],
            "pod cache keeps the 2 newest"
        );
        // models are separate key spaces
        assert!(ix.entries("other", 1, 0).is_empty());
    }
}

#[cfg(test)]
mod store_equivalence {
    //! The bitmask store must behave exactly like the general one, including
    //! after an entry it cannot hold converts it.

    use super::*;
    use crate::index::key_ops::KeyOpQueue;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Add(Vec<u64>, u32, Tier),
        Evict(u64, u32, Tier),
        Speculative(Vec<u64>, u32, u64),
        RemovePod(u32),
        Lookup(Vec<u64>, Vec<u32>, u64),
        /// A batch as a simulated engine publishes it: `Some(keys)` stores,
        /// `None` clears all; a one-key store list stands for a removal
        /// when `removes` says so.
        Engine(u32, Vec<(Option<Vec<u64>>, bool)>),
    }

    fn engine_events(batch: &[(Option<Vec<u64>>, bool)]) -> Vec<crate::kv::events::KvEvent> {
        use crate::kv::events::{KvEvent as E, StoredBlocks};
        batch
            .iter()
            .flat_map(|(keys, removes)| -> Vec<E> {
                match (keys, removes) {
                    (None, _) => vec![E::AllBlocksCleared],
                    (Some(keys), true) => keys
                        .iter()
                        .map(|&k| E::BlockRemoved { block_hash: k })
                        .collect(),
                    (Some(keys), false) => vec![E::BlockStored(Box::new(StoredBlocks {
                        block_hashes: keys.clone(),
                        parent_block_hash: None,
                        block_size: 16,
                    }))],
                }
            })
            .collect()
    }

    /// [`engine_events`] as they arrive on the wire.
    fn wire_events(batch: &[(Option<Vec<u64>>, bool)]) -> Vec<KvEvent> {
        engine_events(batch)
            .into_iter()
            .map(|e| match e {
                crate::kv::events::KvEvent::BlockStored(s) => KvEvent::BlockStored {
                    block_hashes: s.block_hashes,
                    parent: None,
                    tokens: None,
                    medium: None,
                },
                crate::kv::events::KvEvent::BlockRemoved { block_hash } => KvEvent::BlockRemoved {
                    block_hashes: vec![block_hash],
                    medium: None,
                },
                crate::kv::events::KvEvent::AllBlocksCleared => KvEvent::AllBlocksCleared,
            })
            .collect()
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = prop_oneof![
            0u64..40,
            248u64..272,
            768u64..780,
            Just(u64::MAX - 3),
            (1u64 << 40)..(1u64 << 40) + 4
        ];
        let keys = prop::collection::vec(key.clone(), 0..6);
        // Pods 3 and 4 are outside the masks' 0..3; with CPU and speculative
        // entries a key holds at most 15 entries, below the cap of 16, so the
        // conversion's pod order is never observable.
        let pod = prop_oneof![4 => 0u32..3, 1 => 3u32..5];
        let tier = prop_oneof![4 => Just(Tier::Gpu), 1 => Just(Tier::Cpu)];
        // Runs of consecutive keys, up or down, across a page boundary
        // (256): the masks apply them a page at a time.
        let span = (250u64..262, 1u64..10, any::<bool>()).prop_map(|(lo, n, down)| {
            let keys: Vec<u64> = (lo..lo + n).collect();
            if down {
                keys.into_iter().rev().collect()
            } else {
                keys
            }
        });
        let engine_ev = (
            prop_oneof![
                8 => keys.clone().prop_map(Some),
                4 => span.prop_map(Some),
                // A run up to the last key.
                1 => Just(Some(vec![u64::MAX - 1, u64::MAX])),
                1 => Just(None),
            ],
            any::<bool>(),
        );
        prop_oneof![
            4 => (pod.clone(), prop::collection::vec(engine_ev, 0..5)).prop_map(|(p, b)| Op::Engine(p, b)),
            6 => (keys.clone(), pod.clone(), tier.clone()).prop_map(|(k, p, t)| Op::Add(k, p, t)),
            6 => (key, pod.clone(), tier).prop_map(|(k, p, t)| Op::Evict(k, p, t)),
            1 => (keys.clone(), pod.clone(), 0u64..100).prop_map(|(k, p, e)| Op::Speculative(k, p, e)),
            1 => pod.clone().prop_map(Op::RemovePod),
            4 => (keys, prop::collection::vec(pod.clone(), 0..3), 0u64..100)
                .prop_map(|(k, p, t)| Op::Lookup(k, p, t)),
            // A prompt's consecutive keys, over live pages and absent ones
            // (512..768 holds no key), which the masks skip to the page end.
            2 => ((0u64..800, 1u64..300).prop_map(|(lo, n)| (lo..lo + n).collect()),
                  prop::collection::vec(pod, 0..3), 0u64..100)
                .prop_map(|(k, p, t)| Op::Lookup(k, p, t)),
        ]
    }

    fn sorted_lookup(ix: &mut KvIndex, keys: &[u64], pods: &[u32], now: u64) -> Vec<Vec<PodEntry>> {
        let pods: Vec<EndpointId> = pods.iter().map(|&p| EndpointId(p)).collect();
        let mut out = KeyEntries::default();
        ix.lookup("m", keys, &pods, now, &mut out);
        sorted_entries(&out)
    }

    fn sorted_entries(out: &KeyEntries) -> Vec<Vec<PodEntry>> {
        (0..out.n_keys())
            .map(|i| {
                let mut v = out.key(i).to_vec();
                v.sort();
                v
            })
            .collect()
    }

    fn prefix_lookup(ix: &mut KvIndex, keys: &[u64], pods: &[u32], now: u64) -> KeyEntries {
        let pods: Vec<EndpointId> = pods.iter().map(|&p| EndpointId(p)).collect();
        let mut out = KeyEntries::default();
        ix.lookup_prefix("m", keys, &pods, now, &mut out);
        out
    }

    /// Per pod (in pod order), its tier-weighted and plain longest prefix.
    fn longest(entries: &KeyEntries, n_keys: usize) -> Vec<(u32, u64, u32)> {
        let mut out = Vec::new();
        crate::epp::scorer::precise_prefix::longest_prefix(
            entries,
            n_keys,
            &Default::default(),
            &mut out,
        );
        let mut v: Vec<_> = out
            .iter()
            .map(|p| (p.pod.0, p.weighted.to_bits(), p.blocks))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn masks_only_when_every_pod_fits() {
        let cfg = IndexConfig::default(); // pod_cache_size 10
        let kind =
            |max_keys, n_pods| match KvIndex::with_key_bound(cfg.clone(), max_keys, n_pods).data {
                Store::Masks(_) => "masks",
                Store::Slots(Slots::Plain(_)) => "plain",
                Store::Slots(Slots::Lru(_)) => "lru",
            };
        assert_eq!(kind(1000, 10), "masks");
        assert_eq!(kind(1000, 11), "plain");
        assert_eq!(kind(u64::MAX, 8), "lru");
    }

    proptest! {
        #[test]
        fn masks_match_the_general_store(
            ops in prop::collection::vec(op(), 1..60),
            redis in any::<bool>(),
            remove_empty_keys in any::<bool>(),
            cleared in any::<bool>(),
        ) {
            let cfg = IndexConfig {
                pod_cache_size: 16,
                stop: if redis { LookupStop::Redis } else { LookupStop::InMemory },
                remove_empty_keys,
                cleared: if cleared { ClearedPolicy::RemovePod } else { ClearedPolicy::Ignore },
                ..IndexConfig::default()
            };
            let mut general = KvIndex::new(IndexConfig { size: 1 << 20, ..cfg.clone() });
            let masks = KvIndex::with_key_bound(cfg.clone(), 1000, 3);
            prop_assert!(matches!(masks.data, Store::Masks(_)));
            // 16 pods: the masks need a wider word than 3 do.
            let wide = KvIndex::with_key_bound(cfg.clone(), 1000, 16);
            prop_assert!(matches!(wide.data, Store::Masks(_)));
            // More pods than pod_cache_size: the plain slot store from the start.
            let plain = KvIndex::with_key_bound(cfg, 1000, 20);
            prop_assert!(matches!(plain.data, Store::Slots(Slots::Plain(_))));
            let mut fast = [masks, wide, plain];
            for op in ops {
                // The general store takes engine batches as wire events, one
                // add or evict each: the key-run path is checked against it.
                if let Op::Engine(p, batch) = &op {
                    general.apply(EndpointId(*p), "m", &wire_events(batch));
                }
                for (i, ix) in std::iter::once(&mut general).chain(fast.iter_mut()).enumerate() {
                    match &op {
                        Op::Add(keys, p, tier) => {
                            let e = PodEntry { pod: EndpointId(*p), tier: *tier, speculative: false };
                            ix.add("m", keys, &[e]);
                        }
                        Op::Evict(k, p, tier) => {
                            let e = PodEntry { pod: EndpointId(*p), tier: *tier, speculative: false };
                            ix.evict("m", *k, &[e]);
                        }
                        Op::Speculative(keys, p, exp) => {
                            ix.add_speculative("m", keys, &[EndpointId(*p)], *exp);
                        }
                        Op::RemovePod(p) => ix.apply(EndpointId(*p), "m", &[KvEvent::AllBlocksCleared]),
                        Op::Engine(p, batch) if i > 0 => {
                            let mut q = KeyOpQueue::default();
                            let len = q.push_log(&engine_events(batch).iter().collect());
                            let m = ix.intern_model("m");
                            ix.apply_key_batch(EndpointId(*p), m, q.take(len));
                        }
                        Op::Engine(..) => {}
                        Op::Lookup(..) => {}
                    }
                }
                for ix in &mut fast {
                    if let Op::Lookup(keys, pods, now) = &op {
                        let full = sorted_lookup(&mut general, keys, pods, *now);
                        prop_assert_eq!(&full, &sorted_lookup(ix, keys, pods, *now));
                        // A prefix lookup reads a prefix of the keys, and
                        // the longest prefixes found there are the same.
                        let prefix = prefix_lookup(ix, keys, pods, *now);
                        let prefix_keys = sorted_entries(&prefix);
                        prop_assert_eq!(&full[..prefix_keys.len()], &prefix_keys[..]);
                        let whole = prefix_lookup(&mut general, keys, pods, *now);
                        prop_assert_eq!(longest(&whole, keys.len()), longest(&prefix, keys.len()));
                    }
                    prop_assert_eq!(general.n_keys(), ix.n_keys());
                }
            }
        }
    }
}

#[cfg(test)]
mod scheduler_tests {
    //! The index behind a real scheduler: speculative entries close the
    //! blind spot between a routing decision and the KV event.

    use super::*;
    use crate::epp::config::load_yaml;
    use crate::epp::plugin::{PreRequestContext, SchedulingContext};
    use crate::epp::view::{EndpointView, RequestView};
    use rand::SeedableRng;

    const CFG: &str = "plugins:\n- type: precise-prefix-cache-scorer\n  parameters: {speculativeIndexing: true, speculativeTTL: 2s}\n- type: max-score-picker\n  parameters: {tieBreaking: round-robin}\n";

    /// (picked pod, precise score of pod 0).
    fn route(sched: &mut crate::epp::Scheduler, ix: &mut KvIndex, id: u64, now: u64) -> (u32, f64) {
        let names = ["a:1", "b:1", "c:1"];
        let eps: Vec<EndpointView<'_>> = (0..3)
            .map(|i| EndpointView::new(EndpointId(i), names[i as usize]))
            .collect();
        let keys = [11u64, 12, 13];
        let mut req = RequestView::new(id, "m", 48);
        req.block_keys = &keys;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(id);
        let res = {
            let mut ctx = SchedulingContext {
                now_ns: now,
                kv_index: Some(&mut *ix),
                rng: &mut rng,
            };
            sched.schedule(&req, &eps, &mut ctx).unwrap()
        };
        sched.pre_request(
            &mut PreRequestContext {
                now_ns: now,
                speculative_index: Some(ix),
            },
            &req,
            &res,
        );
        let p = &res.profiles[0];
        (res.primary_target().unwrap().0, p.raw_score(0, 0).unwrap())
    }

    #[test]
    fn speculative_entries_route_a_burst_together_until_ttl() {
        let mut sched = load_yaml(CFG).unwrap().scheduler;
        let mut ix = KvIndex::new(IndexConfig::default());
        // cold: round-robin over the all-zero tie starts at pod 0
        assert_eq!(route(&mut sched, &mut ix, 1, 0), (0, 0.0));
        // no KV event yet, but the speculative entry already attracts the burst
        assert_eq!(route(&mut sched, &mut ix, 2, 1_000_000), (0, 1.0));
        assert_eq!(route(&mut sched, &mut ix, 3, 1_500_000_000), (0, 1.0));
        // request 3 refreshed the expiry to 3.5 s; after it pod 0 looks cold again
        assert_eq!(route(&mut sched, &mut ix, 4, 4_000_000_000).1, 0.0);
    }
}
