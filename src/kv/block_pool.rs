//! vLLM V1 `BlockPool` for one full-attention KV cache group (`vllm.md` §2).
//!
//! Semantics reproduced exactly: block 0 is the reserved null block; free
//! blocks wait in a [`FreeQueue`] in eviction order; a cached block whose ref
//! count drops to 0 stays cached and hit-able in the queue until it is popped
//! for reuse (lazy eviction, the only eviction point); there is no
//! de-duplication, so one hash may map to several blocks, and a lookup
//! returns the one cached first.

use super::block_key::BlockKeyMap;
use super::dense_map::{leading_run, DenseKeyMap, Slot};
use super::events::EventLog;
use super::free_queue::{self, FreeQueue, QueuePos};
use crate::compat::VllmVersion;

/// Most blocks a pool holds (vLLM's `num_gpu_blocks`).
pub const MAX_BLOCKS: u32 = free_queue::MAX_BLOCKS;

/// What the pool knows of one block, in 16 bytes so that reusing or freeing
/// a block touches one cache line of the pool.
#[derive(Copy, Clone, Debug)]
struct BlockMeta {
    /// Meaningful when [`BlockMeta::has_hash`] (a hash may be 0).
    hash: u64,
    /// Ref count in the low 31 bits, [`HAS_HASH`] in the top bit.
    rc_flags: u32,
    /// Place in the free queue, [`free_queue::OUT`] when not queued.
    queue_pos: u32,
}

const HAS_HASH: u32 = 1 << 31;

impl BlockMeta {
    fn ref_cnt(&self) -> u32 {
        self.rc_flags & !HAS_HASH
    }
    fn has_hash(&self) -> bool {
        self.rc_flags & HAS_HASH != 0
    }
    fn set_hash(&mut self, hash: u64) {
        self.hash = hash;
        self.rc_flags |= HAS_HASH;
    }
    fn clear_hash(&mut self) {
        self.rc_flags &= !HAS_HASH;
    }
    fn add_ref(&mut self) {
        assert!(self.ref_cnt() < HAS_HASH - 1, "block ref count overflow");
        self.rc_flags += 1;
    }
    /// Drops one reference; true when none is left.
    fn drop_ref(&mut self) -> bool {
        debug_assert!(self.ref_cnt() > 0, "freeing an unreferenced block");
        self.rc_flags -= 1;
        self.ref_cnt() == 0
    }
}

impl QueuePos for BlockMeta {
    fn queue_pos(&self) -> u32 {
        self.queue_pos
    }
    fn set_queue_pos(&mut self, pos: u32) {
        self.queue_pos = pos;
    }
}

/// Paged KV memory of one pod.
#[derive(Clone, Debug)]
pub struct BlockPool {
    n_blocks: u32,
    /// Per block: ref count, hash and free-queue place, together.
    meta: Vec<BlockMeta>,
    free: FreeQueue,
    /// hash → the first cached block with that hash (returned on a hit).
    cached: DenseKeyMap<u32>,
    /// hash → later blocks with the same hash, in insertion order (rare:
    /// vLLM does not de-duplicate, so a recomputed block is cached again).
    duplicates: BlockKeyMap<u64, Vec<u32>>,
    emit_events: bool,
    events: EventLog,
    version: VllmVersion,
    /// Scratch buffers, kept to spare an allocation per call.
    scratch_keys: Vec<u64>,
    scratch_blocks: Vec<u32>,
}

impl BlockPool {
    /// A pool of `n_blocks` blocks (vLLM's `num_gpu_blocks`, null block
    /// included). Without prefix caching the scheduler caches no block, so
    /// none ever has a hash to evict.
    pub fn new(n_blocks: u32, emit_events: bool, version: VllmVersion) -> BlockPool {
        assert!(
            n_blocks >= 2,
            "a pool needs the null block and at least one usable block"
        );
        let blank = BlockMeta {
            hash: 0,
            rc_flags: 0,
            queue_pos: free_queue::OUT,
        };
        let mut meta = vec![blank; n_blocks as usize];
        let mut free = FreeQueue::new(n_blocks, &mut meta);
        let null = free.pop_front(&mut meta);
        debug_assert_eq!(null, Some(0));
        BlockPool {
            n_blocks,
            meta,
            free,
            cached: DenseKeyMap::default(),
            duplicates: BlockKeyMap::default(),
            emit_events,
            events: EventLog::default(),
            version,
            scratch_keys: Vec::new(),
            scratch_blocks: Vec::new(),
        }
    }

    /// Blocks usable by requests (`num_gpu_blocks - 1`).
    pub fn n_usable(&self) -> u32 {
        self.n_blocks - 1
    }

    /// Free blocks, cached blocks with ref count 0 included.
    pub fn n_free(&self) -> u32 {
        self.free.len()
    }

    /// `vllm:kv_cache_usage_perc` = 1 − free / usable.
    pub fn usage(&self) -> f64 {
        1.0 - self.n_free() as f64 / self.n_usable() as f64
    }

    /// Ref count of `block`.
    pub fn ref_cnt(&self, block: u32) -> u32 {
        self.meta[block as usize].ref_cnt()
    }

    /// Cached block holding `hash`, the first cached if several do.
    pub fn get_cached_block(&self, hash: u64) -> Option<u32> {
        Some(self.cached.get(hash)).filter(|&b| b != u32::EMPTY)
    }

    /// Pops `n` blocks from the head of the free queue, evicting cached ones
    /// (one `BlockRemoved` each), and gives each a ref count of 1.
    pub fn get_new_blocks(&mut self, n: u32, out: &mut Vec<u32>) {
        if !self.duplicates.is_empty() {
            let start = out.len();
            self.free.pop_front_n(n, out, &mut self.meta);
            for &b in &out[start..] {
                self.maybe_evict_cached_block(b);
                debug_assert_eq!(self.meta[b as usize].ref_cnt(), 0);
                self.meta[b as usize].add_ref();
            }
            return;
        }
        // Without duplicates a hashed block is the one cached under its
        // hash: drop the hashes as the blocks leave the queue, then the map
        // entries a run of keys at a time.
        let (evicted, cached) = (&mut self.scratch_keys, &self.cached);
        evicted.clear();
        self.free.pop_front_n_with(n, out, &mut self.meta, |b, m| {
            debug_assert_eq!(m.ref_cnt(), 0);
            if m.has_hash() {
                debug_assert_eq!(cached.get(m.hash), b);
                evicted.push(m.hash);
            }
            m.rc_flags = 1; // one reference, no hash
        });
        self.cached.remove_each(evicted);
        if self.emit_events {
            self.events.push_removed(evicted);
        }
    }

    fn maybe_evict_cached_block(&mut self, b: u32) {
        let i = b as usize;
        if !self.meta[i].has_hash() {
            return;
        }
        let h = self.meta[i].hash;
        self.meta[i].clear_hash();
        if self.duplicates.is_empty() {
            // Then a hashed block is the one cached under its hash: one probe.
            let first = self.cached.remove(h);
            debug_assert_eq!(first, b);
            if self.emit_events {
                self.events.push_removed(&[h]);
            }
            return;
        }
        let removed = match self.get_cached_block(h) {
            Some(first) if first == b => {
                // Promote the next duplicate, keeping insertion order.
                match self.duplicates.get_mut(&h) {
                    Some(d) => {
                        let next = d.remove(0);
                        if d.is_empty() {
                            self.duplicates.remove(&h);
                        }
                        self.cached.insert(h, next);
                    }
                    None => {
                        self.cached.remove(h);
                    }
                }
                true
            }
            Some(_) => match self.duplicates.get_mut(&h) {
                Some(d) => match d.iter().position(|&x| x == b) {
                    Some(pos) => {
                        d.remove(pos);
                        if d.is_empty() {
                            self.duplicates.remove(&h);
                        }
                        true
                    }
                    None => false,
                },
                None => false,
            },
            None => false,
        };
        if removed && self.emit_events {
            self.events.push_removed(&[h]);
        }
    }

    /// A prefix hit takes a reference on each block, unlinking free ones.
    pub fn touch(&mut self, blocks: &[u32]) {
        for &b in blocks {
            if self.meta[b as usize].ref_cnt() == 0 {
                self.free.unlink(b, &mut self.meta);
            }
            self.meta[b as usize].add_ref();
        }
    }

    /// Drops one reference on each block of `ordered` (first = evicted first).
    ///
    /// [0.33] blocks reaching ref count 0 without a hash go to the head (reused
    /// first), hashed ones to the tail in the given order. [0.11] all go to the
    /// tail in the given order.
    pub fn free_blocks(&mut self, ordered: impl Iterator<Item = u32>) {
        let all_to_tail = self.version == VllmVersion::V0_11;
        let mut unhashed: Vec<u32> = Vec::new();
        let to_tail = |b: u32, m: &mut BlockMeta| {
            if !m.drop_ref() {
                return false;
            }
            if all_to_tail || m.has_hash() {
                return true;
            }
            unhashed.push(b);
            false
        };
        let scratch = &mut self.scratch_blocks;
        self.free
            .push_back_where(ordered, &mut self.meta, to_tail, scratch);
        self.free.push_front_n(&unhashed, &mut self.meta);
    }

    /// Marks `blocks[i]` as holding `hashes[i]` and makes them hit-able; emits
    /// one `BlockStored` for the batch with `parent` as its parent hash.
    pub fn cache_full_blocks(
        &mut self,
        blocks: &[u32],
        hashes: &[u64],
        parent: Option<u64>,
        block_size: u32,
    ) {
        debug_assert_eq!(blocks.len(), hashes.len());
        if blocks.is_empty() {
            return;
        }
        for (&b, &h) in blocks.iter().zip(hashes) {
            debug_assert!(!self.meta[b as usize].has_hash(), "block {b} cached twice");
            self.meta[b as usize].set_hash(h);
        }
        // A hash already cached keeps its first block; this one is a
        // duplicate. Dense keys of a prompt are consecutive: a run at a time.
        let mut i = 0;
        while i < hashes.len() {
            let n = match leading_run(&hashes[i..]) {
                (_, true) => 1, // a run going down: key by key
                (n, false) => n,
            };
            let (run, run_blocks) = (&hashes[i..i + n], &blocks[i..i + n]);
            let duplicates = &mut self.duplicates;
            self.cached.insert_absent_range(run[0], run_blocks, |j| {
                duplicates.entry(run[j]).or_default().push(run_blocks[j])
            });
            i += n;
        }
        if self.emit_events {
            self.events.push_stored(hashes, parent, block_size);
        }
    }

    /// Moves the events logged since the last call to the end of `out`.
    pub fn take_events(&mut self, out: &mut EventLog) {
        out.append(&mut self.events);
    }

    /// Checks internal consistency: free + referenced = usable, and every
    /// cached entry points at a block carrying that hash. For tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n_referenced = self.meta[1..].iter().filter(|m| m.ref_cnt() > 0).count() as u32;
        if n_referenced + self.n_free() != self.n_usable() {
            return Err(format!(
                "blocks not conserved: {} referenced + {} free != {} usable",
                n_referenced,
                self.n_free(),
                self.n_usable()
            ));
        }
        for b in 1..self.n_blocks {
            let m = &self.meta[b as usize];
            let in_q = m.queue_pos != free_queue::OUT;
            if in_q != (m.ref_cnt() == 0) {
                return Err(format!(
                    "block {b}: in free queue = {in_q}, ref count = {}",
                    m.ref_cnt()
                ));
            }
        }
        let firsts = self.cached.iter();
        let dups = self
            .duplicates
            .iter()
            .flat_map(|(&h, ids)| ids.iter().map(move |&b| (h, b)));
        for (h, b) in firsts.chain(dups) {
            {
                if !self.meta[b as usize].has_hash() || self.meta[b as usize].hash != h {
                    return Err(format!("cached entry {h:#x} → block {b} without that hash"));
                }
            }
        }
        Ok(())
    }

    /// Free queue from head to tail (for tests).
    pub fn free_queue_order(&self) -> Vec<u32> {
        self.free.to_vec()
    }
}
