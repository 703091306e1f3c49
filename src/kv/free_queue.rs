//! vLLM's `FreeKVCacheBlockQueue`: free block ids in eviction order.
//!
//! Free blocks, including cached blocks with ref count 0 that are still
//! hit-able, sit here in eviction order: the head is evicted (reused) first.
//! vLLM keeps an intrusive doubly-linked list so that a prefix hit unlinks a
//! block from the middle in O(1). This queue keeps the same order in a ring
//! of ids instead: an unlinked block leaves a hole that a pop skips, and each
//! block remembers its place in the ring (in the pool's per-block record,
//! [`QueuePos`]). Popping and pushing then read and write the ring in order:
//! the ids of the next blocks to reuse come without chasing links through
//! memory, and a batch of them is one copy.

use std::collections::VecDeque;

/// A ring slot whose block was unlinked.
const HOLE: u32 = u32::MAX;
/// Queue position of a block that is not in the queue.
pub const OUT: u32 = u32::MAX;
/// Most blocks a queue holds.
pub const MAX_BLOCKS: u32 = (1 << 29) - 1;
/// Positions count modulo 2^31, so that none is [`OUT`].
const POS_MASK: u32 = (1 << 31) - 1;

/// Where a block's record keeps its queue position ([`OUT`] when not queued).
pub trait QueuePos {
    fn queue_pos(&self) -> u32;
    fn set_queue_pos(&mut self, pos: u32);
}

#[cfg(test)]
impl QueuePos for u32 {
    fn queue_pos(&self) -> u32 {
        *self
    }
    fn set_queue_pos(&mut self, pos: u32) {
        *self = pos;
    }
}

/// Free block ids `0..n` in eviction order, with O(1) push and pop at both
/// ends and amortised O(1) unlink from the middle.
///
/// A block's position is a sequence number: the ring slot `i` holds position
/// `head_pos + i` (modulo 2^31), so pushing at the front or popping does not
/// move the others' positions.
#[derive(Clone, Debug)]
pub struct FreeQueue {
    /// Block ids from head to tail, with [`HOLE`]s where blocks were unlinked.
    ring: VecDeque<u32>,
    /// Position of `ring[0]`.
    head_pos: u32,
    /// Blocks in the queue (`ring.len()` minus holes).
    len: u32,
}

impl FreeQueue {
    /// A queue holding every block `0..n_blocks` in id order; sets each
    /// block's position in `at`.
    pub fn new(n_blocks: u32, at: &mut [impl QueuePos]) -> FreeQueue {
        // The ring (blocks and holes) stays below 2 n + 64 slots, so
        // positions modulo 2^31 tell its slots apart.
        assert!(n_blocks <= MAX_BLOCKS, "too many blocks for the free queue");
        for (b, rec) in at.iter_mut().enumerate().take(n_blocks as usize) {
            rec.set_queue_pos(b as u32);
        }
        FreeQueue {
            ring: (0..n_blocks).collect(),
            head_pos: 0,
            len: n_blocks,
        }
    }

    /// Number of blocks in the queue.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when no block is free.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes and returns the head (the next block to reuse).
    pub fn pop_front(&mut self, at: &mut [impl QueuePos]) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(1);
        self.pop_front_n(1, &mut out, at);
        out.pop()
    }

    /// Moves the `n` blocks at the head to the end of `out` (head first),
    /// marking them not queued. There must be `n` blocks in the queue.
    pub fn pop_front_n(&mut self, n: u32, out: &mut Vec<u32>, at: &mut [impl QueuePos]) {
        self.pop_front_n_with(n, out, at, |_, _| {});
    }

    /// [`FreeQueue::pop_front_n`], calling `f` with each popped block and
    /// its record in the same pass.
    pub fn pop_front_n_with<T: QueuePos>(
        &mut self,
        n: u32,
        out: &mut Vec<u32>,
        at: &mut [T],
        mut f: impl FnMut(u32, &mut T),
    ) {
        assert!(n <= self.len, "popping {n} of {} free blocks", self.len);
        out.reserve(n as usize);
        // Most pops meet no hole: copy the ids at once.
        let (a, b) = self.ring.as_slices();
        let n_slots = n as usize;
        let contiguous = match (a.get(..n_slots), a.is_empty()) {
            (Some(ids), _) => Some(ids),
            (None, true) => b.get(..n_slots),
            (None, false) => None,
        };
        if let Some(ids) = contiguous.filter(|ids| !ids.contains(&HOLE)) {
            out.extend_from_slice(ids);
            self.ring.drain(..n_slots);
            self.head_pos = self.head_pos.wrapping_add(n) & POS_MASK;
        } else {
            let mut left = n;
            while left > 0 {
                let b = self.ring.pop_front().expect("len counts the ring's blocks");
                self.head_pos = self.head_pos.wrapping_add(1) & POS_MASK;
                if b != HOLE {
                    out.push(b);
                    left -= 1;
                }
            }
        }
        for &b in &out[out.len() - n_slots..] {
            let rec = &mut at[b as usize];
            rec.set_queue_pos(OUT);
            f(b, rec);
        }
        self.len -= n;
    }

    /// Unlinks `block` from anywhere in the queue. The block must be queued.
    pub fn unlink(&mut self, block: u32, at: &mut [impl QueuePos]) {
        let pos = at[block as usize].queue_pos();
        assert!(pos != OUT, "block {block} is not in the free queue");
        let i = (pos.wrapping_sub(self.head_pos) & POS_MASK) as usize;
        debug_assert_eq!(self.ring[i], block);
        self.ring[i] = HOLE;
        at[block as usize].set_queue_pos(OUT);
        self.len -= 1;
        // Holes at the tail are dropped at once; others wait for compaction
        // once they outnumber the blocks, so the ring stays O(len).
        while self.ring.back() == Some(&HOLE) {
            self.ring.pop_back();
        }
        if self.ring.len() > 64 && self.ring.len() > 2 * self.len as usize {
            self.compact(at);
        }
    }

    /// Drops the holes and renumbers the blocks' positions.
    fn compact(&mut self, at: &mut [impl QueuePos]) {
        self.ring.retain(|&b| b != HOLE);
        for (i, &b) in self.ring.iter().enumerate() {
            at[b as usize].set_queue_pos(self.head_pos.wrapping_add(i as u32) & POS_MASK);
        }
    }

    /// Appends at the tail, in order, the blocks of `blocks` for which
    /// `to_tail` (given the block's record) says so: one pass over the
    /// records, which decides and places each block.
    pub fn push_back_where<T: QueuePos>(
        &mut self,
        blocks: impl Iterator<Item = u32>,
        at: &mut [T],
        mut to_tail: impl FnMut(u32, &mut T) -> bool,
        scratch: &mut Vec<u32>,
    ) {
        scratch.clear();
        let mut pos = self.head_pos.wrapping_add(self.ring.len() as u32);
        for b in blocks {
            let rec = &mut at[b as usize];
            if to_tail(b, rec) {
                assert!(rec.queue_pos() == OUT, "block {b} is already free");
                rec.set_queue_pos(pos & POS_MASK);
                pos = pos.wrapping_add(1);
                scratch.push(b);
            }
        }
        self.ring.extend(scratch.iter());
        self.len += scratch.len() as u32;
    }

    /// Puts `blocks` at the head so that `blocks[0]` becomes the new head
    /// (vLLM's `prepend_n`: the given order is kept).
    pub fn push_front_n(&mut self, blocks: &[u32], at: &mut [impl QueuePos]) {
        for &b in blocks.iter().rev() {
            let rec = &mut at[b as usize];
            assert!(rec.queue_pos() == OUT, "block {b} is already free");
            self.head_pos = self.head_pos.wrapping_sub(1) & POS_MASK;
            rec.set_queue_pos(self.head_pos);
            self.ring.push_front(b);
            self.len += 1;
        }
    }

    /// Block ids from head to tail (for tests and debugging).
    pub fn to_vec(&self) -> Vec<u32> {
        self.ring.iter().copied().filter(|&b| b != HOLE).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn push_back(q: &mut FreeQueue, blocks: &[u32], at: &mut [u32]) {
        q.push_back_where(blocks.iter().copied(), at, |_, _| true, &mut Vec::new());
    }

    #[test]
    fn starts_in_id_order_and_unlinks_from_middle() {
        let mut at = vec![0u32; 5];
        let mut q = FreeQueue::new(5, &mut at);
        assert_eq!(q.to_vec(), vec![0, 1, 2, 3, 4]);
        q.unlink(2, &mut at);
        assert_eq!(q.to_vec(), vec![0, 1, 3, 4]);
        assert_eq!(q.pop_front(&mut at), Some(0));
        push_back(&mut q, &[2], &mut at);
        q.push_front_n(&[0], &mut at);
        assert_eq!(q.to_vec(), vec![0, 1, 3, 4, 2]);
        assert_eq!(q.len(), 5);
        let mut out = vec![9];
        q.pop_front_n(3, &mut out, &mut at);
        assert_eq!(out, vec![9, 0, 1, 3]);
        assert_eq!(q.to_vec(), vec![4, 2]);
        assert_eq!(at[1], OUT);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Pop,
        PopN(u32),
        Unlink(u32),
        PushBack(u32),
        PushFront(Vec<u32>),
        PushBackN(Vec<u32>),
    }

    const N: u32 = 80;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Pop),
            1 => (0u32..6).prop_map(Op::PopN),
            4 => (0u32..N).prop_map(Op::Unlink),
            3 => (0u32..N).prop_map(Op::PushBack),
            1 => proptest::collection::vec(0u32..N, 0..4).prop_map(Op::PushFront),
            1 => proptest::collection::vec(0u32..N, 0..6).prop_map(Op::PushBackN),
        ]
    }

    proptest! {
        /// The ring behaves exactly like a naive `VecDeque` model, across
        /// tail trimming and compaction (80 blocks: more than the ring's
        /// compaction floor).
        #[test]
        fn matches_naive_model(ops in proptest::collection::vec(op(), 0..400)) {
            let mut at = vec![0u32; N as usize];
            let mut q = FreeQueue::new(N, &mut at);
            let mut model: VecDeque<u32> = (0..N).collect();
            for op in ops {
                match op {
                    Op::Pop => prop_assert_eq!(q.pop_front(&mut at), model.pop_front()),
                    Op::PopN(n) => if n as usize <= model.len() {
                        let mut out = Vec::new();
                        q.pop_front_n(n, &mut out, &mut at);
                        let want: Vec<u32> = model.drain(..n as usize).collect();
                        prop_assert_eq!(out, want);
                    },
                    Op::Unlink(b) => if model.contains(&b) {
                        q.unlink(b, &mut at);
                        model.retain(|&x| x != b);
                    },
                    Op::PushBack(b) => if !model.contains(&b) {
                        push_back(&mut q, &[b], &mut at);
                        model.push_back(b);
                    },
                    Op::PushFront(mut bs) => {
                        bs.sort_unstable();
                        bs.dedup();
                        bs.retain(|b| !model.contains(b));
                        q.push_front_n(&bs, &mut at);
                        for &b in bs.iter().rev() {
                            model.push_front(b);
                        }
                    },
                    Op::PushBackN(mut bs) => {
                        bs.sort_unstable();
                        bs.dedup();
                        bs.retain(|b| !model.contains(b));
                        bs.reverse();
                        push_back(&mut q, &bs, &mut at);
                        model.extend(&bs);
                    },
                }
                prop_assert_eq!(q.to_vec(), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(q.len() as usize, model.len());
                // Holes never make the ring more than a constant times the blocks.
                prop_assert!(q.ring.len() <= 2 * N as usize + 64);
                for b in 0..N {
                    prop_assert_eq!(at[b as usize] != OUT, model.contains(&b));
                }
            }
        }
    }
}
